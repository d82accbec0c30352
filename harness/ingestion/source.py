"""A student's code file as the harness runs it: a ``.py`` module, or a Jupyter notebook's definitions.

From a notebook (``course.ipynb:Model1``) the harness takes the definitions only: imports, functions,
classes and constants (assignments without calls), and ``try``/``if`` blocks made of those. Every
other top-level statement (data loading, training loops, plots) is skipped and remembered, so a
message can name the notebook-only line a definition depends on. IPython magics (``%matplotlib
inline``, ``%%time``) and shell lines (``!pip install ...``) are skipped too.

Imports are scanned before anything runs: every module the grader lacks is reported at once; a
display-only module (matplotlib, IPython, ...), or CuPy on a CPU grader, becomes a do-nothing stub
and a warning instead of a failure.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

DISPLAY_MODULES = frozenset({"matplotlib", "IPython", "ipywidgets", "ipykernel", "seaborn", "plotly", "tqdm",
                             "graphviz", "pydot", "japanize_matplotlib", "google", "chainerui", "pandas_profiling"})
GPU_MODULES = frozenset({"cupy", "cupyx", "cupy_backends"})
KEPT_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}  # the cell's code still counts
_SHELL_ASSIGN = re.compile(r"^\s*[A-Za-z_][\w, ]*=\s*[!%]")


class SourceError(Exception):
    """A file that cannot be run: a syntax error, an unreadable notebook, missing imports (all of them)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass
class Stmt:
    node: ast.stmt
    where: str  # "model.py" or "course.ipynb, cell 4": what a message names, and the code's filename
    lines: list[str]

    def text(self, lineno: int | None = None) -> str:
        i = (lineno or self.node.lineno) - 1
        return self.lines[i].strip() if 0 <= i < len(self.lines) else ""


@dataclass
class Source:
    file: str
    path: Path
    notebook: bool
    kept: list[Stmt] = field(default_factory=list)
    skipped: list[tuple[str, int, str, str]] = field(default_factory=list)  # (where, line, text, why)
    skipped_names: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # name -> (where, line, text)

    def notebook_only(self, name: str) -> str | None:
        """Where a name is bound only by a skipped notebook line, as a phrase for a message."""
        hit = self.skipped_names.get(name)
        if hit is None:
            return None
        where, line, text = hit
        return (f"`{name}`, which only a top-level notebook statement defines ({where}, line {line}: `{text}`); "
                f"the harness runs definitions only, not that line: make `{name}` a constant, a default "
                f"argument or a `<key>_args` entry in submission.yaml")


def _syntax_error(where: str, exc: SyntaxError) -> str:
    text = (exc.text or "").strip()
    return f"{where}, line {exc.lineno}: syntax error: {exc.msg}" + (f": `{text}`" if text else "")


def read(root: Path, file: str) -> Source:
    """Parse ``root/file`` (never runs it); SourceError on a syntax error or an unreadable notebook."""
    path = (root / file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError([f"{file}: cannot be read ({exc.strerror})"]) from None
    if file.endswith(".ipynb"):
        return _read_notebook(file, path, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError([f"{file}: not UTF-8 text"]) from None
    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as exc:
        raise SourceError([_syntax_error(file, exc)]) from None
    lines = text.splitlines()
    return Source(file, path, False, [Stmt(node, file, lines) for node in tree.body])


def _cells(file: str, raw: bytes) -> list[list[str]]:
    """The notebook's cells as lists of lines; non-code cells as empty lists (cell numbers stay true)."""
    try:
        nb = json.loads(raw.decode("utf-8"))
        cells = nb["cells"] if "cells" in nb else nb["worksheets"][0]["cells"]  # nbformat 4, or 3
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError([f"{file}: not a readable Jupyter notebook ({type(exc).__name__}: {exc}); "
                           f"save it from Jupyter, or export the classes to a .py file"]) from None
    out = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            out.append([])
            continue
        src = cell.get("source", cell.get("input", ""))
        text = "".join(src) if isinstance(src, list) else str(src)
        out.append(text.splitlines())
    return out


def _read_notebook(file: str, path: Path, raw: bytes) -> Source:
    source = Source(file, path, True)
    for number, lines in enumerate(_cells(file, raw), start=1):
        if not lines:
            continue
        where = f"{file}, cell {number}"
        clean = list(lines)
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is not None and lines[first].lstrip().startswith("%%"):
            magic = lines[first].strip()[2:].split()[0] if lines[first].strip()[2:] else ""
            if magic not in KEPT_CELL_MAGICS:
                source.skipped.append((where, first + 1, lines[first].strip(), f"cell magic %%{magic}"))
                continue
            clean[first] = ""
            source.skipped.append((where, first + 1, lines[first].strip(), "IPython magic"))
        for i, line in enumerate(lines):
            s = line.strip()
            if s.startswith(("%", "!")) or _SHELL_ASSIGN.match(line) or (s.endswith("?") and not s.startswith("#")):
                if clean[i]:
                    why = "shell command" if s.startswith("!") or re.match(r"^[\w, ]*=\s*!", s) else "IPython magic"
                    source.skipped.append((where, i + 1, s, why))
                clean[i] = ""
        try:
            tree = ast.parse("\n".join(clean), filename=where)
        except SyntaxError as exc:
            raise SourceError([_syntax_error(where, exc)]) from None
        for node in tree.body:
            stmt = Stmt(node, where, lines)
            if is_definition(node):
                source.kept.append(stmt)
            else:
                source.skipped.append((where, node.lineno, stmt.text(), "top-level statement"))
                for name in bound_names(node):
                    source.skipped_names.setdefault(name, (where, node.lineno, stmt.text()))
    kept_names = {n for s in source.kept for n in bound_names(s.node)}
    for name in kept_names:
        source.skipped_names.pop(name, None)
    # a "constant" computed from skipped data (``x, t = train[0]``; ``n_pixels = x.size``) is skipped too
    kept = []
    for stmt in source.kept:
        node = stmt.node
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and any(
                isinstance(n, ast.Name) and n.id in source.skipped_names for n in ast.walk(node.value)):
            source.skipped.append((stmt.where, node.lineno, stmt.text(), "top-level statement"))
            for name in bound_names(node):
                source.skipped_names.setdefault(name, (stmt.where, node.lineno, stmt.text()))
            continue
        kept.append(stmt)
    source.kept = kept
    return source


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)) for n in ast.walk(node))


