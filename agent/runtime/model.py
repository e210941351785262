"""A loaded model: one interpreter, its tensor specs, and an ``invoke`` run on its own thread.

Every call on the interpreter -- creation and allocation, ``set_tensor`` / ``invoke`` /
``get_tensor``, the release -- runs on the model's :class:`~agent.runtime.worker.ModelThread`
(inline when the caller is that thread), never on the caller's own thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from agent.errors import BackendError, ConfigError, InputError
from agent.runtime.edgetpu import load_edgetpu_delegate
from agent.runtime.registry import Backend, resolve_backend
from agent.runtime.worker import ModelThread
from agent.schema.meta import TensorSpec

logger = logging.getLogger(__name__)

ACCELERATORS: tuple[str, ...] = ("cpu", "edgetpu", "auto")


#: What to do when a model needs the Edge TPU but runs on the CPU (bundle time and load time).
EDGETPU_HINT = "this model needs the Edge TPU; bundle a CPU variant with --cpu-model"


class LoadedModel:
    """An interpreter ready to run, with the tensors it expects and returns.

    The TFLite interpreter is not thread-safe: it is only ever called on ``owner``, the thread
    it was created on, which serialises callers (:mod:`agent.runtime.worker`). ``degraded`` is
    true when the Edge TPU was requested but the model runs on the CPU; ``fallback_reason`` says
    why (it is also set, with ``degraded`` false, when ``auto`` found no Edge TPU).
    """

    def __init__(
        self,
        interpreter: Any,
        *,
        owner: ModelThread,
        backend: str,
        accelerator: Literal["cpu", "edgetpu"],
        threads: int,
        degraded: bool = False,
        fallback_reason: str | None = None,
        backend_reason: str = "",
    ) -> None:
        self._interpreter = interpreter
        #: The thread every call on ``interpreter`` runs on (this object is built on it).
        self.owner = owner
        self.backend_reason = backend_reason
        self.backend = backend
        self.accelerator = accelerator
        self.threads = threads
        self.degraded = degraded
        self.fallback_reason = fallback_reason
        in_details = interpreter.get_input_details()
        out_details = interpreter.get_output_details()
        self._in_index = tuple(int(d["index"]) for d in in_details)
        self._out_index = tuple(int(d["index"]) for d in out_details)
        self.inputs: tuple[TensorSpec, ...] = tuple(tensor_spec(d) for d in in_details)
        self.outputs: tuple[TensorSpec, ...] = tuple(tensor_spec(d) for d in out_details)
        self._in_dtypes = tuple(np.dtype(d["dtype"]) for d in in_details)
        self._lock = threading.Lock()
        self._closing = False

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run the model on ``inputs`` (one array per input tensor, exact shape and dtype).

        Returns copies of the raw output tensors, in output order (``get_tensor`` copies: the
        next invoke overwrites the interpreter's own buffers). Runs on :attr:`owner`.
        """
        self._check_inputs(inputs)
        # On its own thread a job that began before close() (the interpreter stage's item in
        # flight) may finish: the release is queued behind it. Elsewhere a closing model refuses.
        if self._closing and not self.owner.on_thread():
            raise BackendError("model is closed")
        return self.owner.call(lambda: self._invoke(inputs))

    def close(self) -> None:
        """Release the interpreter (and any delegate) on its own thread, after the jobs queued
        there so far; returns without waiting. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        try:
            self.owner.submit(self._release)
        except BackendError:  # its thread has already ended: nothing can run on it any more
            logger.warning("%s ended before its model was closed", self.owner.name)
            return
        self.owner.release()

    def _invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        interp = self._interpreter
        if interp is None:
            raise BackendError("model is closed")
        for index, array in zip(self._in_index, inputs, strict=True):
            interp.set_tensor(index, array)
        try:
            interp.invoke()
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"interpreter invoke failed: {exc}") from exc
        return [interp.get_tensor(index) for index in self._out_index]

    def _release(self) -> None:
        self._interpreter = None  # the last reference: the interpreter is freed on this thread

    def _check_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        if len(inputs) != len(self.inputs):
            raise InputError(f"model takes {len(self.inputs)} input(s), got {len(inputs)}")
        for spec, dtype, array in zip(self.inputs, self._in_dtypes, inputs, strict=True):
            if array.dtype != dtype or array.shape != spec.shape:
                raise InputError(
                    f"input {spec.name!r} needs {spec.dtype}{list(spec.shape)}, "
                    f"got {array.dtype}{list(array.shape)}"
                )


def tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    """A :class:`TensorSpec` from one entry of ``get_input_details()``/``get_output_details()``."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


