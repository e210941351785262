"""A lazy registry of TFLite interpreter backends.

Each backend is a name mapped to an import string; only the chosen backend is imported
(uvicorn's ``HTTP_PROTOCOLS`` pattern). ``auto`` tries them in :data:`AUTO_ORDER`. The ``tflite``
backend goes through TensorFlow and is meant for workstations only: the device path never
reaches it unless it is named explicitly or ``auto`` found nothing else.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import BackendError, ConfigError

log = logging.getLogger(__name__)

# name -> (module to import, attribute path to the namespace holding Interpreter, install hint)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "litert": ("ai_edge_litert.interpreter", "", "pip install ai-edge-litert"),
    "tflite_runtime": (
        "tflite_runtime.interpreter",
        "",
        "pip install tflite-runtime (needs numpy<2)",
    ),
    "tflite": ("tensorflow", "lite", "pip install tensorflow (workstations only)"),
}
AUTO_ORDER: tuple[str, ...] = ("litert", "tflite_runtime", "tflite")
BACKEND_CHOICES: tuple[str, ...] = ("auto", *BACKENDS)


@dataclass(frozen=True)
class Backend:
    """The two entry points every TFLite Python runtime offers."""

    name: str
    interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]
    reason: str = "named in the config"  # why this one: what ``auto`` tried before it


def resolve_backend(name: str = "auto") -> Backend:
    """Import and return the backend called ``name`` (or the first available one for ``auto``).

    Raises :class:`ConfigError` for an unknown name and :class:`BackendError` naming what to
    install when the runtime is missing.
    """
    if name == "auto":
        return _resolve_auto()
    if name not in BACKENDS:
        raise ConfigError(
            "model.backend", f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}"
        )
    try:
        return _import_backend(name)
    except ImportError as exc:
        hint = BACKENDS[name][2]
        raise BackendError(
            f"backend {name!r} is not installed ({exc.name or exc}); install it: {hint}"
        ) from None


def _resolve_auto() -> Backend:
    missing: list[str] = []
    for name in AUTO_ORDER:
        try:
            backend = _import_backend(name)
        except ImportError as exc:
            missing.append(f"{name} not installed ({exc.name or exc})")
            continue
        skipped = f" ({'; '.join(missing)})" if missing else ""
        reason = f"auto: {name} is the first of {', '.join(AUTO_ORDER)} that imports{skipped}"
        log.info("backend %s picked; %s", name, reason)
        return Backend(backend.name, backend.interpreter, backend.load_delegate, reason)
    raise BackendError(
        "no TFLite runtime is installed (tried "
        + ", ".join(missing)
        + "); install one: "
        + BACKENDS["litert"][2]
    )


def _import_backend(name: str) -> Backend:
    module_name, attr, _ = BACKENDS[name]
    namespace: Any = importlib.import_module(module_name)
    if attr:
        namespace = getattr(namespace, attr)
    load_delegate = getattr(namespace, "load_delegate", None)
    if load_delegate is None:  # tf.lite keeps it under experimental
        load_delegate = namespace.experimental.load_delegate
    return Backend(name=name, interpreter=namespace.Interpreter, load_delegate=load_delegate)
