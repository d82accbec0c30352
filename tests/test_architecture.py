"""The folders are the architecture: import directions, cycles and sizes, checked on the source.

Every ``import`` counts, function-local ones included. The rooms and the arrows allowed between
them are drawn in the README (Architecture).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

# room -> the rooms it may import. The base layer (harness/*.py, tracks) may be imported by anyone.
BASE = {"base", "tracks"}
ALLOWED = {
    "cli": {"render", "standings", "store", "grading", "sandbox", "scoring"},
    "render": {"standings", "store"},
    "standings": {"store"},
    "store": set(),
    "grading": {"sandbox", "scoring", "store"},
    "sandbox": set(),
    "scoring": {"store"},  # scorer artefacts (curves, grids) are written beside the store
    "ingestion": set(),
    "tracks": set(),
    "base": set(),
}


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2:
        return "base"
    sub = parts[1]
    return sub if sub in ALLOWED else "base"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every harness module a file imports, at any depth of the file (lazy imports count)."""
    tree = ast.parse(path.read_text())
    found = set()
    this = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "harness")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "harness":
            for a in node.names:  # ``from harness.x import y`` may import the submodule harness.x.y
                sub = f"{node.module}.{a.name}"
                found.add(sub if _exists(sub) else node.module)
    found.discard(this)
    return found


def _exists(module: str) -> bool:
    p = ROOT.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(p): imports_of(p) for p in SOURCES}


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every component is one module.
    A package's ``__init__`` importing its own submodules (re-exports) is not a cycle of rooms."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def edges(m):
        return [d for d in GRAPH.get(m, ()) if d in GRAPH and not m == d.rsplit(".", 1)[0]]

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for m in GRAPH:
        if m not in index:
            visit(m)
    cycles = [sorted(c) for c in comps if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    room = room_of(module)
    bad = [d for d in sorted(GRAPH[module])
           if room_of(d) != room and room_of(d) not in ALLOWED[room] | BASE]
    assert not bad, f"{module} ({room}) imports {bad}: allowed rooms are {sorted(ALLOWED[room] | BASE)}"


def test_nothing_imports_cli():
    importers = [m for m, deps in GRAPH.items() if room_of(m) != "cli" and any(room_of(d) == "cli" for d in deps)]
    assert not importers


def test_ingestion_imports_nothing_of_the_grader():
    """The student side (sandboxed) imports only itself, compat and chainer_env: the scorer, the
    reference classifier, the data caches and the store never enter the sandbox's import graph."""
    allowed = {"harness", "harness.compat", "harness.chainer_env"}
    for m, deps in GRAPH.items():
        if room_of(m) == "ingestion":
            bad = [d for d in deps if room_of(d) != "ingestion" and d not in allowed]
            assert not bad, f"{m} imports {bad}"


def test_metrics_do_no_io():
    """Pure metrics: arrays in, numbers out. No file, data set or model is opened in harness.scoring.metrics."""
    for path in (PACKAGE / "scoring" / "metrics").rglob("*.py"):
        tree = ast.parse(path.read_text())
        deps = imports_of(path)
        assert not [d for d in deps if not d.startswith("harness.scoring.metrics")], (path, deps)
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        attrs = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert "open" not in calls, path
        assert not attrs & {"load", "save", "savez", "savez_compressed", "read_text", "write_text", "read_bytes"}, path


def test_few_loose_modules_and_small_files():
    loose = [p.name for p in PACKAGE.glob("*.py")]
    assert len(loose) <= 8, loose
    big = [(str(p.relative_to(ROOT)), n) for p in SOURCES if (n := len(p.read_text().splitlines())) > 700]
    assert not big, big
    big_tests = [(p.name, n) for p in (ROOT / "tests").rglob("*.py") if (n := len(p.read_text().splitlines())) > 800]
    assert not big_tests, big_tests
