"""``harness check``, inside the ingestion process: the source read (and a notebook's definitions taken)
exactly as ``grade`` will, device-portability mistakes found in the source, then the models built and
run on a tiny batch through the same code paths the grade uses. Problems fail the check; warnings
(a reshaped output, a stubbed plotting import, a gradient the stand-in loss does not reach under a
custom ``train:``) do not, because the grade would not fail on them either."""

from __future__ import annotations

import ast
from typing import Callable

import numpy as np

from harness.ingestion import source as source_mod
from harness.ingestion.common import F, Job, SubmissionError, chainer, to_numpy
from harness.ingestion.shapes import OutputError, range_problem

# numpy calls that are fine inside forward (dtypes and constants, not array computations)
NUMPY_ALLOWED = {"float16", "float32", "float64", "int8", "int32", "int64", "uint8", "dtype", "prod", "sqrt",
                 "finfo", "iinfo", "pi", "e"}
DEVICE_CALLS = {"to_gpu", "to_cpu", "to_device", "to_intel64"}
FORWARD_NAMES = {"forward", "__call__", "anomaly_score"}  # what the harness calls with Variables on the device
SAMPLER_NAMES = {"make_hidden"}  # its numpy output is copied to the device by the harness


def run_check(job: Job, track) -> dict:
    """Every problem and warning for the job's track: {"problems": [...], "warnings": [...]}."""
    problems, warnings, blocking = [], [], []
    refs = list(job.spec["classes"].values()) + ([job.spec["train"]] if job.spec.get("train") else [])
    files = list(dict.fromkeys(ref.rsplit(":", 1)[0] for ref in refs))
    for file in files:
        try:
            src = job.source(file)
        except SubmissionError as exc:
            blocking += exc.problems
            continue
        names = [ref.rsplit(":", 1)[1] for ref in job.spec["classes"].values() if ref.rsplit(":", 1)[0] == file]
        p, w = static_problems(src, names)
        problems += p
        warnings += w
        if src.notebook:
            warnings += notebook_warnings(src)
        missing, stubbed, _ = source_mod.scan_imports(src, job.device.xp is not np)
        blocking += missing
        warnings += stubbed
    if not blocking:
        try:
            problems += track.check(job)
        except SubmissionError as exc:
            problems += exc.problems
    return {"problems": blocking + problems, "warnings": list(dict.fromkeys(warnings + job.warnings))}


# ----- the source: numpy and device calls wherever the harness calls the student's code

def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def numpy_aliases(stmts) -> dict[str, str]:
    """Every name the file binds to numpy or to something in it: np -> numpy, npr -> numpy.random,
    randn -> numpy.random.randn (``import numpy as np``, ``from numpy import random``, ``xp = np``...)."""
    aliases: dict[str, str] = {}
    for s in stmts:
        for n in ast.walk(s.node):
            if isinstance(n, ast.Import):
                for a in n.names:
                    if a.name == "numpy" or a.name.startswith("numpy."):
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:
                            aliases["numpy"] = "numpy"
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module and \
                    (n.module == "numpy" or n.module.startswith("numpy.")):
                for a in n.names:
                    aliases[a.asname or a.name] = f"{n.module}.{a.name}"
    for s in stmts:
        node = s.node
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Name, ast.Attribute)):
            target = _dotted(node.value)
            root = target.split(".")[0] if target else None
            if root in aliases:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        aliases[t.id] = aliases[root] + target[len(root):]
    return aliases


def _numpy_call(call: ast.Call, aliases: dict[str, str]) -> tuple[str, str] | None:
    """(as written, numpy path) when ``call`` calls into numpy beyond dtypes and constants."""
    written = _dotted(call.func)
    if not written:
        return None
    root = written.split(".")[0]
    if root not in aliases:
        return None
    full = aliases[root] + written[len(root):]
    parts = full.split(".")
    if parts[0] != "numpy" or len(parts) < 2 or parts[1] in NUMPY_ALLOWED:
        return None
    return written, full


