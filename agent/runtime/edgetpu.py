"""Edge TPU delegate loading and the re-probe schedule used after a fallback to CPU.

The delegate library is touched only when the accelerator is ``edgetpu`` or ``auto``. A
missing library or device surfaces from ``load_delegate`` as ``ValueError`` (or ``OSError``
from the dynamic loader); both become a reason string, never an exception in a loop.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.backoff import Backoff

_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def edgetpu_library(system: str | None = None) -> str:
    """The Edge TPU delegate's shared-library name on ``system`` (default: this platform)."""
    return _LIBRARIES.get(system or platform.system(), _LIBRARIES["Linux"])


def load_edgetpu_delegate(
    load_delegate: Callable[..., Any], library: str | None = None
) -> tuple[Any | None, str | None]:
    """Try to load the Edge TPU delegate: ``(delegate, None)`` or ``(None, reason)``."""
    lib = library or edgetpu_library()
    try:
        # Probe with the dynamic loader first: a missing library then fails cleanly here
        # instead of inside the runtime's Delegate constructor (which warns on teardown).
        ctypes.CDLL(lib)
        return load_delegate(lib), None
    except (OSError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"Edge TPU delegate {lib} unavailable: {first_line}"


@dataclass
class ReprobeSchedule(Backoff):
    """:class:`~agent.backoff.Backoff` with defaults for re-probing a missing accelerator."""

    base: float = 5.0
    max_delay: float = 600.0
