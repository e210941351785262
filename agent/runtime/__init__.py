"""Inference runtimes: a lazy backend registry, Edge TPU fallback, and loaded models.

Nothing here imports a runtime at module import time; :func:`open_model` imports only the
backend it is asked for.
"""

from agent.runtime.edgetpu import ReprobeSchedule, edgetpu_library, load_edgetpu_delegate
from agent.runtime.model import (
    ACCELERATORS,
    LoadedModel,
    open_model,
    open_on_edgetpu,
    tensor_spec,
)
from agent.runtime.registry import AUTO_ORDER, BACKEND_CHOICES, BACKENDS, Backend, resolve_backend

__all__ = [
    "ACCELERATORS",
    "AUTO_ORDER",
    "BACKENDS",
    "BACKEND_CHOICES",
    "Backend",
    "LoadedModel",
    "ReprobeSchedule",
    "edgetpu_library",
    "load_edgetpu_delegate",
    "open_model",
    "open_on_edgetpu",
    "resolve_backend",
    "tensor_spec",
]
