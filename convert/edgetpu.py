"""Parse the Edge TPU compiler's log (pure): which ops were mapped to the TPU and which were not.

``edgetpu_compiler -s`` prints its version, a summary ("Number of operations that will run on
Edge TPU: N", "... on CPU: M") and, with ``-s``, an "Operator / Count / Status" table in which
mapped ops say "Mapped to Edge TPU" and the others give the reason they stay on the CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAPPED_STATUS = "Mapped to Edge TPU"
INSTALL_HINT = (
    "edgetpu_compiler is not on PATH. It runs on x86-64 Debian/Ubuntu only: add Coral's apt "
    "repository (deb https://packages.cloud.google.com/apt coral-edgetpu-stable main) and run "
    "'sudo apt-get install edgetpu-compiler'; see https://coral.ai/docs/edgetpu/compiler/"
)

_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_TPU_COUNT = re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)")
_CPU_COUNT = re.compile(r"Number of operations that will run on CPU:\s*(\d+)")
_TOTAL = re.compile(r"Total number of operations:\s*(\d+)")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_ERROR = re.compile(r"^(ERROR|Error|error)\b|Compilation failed|Internal compiler error")


@dataclass(frozen=True)
class OpStatus:
    """One row of the operator table."""

    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status.startswith(MAPPED_STATUS)


@dataclass(frozen=True)
class CompilerLog:
    compiler_version: str
    succeeded: bool
    tpu_ops: int
    cpu_ops: int
    operations: tuple[OpStatus, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def coverage(self) -> float:
        """Fraction of operations that run on the Edge TPU (0 when nothing was compiled)."""
        total = self.tpu_ops + self.cpu_ops
        return self.tpu_ops / total if total else 0.0

    @property
    def unmapped(self) -> tuple[OpStatus, ...]:
        return tuple(op for op in self.operations if not op.mapped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compiler_version": self.compiler_version,
            "succeeded": self.succeeded,
            "tpu_ops": self.tpu_ops,
            "cpu_ops": self.cpu_ops,
            "coverage": round(self.coverage, 4),
            "operations": [
                {"op": o.op, "count": o.count, "status": o.status, "mapped": o.mapped}
                for o in self.operations
            ],
            "errors": list(self.errors),
        }


def parse_compiler_log(text: str) -> CompilerLog:
    """Read the compiler's stdout. Missing summary lines fall back to the operator table."""
    operations = tuple(_table_rows(text))
    tpu = _int(_TPU_COUNT, text)
    cpu = _int(_CPU_COUNT, text)
    if tpu is None:
        tpu = sum(o.count for o in operations if o.mapped)
    if cpu is None:
        cpu = sum(o.count for o in operations if not o.mapped)
        total = _int(_TOTAL, text)
        if total is not None and not operations:
            cpu = total - tpu
    errors = tuple(line.strip() for line in text.splitlines() if _ERROR.search(line.strip()))
    version = _VERSION.search(text)
    succeeded = (
        "Model compiled successfully" in text or "Compilation succeeded" in text
    ) and not errors
    return CompilerLog(
        compiler_version=version.group(1) if version else "",
        succeeded=succeeded,
        tpu_ops=tpu,
        cpu_ops=cpu,
        operations=operations,
        errors=errors,
    )


def _int(pattern: re.Pattern[str], text: str) -> int | None:
    found = pattern.search(text)
    return int(found.group(1)) if found else None


def _table_rows(text: str) -> list[OpStatus]:
    rows: list[OpStatus] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Operator") and "Status" in stripped:
            in_table = True
            continue
        if not in_table or not stripped or set(stripped) <= {"-", " "}:
            continue
        row = _ROW.match(stripped)
        if row is None:
            in_table = False
            continue
        rows.append(OpStatus(row.group(1), int(row.group(2)), row.group(3)))
    return rows