def is_definition(node: ast.stmt) -> bool:
    """Imports, functions, classes, constants (no calls), docstrings, and try/if blocks of those."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names_only = all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Store, ast.Starred))
                         for t in targets for n in ast.walk(t))
        return names_only and (node.value is None or not _has_call(node.value))
    if isinstance(node, ast.Try):
        blocks = node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        return all(is_definition(s) for s in blocks)
    if isinstance(node, ast.If):
        return not _has_call(node.test) and all(is_definition(s) for s in node.body + node.orelse)
    return False


def bound_names(node: ast.AST) -> set[str]:
    """Names a top-level statement binds (assignments, imports, defs, loop and with targets)."""
    names = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names if a.name != "*")
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
    return names


# ----- imports: every missing one at once; stubs for display-only modules (and CuPy on a CPU grader)

def _guarded(node: ast.Try) -> bool:
    """A try block whose handlers catch ImportError (or anything): its imports may fail on purpose."""
    for h in node.handlers:
        if h.type is None:
            return True
        names = [e for e in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type])]
        if any(isinstance(e, ast.Name) and e.id in ("ImportError", "ModuleNotFoundError", "Exception",
                                                    "BaseException") for e in names):
            return True
    return False


def _imports(stmts) -> list[tuple[Stmt, ast.stmt, str]]:
    """(stmt, import node, module) for the imports that run when the code is loaded (not in functions,
    not under a try that catches ImportError)."""
    out = []

    def visit(stmt: Stmt, node: ast.stmt):
        if isinstance(node, ast.Import):
            out.extend((stmt, node, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((stmt, node, node.module))
        elif isinstance(node, ast.Try) and not _guarded(node):
            for child in node.body + node.orelse + node.finalbody:
                visit(stmt, child)
        elif isinstance(node, ast.If):
            for child in node.body + node.orelse:
                visit(stmt, child)

    for stmt in stmts:
        visit(stmt, stmt.node)
    return out


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):
        return False
    except Exception:  # the student's own package raised while importing: let the real import say so
        return True


def scan_imports(source: Source, on_gpu: bool) -> tuple[list[str], list[str], list[str]]:
    """(problems, warnings, modules to stub) for the imports ``source`` runs when loaded."""
    problems, warnings, stubs = [], [], []
    seen = set()
    for stmt, node, module in _imports(source.kept):
        top = module.split(".")[0]
        if module in seen or _available(module):
            continue
        seen.add(module)
        line = node.lineno
        text = stmt.text(line)
        if top in DISPLAY_MODULES:
            stubs.append(module)
            warnings.append(f"{stmt.where}, line {line}: `{text}`: {top} is not installed on the grader; "
                            f"it is replaced by a stand-in that does nothing (plots and displays are skipped)")
        elif top in GPU_MODULES and not on_gpu:
            stubs.append(module)
            warnings.append(f"{stmt.where}, line {line}: `{text}`: CuPy is not installed on this CPU grader; "
                            f"the import is replaced by a stand-in: inside the model use self.xp (or "
                            f"chainer.backend.get_array_module), which is numpy here and cupy on a GPU")
        elif top in GPU_MODULES:
            problems.append(f"{stmt.where}, line {line}: `{text}`: {module} is not installed on the GPU grader")
        else:
            problems.append(f"{stmt.where}, line {line}: `{text}`: no module named '{module}' on the grader "
                            f"(the grader has Chainer, NumPy and the standard library; put your own helpers "
                            f"in a .py file inside the submission folder)")
    return problems, warnings, stubs


class _Nothing:
    """What a stubbed module's attributes are: callable, subscriptable, a context manager; does nothing."""

    def __init__(self, passthrough: bool = False):
        self._passthrough = passthrough

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args, **kwargs):
        return args[0] if self._passthrough and args else self

    def __getitem__(self, key):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Nothing(passthrough=self.__name__.split(".")[0] == "tqdm")


def install_stubs(modules: list[str]) -> list[str]:
    """Put stand-in modules (and their parents) in sys.modules; return the names added."""
    added = []
    for module in modules:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                stub = _StubModule(name)
                stub.__path__ = []
                sys.modules[name] = stub
                added.append(name)
                if i > 1:
                    setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], stub)
    return added


def remove_stubs(names: list[str]) -> None:
    for name in names:
        if isinstance(sys.modules.get(name), _StubModule):
            del sys.modules[name]


def free_names(stmts) -> dict[str, Stmt]:
    """Global names the kept definitions read but nothing kept (nor a builtin) defines: name -> first user."""
    bound = set(dir(builtins)) | {"__name__", "__file__", "__doc__"}
    for s in stmts:
        for n in ast.walk(s.node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                bound.add(n.id)
            elif isinstance(n, ast.arg):
                bound.add(n.arg)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(n.name)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in n.names)
    free = {}
    for s in stmts:
        for n in ast.walk(s.node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound:
                free.setdefault(n.id, s)
    return free