def _reached(roots, functions: dict[str, list[ast.AST]]) -> dict[ast.AST, str]:
    """The functions ``roots`` call, transitively, by name (``helper(...)``, ``self.helper(...)``):
    function node -> the root it is reached from."""
    seen: dict[ast.AST, str] = {}
    todo = [(fn, fn.name) for fn in roots]
    while todo:
        fn, root = todo.pop()
        if fn in seen:
            continue
        seen[fn] = root
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else (
                    node.func.attr if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "self" else None)
                for callee in functions.get(name or "", []):
                    if callee.name != "__init__":
                        todo.append((callee, root))
    return seen


def static_problems(src: source_mod.Source, class_names: list[str]) -> tuple[list[str], list[str]]:
    """Device-portability mistakes in what the harness calls of ``class_names``: (problems, warnings).
    Parsed, never run."""
    aliases = numpy_aliases(src.kept)
    where_of: dict[ast.AST, source_mod.Stmt] = {}
    functions: dict[str, list[ast.AST]] = {}
    classes: dict[str, ast.ClassDef] = {}
    for s in src.kept:
        for n in ast.walk(s.node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.setdefault(n.name, []).append(n)
                where_of[n] = s
            elif isinstance(n, ast.ClassDef):
                classes[n.name] = n
    graded, todo = [], list(class_names)
    while todo:  # the graded classes and their base classes defined in the same file
        cls = classes.get(todo.pop())
        if cls is not None and cls not in graded:
            graded.append(cls)
            todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    methods = [m for c in graded for m in c.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    forward = _reached([m for m in methods if m.name in FORWARD_NAMES], functions)
    sampler = {fn: r for fn, r in _reached([m for m in methods if m.name in SAMPLER_NAMES], functions).items()
               if fn not in forward}
    problems, warnings = [], []
    for reached, is_forward in ((forward, True), (sampler, False)):
        for fn, root in reached.items():
            who = f"{fn.name}()" if fn.name == root else f"{fn.name}() (called from {root}())"
            where = where_of[fn].where
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                if isinstance(node.func, ast.Attribute) and node.func.attr in DEVICE_CALLS:
                    problems.append(f"{where}, line {node.lineno}: {who} calls {node.func.attr}(): the harness places "
                                    f"models and data on the device; remove it so the model runs on CPU and GPU alike")
                    continue
                hit = _numpy_call(node, aliases)
                if hit is None:
                    continue
                written, full = hit
                rest = full.split(".", 1)[1]
                if is_forward:
                    problems.append(f"{where}, line {node.lineno}: {who} calls {written}(): this breaks on the GPU "
                                    f"and cuts the gradient; use chainer.functions or self.xp.{rest}")
                else:
                    warnings.append(f"{where}, line {node.lineno}: {who} calls {written}(): z is made by NumPy on "
                                    f"the CPU and the harness copies it to the device; self.xp.{rest} makes it "
                                    f"there directly")
    return problems, warnings


def notebook_warnings(src: source_mod.Source) -> list[str]:
    """What a notebook keeps out of the grade, named: magics and shell lines, top-level statements, and
    the names a kept definition takes from a skipped line."""
    out = []
    magics = [f"{w.split(', ', 1)[-1]}, line {n}: `{t}`" for w, n, t, why in src.skipped if why != "top-level statement"]
    if magics:
        more = f"; and {len(magics) - 4} more" if len(magics) > 4 else ""
        out.append(f"{src.file}: notebook-only lines skipped (IPython magics and shell commands do not run "
                   f"in the grader): {'; '.join(magics[:4])}{more}")
    statements = [(w, n) for w, n, t, why in src.skipped if why == "top-level statement"]
    if statements:
        cells = ", ".join(dict.fromkeys(w.rsplit("cell ", 1)[-1] for w, _ in statements))
        out.append(f"{src.file}: {len(statements)} top-level statement{'s' if len(statements) > 1 else ''} "
                   f"(data loading, training loops, plots) not run: the harness takes definitions only "
                   f"(imports, functions, classes, constants); cells {cells}")
    for name, stmt in list(source_mod.free_names(src.kept).items())[:5]:
        hint = src.notebook_only(name)
        if hint:
            out.append(f"{stmt.where}, line {stmt.node.lineno}: {getattr(stmt.node, 'name', 'this definition')} "
                       f"uses {hint}")
    return out


# ----- the models, on a tiny batch

def check_forward(job: Job, role: str, model, call: Callable, shape, what: str,
                  lo: float | None = None, hi: float | None = None) -> list[str]:
    """Run ``call(model)`` in train mode and in eval mode and check the output; list problems.

    ``shape``: the expected output shape, or a list of accepted shapes."""
    ref = job.spec["classes"][role]
    shapes = [tuple(s) for s in shape] if isinstance(shape, list) else [tuple(shape)]
    problems = []
    try:
        with chainer.using_config("train", True):
            y = call(model)
    except OutputError as exc:
        return [str(exc)]
    except Exception as exc:
        return [f"{ref}: forward on a batch of {shapes[0][0]} raised {job.describe(exc)}"]
    if not isinstance(y, chainer.Variable):
        return [f"{ref}: forward returned {type(y).__name__}, expected a chainer.Variable "
                f"(use chainer.functions, not numpy, inside forward)"]
    a = y.array
    if not isinstance(a, job.device.xp.ndarray):
        problems.append(f"{ref}: {what} is a {type(a).__module__}.{type(a).__name__} on device "
                        f"{job.device}, expected an array on that device (do not call to_gpu/to_cpu in forward)")
    if tuple(a.shape) not in shapes:
        problems.append(f"{ref}: {what} has shape {tuple(a.shape)}, expected {' or '.join(map(str, shapes))}")
    if a.dtype != np.float32:
        problems.append(f"{ref}: {what} has dtype {a.dtype}, expected float32")
    host = to_numpy(a)
    if not np.isfinite(host).all():
        problems.append(f"{ref}: {what} holds NaN or infinite values on a batch of real images")
    elif lo is not None and (host.min() < lo or host.max() > hi):
        problems.append(f"{ref}: " + (range_problem(what, float(host.min()), float(host.max()))
                                      or f"{what} ranges over [{host.min():.3g}, {host.max():.3g}], "
                                         f"expected within [{lo}, {hi}]"))
    if problems:
        return problems
    try:
        model.cleargrads()
        F.sum(y * y).backward()
    except Exception as exc:
        return [f"{ref}: backward through {what} raised {job.describe(exc)}"]
    dead = [path for path, p in model.namedparams() if p.array is not None and p.grad is None]
    if dead:
        names = f"{', '.join(dead[:4])}{' ...' if len(dead) > 4 else ''}"
        if job.spec.get("train"):
            job.warn(f"{ref}: no gradient from {what} reaches {names}; fine if your train: ({job.spec['train']}) "
                     f"trains them through another loss (the check's stand-in loss uses {what} only)")
        else:
            job.warn(f"{ref}: no gradient reaches {names}: the harness's default loop will not train them "
                     f"(forward may convert Variables to numpy arrays: use chainer.functions and self.xp)")
    try:
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            y_eval = call(model)
        if tuple(y_eval.shape) not in shapes:
            problems.append(f"{ref}: in evaluation mode {what} has shape {tuple(y_eval.shape)}, "
                            f"expected {' or '.join(map(str, shapes))}")
    except OutputError as exc:
        problems.append(f"{exc} (in evaluation mode)")
    except Exception as exc:
        problems.append(f"{ref}: forward in evaluation mode (chainer.using_config('train', False)) raised "
                        f"{job.describe(exc)}")
    return problems


def check_weights_and_train(job: Job, model) -> list[str]:
    problems = []
    if job.spec.get("weights"):
        try:
            job.load_weights(model, job.spec["weights"])
        except SubmissionError as exc:
            problems.append(str(exc))
    if job.spec.get("train"):
        try:
            job.custom_train()
        except SubmissionError as exc:
            problems += exc.problems
    return problems
