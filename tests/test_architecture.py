"""The import graph is the architecture: these tests read every module with ``ast`` and fail on an
import that runs the wrong way (docs/architecture.md draws the same rules).

* No cycle between packages of ``agent/`` (a top-level module is its own node).
* The pure core never imports an adapter; ``update/`` uses the served model, never the reverse.
* ``agent/`` never imports ``fleet/``, ``convert/``, ``demo/`` or TensorFlow; the workstation tools
  import agent's core (plus three named shared adapters), never its daemon, sources or store.
* Modules stay under 400 lines and ``agent/`` keeps at most 8 top-level modules.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKSTATION = ("fleet", "convert", "demo")

# Leaf helpers: anyone may import them; they import only each other.
FOUNDATION = ("agent.errors", "agent.reasons", "agent.jsonutil", "agent.backoff", "agent.fsutil")
# Pure data and decisions: no sockets, threads, subprocesses or runtimes (bundle.files and
# bundle.state are thin file adapters over fsutil kept beside the format they store).
CORE = (
    "agent.schema",
    "agent.bundle",
    "agent.pipeline",
    "agent.config",
    "agent.mqtt.topics",
    "agent.mqtt.messages",
    "agent.mqtt.encoding",
    "agent.mqtt.fields",
    "agent.mqtt.policy",
    "agent.mqtt.settings",
    "agent.mqtt.events",
    "agent.mqtt.ports",
    "agent.update.commands",
    "agent.update.freeze",
    "agent.update.transfer",
    "agent.update.protocol",
    "agent.update.records",
    "agent.update.report",
    "agent.events.tracker",
    "agent.events.message",
)
# Everything that talks to the outside: broker, camera, files, runtimes, systemd, the CLI.
ADAPTERS = (
    "agent.cli",
    "agent.clikit",
    "agent.commands",
    "agent.secrets",
    "agent.daemon",
    "agent.events",  # the package itself and agent.events.publisher (the outbox)
    "agent.hass",
    "agent.model",
    "agent.runtime",
    "agent.sources",
    "agent.store",
    "agent.mqtt",  # the package itself and agent.mqtt.client (paho)
    "agent.update",  # updater, install, canary_worker, partial
)
# Adapters the workstation tools share with the device, and why.
SHARED_ADAPTERS = {
    "agent.clikit": "the lazy sub-command dispatcher of all three CLIs",
    "agent.mqtt.client": "edge-fleet talks to the broker with the agent's client",
    "agent.runtime": "edge-convert validates what it produced on the device runtime",
}
MAX_LINES = 400
# Modules still over MAX_LINES, with their line counts; each entry is a debt, not a permission.
LINE_EXCEPTIONS: dict[str, int] = {}
MAX_TOP_LEVEL_MODULES = 8


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (or the name inside a module), dotted
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*tops: str) -> dict[str, Path]:
    return {module_name(p): p for top in tops for p in sorted((ROOT / top).rglob("*.py"))}


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import in the module, also those inside functions and ``TYPE_CHECKING`` blocks."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield Import(name, target, node.lineno)
            for alias in node.names:  # ``from agent.mqtt import client`` imports a module
                yield Import(name, f"{target}.{alias.name}", node.lineno)


ALL = modules("agent", *WORKSTATION)
IMPORTS = [imp for name, path in ALL.items() for imp in imports_of(name, path)]


def resolve(target: str) -> str | None:
    """The project module an import loads (``from m import name`` resolves to ``m``)."""
    while target and target not in ALL:
        target = target.rpartition(".")[0]
    return target or None


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str) -> str | None:
    """The layer of a module of agent/: the longest matching prefix wins."""
    best: tuple[int, str] | None = None
    for kind, prefixes in (("foundation", FOUNDATION), ("core", CORE), ("adapter", ADAPTERS)):
        for prefix in prefixes:
            if within(name, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), kind)
    return best[1] if best else None


def node(name: str) -> str:
    """The graph node of a module of agent/: its subpackage, or itself at the top level."""
    return ".".join(name.split(".")[:2])


def project_edges() -> list[tuple[Import, str]]:
    """(import, project module it loads), once per module and line."""
    edges: dict[tuple[str, int, str], tuple[Import, str]] = {}
    for imp in IMPORTS:
        target = resolve(imp.target)
        if target is not None and target != imp.source:
            edges.setdefault((imp.source, imp.line, target), (imp, target))
    return list(edges.values())


def package_graph() -> dict[str, dict[str, list[Import]]]:
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp, target in project_edges():
        if within(imp.source, "agent") and within(target, "agent") and target != "agent":
            a, b = node(imp.source), node(target)
            if a != b:
                graph[a][b].append(imp)
    return graph


def cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports_it_checks() -> None:
    graph = package_graph()
    assert "agent.schema" in graph["agent.bundle"]
    assert "agent.model" in graph["agent.update"]
    assert len(ALL) > 100


def test_every_module_of_agent_has_a_layer() -> None:
    unplaced = [
        name for name in ALL if within(name, "agent") and name != "agent" and not layer(name)
    ]
    assert unplaced == [], "place each new module in FOUNDATION, CORE or ADAPTERS"


def test_no_cycle_between_packages_of_agent() -> None:
    graph = package_graph()
    report = []
    for component in cycles(graph):
        for a in component:
            for b in component:
                report += [str(imp) for imp in graph[a].get(b, [])]
    assert report == []


def test_foundation_imports_only_foundation() -> None:
    bad = [
        str(imp)
        for imp, target in project_edges()
        if layer(imp.source) == "foundation" and layer(target) != "foundation"
    ]
    assert bad == []


def test_core_never_imports_an_adapter() -> None:
    bad = [
        str(imp)
        for imp, target in project_edges()
        if layer(imp.source) == "core" and layer(target) not in ("core", "foundation")
    ]
    assert bad == []


def test_update_uses_the_served_model_never_the_reverse() -> None:
    graph = package_graph()
    assert graph["agent.update"]["agent.model"], "update/ loads, stages and swaps through model/"
    assert [str(imp) for imp in graph["agent.model"].get("agent.update", [])] == []


@pytest.mark.parametrize("forbidden", ["fleet", "convert", "demo", "bench", "tests"])
def test_agent_never_imports_a_workstation_package(forbidden: str) -> None:
    bad = [
        str(imp) for imp in IMPORTS if within(imp.source, "agent") and within(imp.target, forbidden)
    ]
    assert bad == []


@pytest.mark.parametrize(
    "forbidden", ["tensorflow", "keras", "tf_keras", "tensorflow_model_optimization"]
)
def test_agent_never_imports_tensorflow(forbidden: str) -> None:
    bad = [
        str(imp) for imp in IMPORTS if within(imp.source, "agent") and within(imp.target, forbidden)
    ]
    assert bad == []


def test_workstation_tools_import_only_agents_core_and_named_shared_adapters() -> None:
    bad = [
        str(imp)
        for imp, target in project_edges()
        if imp.source.split(".")[0] in WORKSTATION
        and within(target, "agent")
        and layer(target) not in ("core", "foundation")
        and not any(within(target, shared) for shared in SHARED_ADAPTERS)
    ]
    assert bad == []


def test_no_module_of_agent_is_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for name, path in ALL.items()
        if within(name, "agent")
    }
    over = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert set(over) == set(LINE_EXCEPTIONS), "shrink the module, or drop it from LINE_EXCEPTIONS"
    grown = {p: n for p, n in over.items() if n > LINE_EXCEPTIONS[p]}
    assert grown == {}, "an exception may shrink, never grow"


def test_agent_keeps_at_most_8_top_level_modules() -> None:
    top = sorted(p.name for p in (ROOT / "agent").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_architecture_doc_names_every_package_and_top_level_module() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    table = text.split("## Where things live\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([^`]+)`", table))
    missing = []
    for top in ("agent", *WORKSTATION):
        for entry in sorted((ROOT / top).iterdir()):
            if entry.name in ("__init__.py", "__main__.py"):
                continue
            if entry.is_dir() and (entry / "__init__.py").exists():
                names = {f"{top}/{entry.name}/", f"{entry.name}/"}
            elif entry.suffix == ".py":
                names = {f"{top}/{entry.name}", entry.name}
            else:
                continue
            if top == "agent":
                names = {n for n in names if n.startswith("agent/")}
            if not names & named:
                missing.append(f"{top}/{entry.name}")
    assert missing == []


def test_test_modules_have_unique_file_names() -> None:
    """pytest's default import mode imports test modules by file name: two test_x.py clash."""
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
