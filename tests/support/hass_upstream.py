"""Home Assistant's own MQTT discovery schemas, read from its released source (not imported).

Importing ``homeassistant.components.mqtt`` needs Home Assistant's Python (3.13 for current
releases; this project runs on 3.11) and dozens of its dependencies, so it cannot run here. The
schemas are plain voluptuous literals, though: this module fetches the ``homeassistant`` wheel
from PyPI (``pip download --no-deps``, sha256-pinned, cached under ``~/.cache/edge-agent-tests``)
and reads, with :mod:`ast`, which keys each schema declares (``vol.Required``/``vol.Optional``
...) and which schemas it extends, resolving ``CONF_*`` names to their strings. What it gives is
the exact key sets Home Assistant validates a discovery payload with; value types are checked by
the hand-written rules in ``tests/hass/test_hass.py``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VERSION = "2025.4.4"
WHEEL = f"homeassistant-{VERSION}-py3-none-any.whl"
SHA256 = "b7970fe3ce3a9d032a3a5dee3cbf71b227e7f23fad14a23855ee252542ef2631"
_VOL_KEYS = {"Optional", "Required", "Exclusive", "Inclusive"}
MQTT = "homeassistant/components/mqtt/"
# The files that define the discovery schemas and the names they use (all parse on 3.11).
_SOURCES = (
    "homeassistant/const.py",
    *(f"{MQTT}{module}.py" for module in ("const", "config", "schemas", "sensor",
                                          "binary_sensor", "update")),
    "homeassistant/components/sensor/const.py",
)  # fmt: skip


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edge-agent-tests"


def fetch_wheel() -> Path:
    """The pinned wheel, downloaded once; fails the test with the reason when it cannot."""
    target = cache_dir() / WHEEL
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        argv += ["--python-version", "3.13", f"homeassistant=={VERSION}", "-d", str(target.parent)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0 or not target.exists():
            pytest.fail(
                f"cannot download {WHEEL} from the package registry:\n{done.stderr[-2000:]}"
            )
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SHA256:
        pytest.fail(f"{target} has sha256 {digest}, not the pinned {SHA256}: delete it")
    return target


@dataclass
class _Schema:
    keys: set[str] = field(default_factory=set)
    required: set[str] = field(default_factory=set)
    merged: set[str] = field(default_factory=set)  # names of schemas this one extends


@dataclass
class UpstreamSchemas:
    """Schema name (``module.NAME``) -> its keys, with the schemas it extends folded in."""

    schemas: dict[str, _Schema]

    def keys(self, name: str) -> set[str]:
        return self._fold(name, "keys", set())

    def required(self, name: str) -> set[str]:
        return self._fold(name, "required", set())

    def _fold(self, name: str, attr: str, seen: set[str]) -> set[str]:
        if name in seen or name not in self.schemas:
            return set()
        seen.add(name)
        schema = self.schemas[name]
        found = set(getattr(schema, attr))
        for other in schema.merged:
            found |= self._fold(other, attr, seen)
        return found


def load_schemas() -> UpstreamSchemas:
    with zipfile.ZipFile(fetch_wheel()) as wheel:
        sources = {name: wheel.read(name).decode() for name in wheel.namelist() if name in _SOURCES}
    trees = {name: ast.parse(text) for name, text in sources.items()}
    constants: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for tree in trees.values():
        constants.update(_string_constants(tree))
        aliases.update(_aliases(tree))
    for _ in range(3):  # CONF_QOS = ATTR_QOS = "qos"
        constants.update({a: constants[b] for a, b in aliases.items() if b in constants})
    schemas: dict[str, _Schema] = {}
    for name, tree in trees.items():
        module = name.removeprefix(MQTT).removesuffix(".py")
        schemas.update(_module_schemas(module, tree, constants))
    # Names imported from another module resolve to that module's schema of the same name.
    by_name: dict[str, list[str]] = {}
    for qualified in schemas:
        by_name.setdefault(qualified.rpartition(".")[2], []).append(qualified)
    for schema in schemas.values():
        schema.merged = {
            q for merged in schema.merged for q in by_name.get(merged.rpartition(".")[2], [])
        } - {""}
    return UpstreamSchemas(schemas)


def _string_constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = value.value
    return found


def _aliases(tree: ast.Module) -> dict[str, str]:
    return {
        node.targets[0].id: node.value.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Name)
    }


def _module_schemas(module: str, tree: ast.Module, constants: dict[str, str]) -> dict[str, _Schema]:
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        schema = _Schema()
        _collect(node.value, schema, constants, nested=False)
        if schema.keys or schema.merged:
            found[f"{module}.{node.targets[0].id}"] = schema
    return found


def _collect(node: ast.AST, schema: _Schema, constants: dict[str, str], *, nested: bool) -> None:
    """Keys declared in ``node``; names it extends; dict values are other schemas (nested)."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if key is not None and not nested:
                _declare(key, schema, constants)
            _collect(value, _Schema(), constants, nested=True)  # a nested schema: not ours
        return
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "extend":
            _merge(func.value, schema)
        for arg in node.args:
            _merge(arg, schema)
            _collect(arg, schema, constants, nested=nested)
        if isinstance(func, ast.Attribute):
            _collect(func.value, schema, constants, nested=nested)
        return
    if isinstance(node, ast.Attribute):
        _merge(node, schema)


def _merge(node: ast.AST, schema: _Schema) -> None:
    if isinstance(node, ast.Attribute) and node.attr == "schema":
        node = node.value
    if isinstance(node, ast.Name) and node.id.isupper():
        schema.merged.add(node.id)


def _declare(key: ast.AST, schema: _Schema, constants: dict[str, str]) -> None:
    if not (isinstance(key, ast.Call) and isinstance(key.func, ast.Attribute)):
        return
    if key.func.attr not in _VOL_KEYS or not key.args:
        return
    first = key.args[0]
    name = None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        name = first.value
    elif isinstance(first, ast.Name):
        name = constants.get(first.id)
    if name is None:
        return
    schema.keys.add(name)
    if key.func.attr == "Required":
        schema.required.add(name)