def open_model(
    model: bytes,
    *,
    backend: str = "auto",
    accelerator: str = "cpu",
    threads: int | None = None,
    cpu_fallback_model: bytes | None = None,
    edgetpu_library: str | None = None,
    input_shape: Sequence[int] | None = None,
    owner: ModelThread | None = None,
) -> LoadedModel:
    """Load ``model`` (flatbuffer bytes, never a path) into a ready interpreter.

    The interpreter is created on ``owner`` and lives there (a new thread of its own when not
    given; the thread stops when its last model is closed).

    ``input_shape`` resizes the first input before allocation (models with a dynamic input
    shape, such as a mel-spectrogram over any number of samples; CPU only).

    ``accelerator`` is ``cpu``, ``edgetpu`` or ``auto``. When the Edge TPU delegate cannot be
    loaded the model falls back to the CPU, using ``cpu_fallback_model`` when given (an Edge
    TPU-compiled model cannot run without its delegate); this never raises for a missing TPU.
    """
    if accelerator not in ACCELERATORS:
        raise ConfigError(
            "model.accelerator", f"must be one of {', '.join(ACCELERATORS)}; got {accelerator!r}"
        )
    if threads is not None and threads < 1:
        raise ConfigError("model.threads", f"must be at least 1; got {threads}")
    num_threads = threads or os.cpu_count() or 1
    chosen = resolve_backend(backend)

    def create(thread: ModelThread) -> LoadedModel:
        if accelerator == "cpu" or input_shape is not None:
            cpu = _cpu_model(thread, chosen, model, num_threads, input_shape)
            cpu.backend_reason = chosen.reason
            return cpu
        accelerated = _edgetpu_model(thread, chosen, model, num_threads, edgetpu_library)
        if isinstance(accelerated, LoadedModel):
            accelerated.backend_reason = chosen.reason
            return accelerated
        reason = accelerated
        logger.warning("falling back to CPU: %s", reason)
        loaded = _cpu_model(thread, chosen, cpu_fallback_model or model, num_threads)
        loaded.degraded = accelerator == "edgetpu"
        loaded.fallback_reason = reason
        loaded.backend_reason = chosen.reason
        return loaded

    return _created_on(owner, create)


def open_on_edgetpu(
    model: bytes,
    *,
    backend: str = "auto",
    threads: int | None = None,
    edgetpu_library: str | None = None,
    owner: ModelThread | None = None,
) -> LoadedModel:
    """Load ``model`` with the Edge TPU delegate, or raise :class:`BackendError` saying why.

    The re-probe after a fallback to CPU: when the library or device is still missing this
    costs one failed ``dlopen`` and builds no interpreter. It runs on ``owner`` (by default a
    new thread, which ends with the failed attempt or with the model).
    """
    chosen = resolve_backend(backend)

    def create(thread: ModelThread) -> LoadedModel:
        count = threads or os.cpu_count() or 1
        accelerated = _edgetpu_model(thread, chosen, model, count, edgetpu_library)
        if isinstance(accelerated, str):
            raise BackendError(accelerated)
        accelerated.backend_reason = chosen.reason
        return accelerated

    return _created_on(owner, create)


def _created_on(
    owner: ModelThread | None, create: Callable[[ModelThread], LoadedModel]
) -> LoadedModel:
    """``create`` run on ``owner`` (or a new thread), which then holds the model."""
    thread = owner if owner is not None else ModelThread("interpreter")
    thread.acquire()
    try:
        return thread.call(lambda: create(thread))
    except BaseException:
        thread.release()
        raise


def _edgetpu_model(
    owner: ModelThread, backend: Backend, model: bytes, threads: int, library: str | None
) -> LoadedModel | str:
    """The model on the Edge TPU, or the reason the delegate is unavailable."""
    delegate, reason = load_edgetpu_delegate(backend.load_delegate, library)
    if delegate is None:
        return reason or "Edge TPU delegate unavailable"
    interp = _interpreter(backend, model, threads, [delegate])
    return LoadedModel(
        interp, owner=owner, backend=backend.name, accelerator="edgetpu", threads=threads
    )


def _cpu_model(
    owner: ModelThread,
    backend: Backend,
    model: bytes,
    threads: int,
    input_shape: Sequence[int] | None = None,
) -> LoadedModel:
    interp = _interpreter(backend, model, threads, None, input_shape)
    return LoadedModel(
        interp, owner=owner, backend=backend.name, accelerator="cpu", threads=threads
    )


def _interpreter(
    backend: Backend,
    model: bytes,
    threads: int,
    delegates: list[Any] | None,
    input_shape: Sequence[int] | None = None,
) -> Any:
    if not isinstance(model, bytes | bytearray | memoryview) or len(model) == 0:
        raise InputError("model must be non-empty flatbuffer bytes")
    try:
        interp = backend.interpreter(
            model_content=bytes(model), num_threads=threads, experimental_delegates=delegates
        )
        if input_shape is not None:
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(input_shape))
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        hint = ""
        if "edgetpu-custom-op" in str(exc):
            hint = EDGETPU_HINT + ": "
        raise BackendError(f"{hint}{backend.name} could not load the model: {exc}") from exc
    return interp
