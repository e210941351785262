"""``MemoryDenyWriteExecute=yes`` is safe for LiteRT: the real interpreter runs under it.

systemd enforces the setting with a seccomp filter (or, on newer versions, the kernel's
``PR_SET_MDWE``). The kernel's own switch is what a test can set without systemd as PID 1: the
child process turns it on for itself, proves that W+X memory is refused, then loads our
converted models through the agent's runtime (XNNPACK included) and runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.models import ModelFactory

pytestmark = pytest.mark.tensorflow

CHILD = r"""
import ctypes, mmap, sys
import numpy as np
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    print("unsupported", ctypes.get_errno()); sys.exit(0)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("wx-allowed"); sys.exit(1)
except OSError:
    pass
from agent.runtime.model import open_model
for path in sys.argv[1:]:
    model = open_model(open(path, "rb").read(), threads=2)
    spec = model.inputs[0]
    outputs = model.invoke([np.zeros(spec.shape, spec.dtype)])
    assert outputs[0].size == 10, outputs[0].shape
print("ok", len(sys.argv) - 1)
"""


def test_litert_with_xnnpack_runs_when_write_execute_memory_is_denied(
    sample_models: ModelFactory,
) -> None:
    models = [sample_models("int8").tflite, sample_models("float32").tflite]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, models)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
        timeout=120,
    )
    if result.stdout.startswith("unsupported"):
        pytest.skip(f"this kernel has no PR_SET_MDWE ({result.stdout.strip()})")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok 2"
