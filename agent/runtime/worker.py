"""The one thread that makes every call on an interpreter, for the interpreter's whole life.

The TFLite interpreter is not thread-safe, and a delegate (XNNPACK's weight cache, the Edge
TPU's) may keep per-thread state, so a :class:`~agent.runtime.model.LoadedModel` never calls its
interpreter from the caller's thread: creation and ``allocate_tensors``, the warm-up, every
``set_tensor`` / ``invoke`` / ``get_tensor`` and the release run as jobs on its
:class:`ModelThread`. A caller on that thread runs inline (the interpreter stage of the service,
a chain's later stages); any other thread (the updater loading and warming a model, the
canary, a test) hands the job over and waits for it.

One :class:`ModelThread` may own several interpreters (a chain's stages and its last model), and
lives while any of them is open: each model takes a reference when it is created on the thread
and drops it when it is closed; the last drop stops the thread once its queued jobs have run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from agent.errors import BackendError

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Job(Generic[T]):
    """One call to run on the owning thread; the caller may wait for its value or exception."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self.fn()
        except BaseException as exc:  # handed to the waiting caller, re-raised there
            self._error = exc
        finally:
            self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def wait(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set by run() when no error


class ModelThread:
    """A daemon thread running jobs in order; the owner of the interpreters created on it."""

    def __init__(self, name: str = "interpreter") -> None:
        self._jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._users = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def on_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on this thread and return its value (inline when already on it)."""
        if self.on_thread():
            return fn()
        job: _Job[T] = _Job(fn)
        self._put(job)
        return job.wait()

    def submit(self, fn: Callable[[], object]) -> None:
        """Queue ``fn`` without waiting (a failure is logged; ``fn`` reports its own outcome)."""

        def logged() -> None:
            try:
                fn()
            except Exception:
                log.exception("a job on %s failed", self.name)

        self._put(_Job(logged))

    def acquire(self) -> None:
        """An interpreter now lives on this thread."""
        with self._lock:
            if self._stopping:
                raise BackendError(f"{self.name} has stopped")
            self._users += 1

    def release(self) -> None:
        """An interpreter of this thread was closed; the last one stops the thread (after the
        jobs queued so far)."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._stopping:
                return
            self._stopping = True
        self._jobs.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (never from the thread itself); whether it has."""
        if not self.on_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _put(self, job: _Job[T]) -> None:
        with self._lock:  # nothing is queued behind the stop, where no one would run it
            if self._stopping or not self._thread.is_alive():
                raise BackendError(f"{self.name} has stopped")
            self._jobs.put(job)  # type: ignore[arg-type]  # the queue holds jobs of any type

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            job.run()
        while True:  # a job queued after the stop is refused, never left waiting
            try:
                late = self._jobs.get_nowait()
            except queue.Empty:
                return
            if late is not None:
                late.fail(BackendError(f"{self.name} has stopped"))
