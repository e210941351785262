"""Build the device wheel: the edge-agent distribution with only ``agent/`` and ``edge-agent``.

The repository's pyproject.toml builds the workstation distribution (agent, convert, fleet,
demo and their three console scripts). A device runs none of convert/, fleet/ or demo/, so
``make install`` installs this wheel instead. Its metadata is derived from pyproject.toml here,
never written twice: the same name, version and licence, the ``device``, ``video``, ``png``,
``tflite-runtime`` and ``audio`` extras, the ``edge-agent`` script, and ``agent*`` packages only.

Usage: ``python scripts/device_wheel.py OUT_DIR`` prints the path of the wheel it wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["agent*"]
SCRIPTS = ("edge-agent",)
EXTRAS = ("device", "video", "png", "tflite-runtime", "audio")
PROJECT_KEYS = ("name", "version", "description", "readme", "requires-python", "license")


def device_pyproject(workstation: dict[str, Any]) -> dict[str, Any]:
    """The device project table, derived from the workstation one."""
    project = workstation["project"]
    extras = project["optional-dependencies"]
    return {
        "build-system": workstation["build-system"],
        "project": {
            **{key: project[key] for key in PROJECT_KEYS},
            "dependencies": project["dependencies"],
            "optional-dependencies": {name: extras[name] for name in EXTRAS},
            "scripts": {name: project["scripts"][name] for name in SCRIPTS},
        },
        "tool": {
            "setuptools": {
                "packages": {"find": {"include": PACKAGES}},
                "package-data": workstation["tool"]["setuptools"]["package-data"],
            }
        },
    }


def to_toml(doc: dict[str, Any]) -> str:
    """TOML for nested tables of strings and lists of strings (all a pyproject here needs)."""
    lines: list[str] = []

    def table(path: list[str], values: dict[str, Any]) -> None:
        plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
        if path and plain:
            lines.append(f"[{'.'.join(_key(p) for p in path)}]")
        lines.extend(f"{_key(k)} = {json.dumps(v)}" for k, v in plain.items())
        for k, v in values.items():
            if isinstance(v, dict):
                table([*path, k], v)

    table([], doc)
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "").isalnum()
    return name if bare else json.dumps(name)


def build(out: Path) -> Path:
    workstation = tomllib.loads((ROOT / "pyproject.toml").read_text())
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-agent-device-") as tmp:
        stage = Path(tmp)
        (stage / "pyproject.toml").write_text(to_toml(device_pyproject(workstation)))
        shutil.copy2(ROOT / "README.md", stage / "README.md")
        shutil.copytree(
            ROOT / "agent", stage / "agent", ignore=shutil.ignore_patterns("__pycache__")
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(stage)],
            check=True,
        )
    project = workstation["project"]
    wheel = out / f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    if not wheel.is_file():
        raise SystemExit(f"pip wheel did not write {wheel}")
    return wheel


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(build(Path(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
