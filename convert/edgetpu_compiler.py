"""Run ``edgetpu_compiler`` on a full-integer model and parse what it says (adapter)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from agent.errors import BackendError
from convert.edgetpu import INSTALL_HINT, CompilerLog, parse_compiler_log

COMPILER = "edgetpu_compiler"
TIMEOUT_S = 600


def compile_for_edgetpu(model: Path, out_dir: Path) -> tuple[CompilerLog, str]:
    """Compile ``model`` into ``out_dir``; return the parsed log and the raw compiler output.

    Raises :class:`BackendError` with installation instructions when the compiler is missing,
    and when it fails.
    """
    executable = shutil.which(COMPILER)
    if executable is None:
        raise BackendError(INSTALL_HINT)
    try:
        done = subprocess.run(
            [executable, "-s", "-o", str(out_dir), str(model)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"{COMPILER} could not run: {exc}") from exc
    text = done.stdout + done.stderr
    log = parse_compiler_log(text)
    if done.returncode != 0 or not log.succeeded:
        reason = log.errors[0] if log.errors else f"exit status {done.returncode}"
        raise BackendError(f"{COMPILER} failed on {model.name}: {reason}")
    return log, text
