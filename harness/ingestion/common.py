"""What every track's ingestion needs: the job, the device, seeds, student classes, weights, loops."""

from __future__ import annotations

import ast
import inspect
import io
import json
import linecache
import os
import random
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.chainer_env import chainer
from harness.ingestion import source as source_mod
from harness.ingestion.shapes import OutputError, hint_for, make_conforming

F = chainer.functions
MAX_PRINTED_LINES = 50  # student print() lines kept in the run's log
PRINTED_LINE_CHARS = 300


class SubmissionError(Exception):
    """A problem in the student's code or files, reported as INVALID_SUBMISSION with this message.

    ``problems`` lists the separate problems (``harness check`` prints one line each)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


@dataclass
class Settings:
    """What a student's own ``train:`` function receives as its third argument."""

    epochs: int
    batch_size: int
    seed: int
    device: Any
    make_optimizer: Callable
    report: Callable  # report(epoch, **numbers): shown in the logs
    extra: dict = field(default_factory=dict)
    max_seconds: float | None = None  # --quick: the default loops stop training after this long
    started: float = field(default_factory=time.perf_counter)

    def out_of_time(self) -> bool:
        """True once a --quick run has trained for its time budget (the default loops then stop)."""
        return self.max_seconds is not None and time.perf_counter() - self.started > self.max_seconds


class _PrintCapture(io.TextIOBase):
    """sys.stdout while the ingestion runs: passes everything through and hands whole lines to the job."""

    def __init__(self, stream, on_line: Callable[[str], None]):
        self._stream, self._on_line, self._partial = stream, on_line, ""

    def write(self, text) -> int:
        text = str(text)
        self._stream.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()[-PRINTED_LINE_CHARS * 4:]
        for line in lines:
            self._on_line(line)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def drain(self) -> None:
        if self._partial:
            self._on_line(self._partial)
            self._partial = ""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")


class Job:
    def __init__(self, submission: Path, inputs: Path, outputs: Path):
        self.submission = submission
        self.inputs = inputs
        self.outputs = outputs
        with open(inputs / "job.json") as f:
            self.spec: dict = json.load(f)
        self.track: str = self.spec["track"]
        self.seed: int = int(self.spec["seed"])
        self.device = chainer.get_device(self.spec.get("device", "@numpy"))
        self.device.use()
        self.log_lines: list[str] = []
        self.warnings: list[str] = []
        self.label = ""  # the model the log lines are about ("Model1", "course AutoEncoder", ...)
        self._last_progress = 0.0
        self._modules: dict[str, Any] = {}
        self._sources: dict[str, source_mod.Source] = {}
        self._wrappers: dict[int, chainer.Link] = {}  # id(predictor) -> its L.Classifier
        self._built: dict[str, str] = {}
        self._conform = True  # off while the student's own train: runs (a model may return a loss there)
        self._printed = 0
        self._printed_dropped = 0
        self._stdout = sys.stdout
        self._capture = _PrintCapture(sys.stdout, self._on_printed)
        sys.stdout = self._capture
        seed_everything(self.seed, self.device)

    # ----- inputs and outputs
    def array(self, name: str) -> np.ndarray:
        return np.load(self.inputs / f"{name}.npy", allow_pickle=False)

    def images(self, name: str) -> np.ndarray:
        """An input image array (uint8 (N, 784)) as float32 (N, 1, 28, 28) in [0, 1]."""
        x = self.array(name)
        return x.reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0)

    def write(self, name: str, array) -> None:
        np.save(self.outputs / f"{name}.npy", to_numpy(array), allow_pickle=False)

    def log(self, message: str) -> None:
        """A line of the run's log, naming the model it is about."""
        line = f"[{self.label}] {message}" if self.label else message
        self.log_lines.append(line)
        self._stdout.write(line + "\n")
        self._stdout.flush()

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.log(f"warning: {message}")

    def _on_printed(self, line: str) -> None:
        if self._printed >= MAX_PRINTED_LINES:
            self._printed_dropped += 1
            return
        self._printed += 1
        prefix = f"[{self.label}] " if self.label else ""
        self.log_lines.append(f"{prefix}print: {line[:PRINTED_LINE_CHARS]}")

    def progress(self, phase: str, done: int, total: int, force: bool = False) -> None:
        """Atomically publish progress for the parent's progress bar (at most ~4 times a second)."""
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25 and done < total:
            return
        self._last_progress = now
        tmp = self.outputs / ".progress.tmp"
        tmp.write_text(json.dumps({"phase": phase, "done": done, "total": total}))
        os.replace(tmp, self.outputs / "progress.json")

    # ----- student code
    def source(self, file: str) -> source_mod.Source:
        """The parsed file (a notebook: its definitions); SubmissionError on a syntax error."""
        if file not in self._sources:
            try:
                self._sources[file] = source_mod.read(self.submission, file)
            except source_mod.SourceError as exc:
                raise SubmissionError(str(exc), exc.problems) from None
        return self._sources[file]

    def describe(self, exc: BaseException) -> str:
        """:func:`describe`, plus the notebook-only line a NameError comes from."""
        text = describe(exc)
        if isinstance(exc, NameError) and getattr(exc, "name", None):
            for src in self._sources.values():
                hint = src.notebook_only(exc.name)
                if hint:
                    return f"{text}: {hint}"
        return text

    def load(self, ref: str):
        """``file.py:Name`` or ``file.ipynb:Name`` from the submission: the attribute, its file run once."""
        file, name = ref.rsplit(":", 1)
        module = self._modules.get(file)
        if module is None:
            module = self._run_file(file)
            self._modules[file] = module
        if not hasattr(module, name):
            found = sorted(n for n in vars(module) if not n.startswith("_") and n != "sys"
                           and not isinstance(getattr(module, n), types.ModuleType))
            hint = ""
            src = self._sources.get(file)
            if src is not None and src.notebook and name in src.skipped_names:
                hint = f": {src.notebook_only(name)}"
            raise SubmissionError(f"{file}: no '{name}' defined (found: {', '.join(found) or 'nothing'}){hint}")
        return getattr(module, name)

    def _run_file(self, file: str) -> types.ModuleType:
        src = self.source(file)
        problems, warnings, stubs = source_mod.scan_imports(src, self.device.xp is not np)
        if problems:
            raise SubmissionError("; ".join(problems), problems)
        for w in warnings:
            self.warn(w)
        if str(self.submission) not in sys.path:
            sys.path.insert(0, str(self.submission))
        mod_name = "submission_" + file.rsplit(".", 1)[0].replace("/", "_").replace(".", "_")
        module = types.ModuleType(mod_name)
        module.__file__ = str(src.path)
        sys.modules[mod_name] = module
        added = source_mod.install_stubs(stubs)
        try:
            if not src.notebook:
                code = compile(ast.Module(body=[s.node for s in src.kept], type_ignores=[]), str(src.path), "exec")
                try:
                    exec(code, module.__dict__)
                except Exception as exc:
                    raise SubmissionError(f"{file}: importing it raised {self.describe(exc)}") from exc
                return module
            for stmt in src.kept:
                linecache.cache[stmt.where] = (0, None, [line + "\n" for line in stmt.lines], stmt.where)
                code = compile(ast.Module(body=[stmt.node], type_ignores=[]), stmt.where, "exec")
                try:
                    exec(code, module.__dict__)
                except NameError as exc:
                    if isinstance(stmt.node, (ast.Assign, ast.AnnAssign)):  # a "constant" made from skipped data
                        src.skipped.append((stmt.where, stmt.node.lineno, stmt.text(), "top-level statement"))
                        for n in source_mod.bound_names(stmt.node):
                            src.skipped_names.setdefault(n, (stmt.where, stmt.node.lineno, stmt.text()))
                        continue
                    raise SubmissionError(f"{stmt.where}, line {stmt.node.lineno}: {self.describe(exc)}") from exc
                except Exception as exc:
                    raise SubmissionError(f"{stmt.where}, line {stmt.node.lineno}: running this definition "
                                          f"raised {self.describe(exc)}") from exc
            return module
        finally:
            source_mod.remove_stubs(added)

    def build(self, role: str) -> chainer.Chain:
        """Build the class named by ``role`` with its ``<role>_args`` and put it on the device.

        An ``L.Classifier`` is graded through its predictor; every model's output is checked (and
        reshaped where that is unambiguous) on each call the harness makes (see shapes.py)."""
        ref = self.spec["classes"][role]
        key = f"{role}_args"
        args = dict((self.spec.get("class_args") or {}).get(role) or {})
        cls = self.load(ref)
        if isinstance(cls, chainer.Link):
            raise SubmissionError(f"{ref}: is a model object, expected its class: name the class in "
                                  f"submission.yaml and give its constructor arguments as `{key}`")
        if not callable(cls):
            raise SubmissionError(f"{ref}: is a {type(cls).__name__}, expected a chainer.Chain class")
        problem = arguments_problem(cls, args, ref, key)
        if problem:
            raise SubmissionError(problem)
        self._built[role] = ref.rsplit(":", 1)[1]
        self._set_label(role)  # what the constructor prints is logged under the class's name
        try:
            model = cls(**args)
        except Exception as exc:
            how = f"with {key} {json.dumps(args)}" if args else "with no arguments"
            raise SubmissionError(f"{ref}: building it {how} raised {self.describe(exc)}") from exc
        if not isinstance(model, chainer.Link):
            raise SubmissionError(f"{ref}: expected a chainer.Chain, found {type(model).__name__}")
        model.to_device(self.device)
        if isinstance(model, chainer.links.Classifier):
            wrapper, model = model, model.predictor
            self._wrappers[id(model)] = wrapper
        self._built[role] = type(model).__name__
        self._set_label(role)
        if self._wrappers.get(id(model)) is not None:
            self.log(f"{ref} is an L.Classifier: graded through its predictor, {type(model).__name__}")
        kind = {"classify": "classify", "anomaly": "anomaly"}.get(self.track, role)
        make_conforming(model, kind, lambda: self._conform, self.warn, ref)
        return model

    def _set_label(self, role: str) -> None:
        """Log lines name the model(s) they are about (the grader adds the anomaly job: course, digit d)."""
        self.label = "/".join(self._built.values())

    def for_student(self, models):
        """What the student's own ``train:`` receives: the L.Classifier wrapper where one was given."""
        if isinstance(models, (tuple, list)):
            return type(models)(self._wrappers.get(id(m), m) for m in models)
        return self._wrappers.get(id(models), models)

    def make_optimizer(self, link: chainer.Link):
        name = self.spec.get("optimizer", "Adam")
        args = self.spec.get("optimizer_args", {})
        try:
            optimizer = getattr(chainer.optimizers, name)(**args)
        except TypeError as exc:
            raise SubmissionError(f"optimizer_args: {name} does not take {args} ({exc})") from exc
        optimizer.setup(link)
        return optimizer

    def settings(self, **extra) -> Settings:
        def report(epoch, **numbers):
            self.log(f"epoch {epoch}: " + ", ".join(f"{k}={float(v):.4g}" for k, v in numbers.items()))

        budget = self.spec.get("max_train_seconds")
        return Settings(int(self.spec["epochs"]), int(self.spec["batch_size"]), self.seed, self.device,
                        self.make_optimizer, report, extra, None if budget is None else float(budget))

    def custom_train(self) -> Callable | None:
        """The manifest's ``train:`` function, its signature checked: ``fit(models, data, settings)``."""
        ref = self.spec.get("train")
        if not ref:
            return None
        fit = self.load(ref)
        problem = fit_signature_problem(fit, ref)
        if problem:
            raise SubmissionError(problem)
        return fit

    def train(self, models, data, default_loop: Callable[[Settings], None]) -> float:
        """Train with the student's ``train:`` function, ``fit(models, data, settings)``, or the
        harness's ``default_loop(settings)``; return the seconds it took."""
        start = time.perf_counter()
        settings = self.settings()
        fit = self.custom_train()
        if fit is not None:
            self.log(f"training with {self.spec['train']} ({settings.epochs} epochs asked, batch size "
                     f"{settings.batch_size}); its own loop decides the steps")
            self._conform = False
            try:
                fit(self.for_student(models), data, settings)
            except SubmissionError:
                raise
            except OutputError as exc:
                raise SubmissionError(str(exc)) from exc
            finally:
                self._conform = True
            self.log(f"{self.spec['train']} returned after {time.perf_counter() - start:.1f} s")
        else:
            default_loop(settings)
        return time.perf_counter() - start

    def train_or_load(self, weights_target, models, data, default_loop: Callable[[Settings], None]) -> float:
        """Load the manifest's ``weights:`` into ``weights_target`` if given, else :meth:`train`."""
        if not self.spec.get("weights"):
            return self.train(models, data, default_loop)
        start = time.perf_counter()
        self.load_weights(weights_target, self.spec["weights"])
        self.log(f"loaded {self.spec['weights']}; no training")
        return time.perf_counter() - start

    def load_weights(self, model: chainer.Link, rel: str) -> None:
        load_weights_safely(model, self.submission / rel, rel)

    def save_weights(self, model: chainer.Link, name: str) -> None:
        """Our own copy of the trained parameters (the scorer counts them without unpickling)."""
        arrays = {}
        for path, param in model.namedparams():
            if param.array is not None:
                arrays[path.lstrip("/")] = to_numpy(param.array)
        np.savez(self.outputs / f"{name}.npz", **arrays)

    # ----- what the default loops log: the steps actually run, and means over them
    def training_started(self, settings: Settings, per_epoch: int) -> None:
        budget = f"; --quick stops training after {settings.max_seconds:g} s" if settings.max_seconds else ""
        self.log(f"training: {settings.epochs} epoch{'s' if settings.epochs != 1 else ''} of {per_epoch} "
                 f"batches of {settings.batch_size}, {self.spec.get('optimizer', 'Adam')}{budget}")

    def epoch_done(self, epoch: int, settings: Settings, steps: int, per_epoch: int, **means) -> None:
        stopped = steps < per_epoch and settings.out_of_time()
        budget = f", stopped by the --quick budget of {settings.max_seconds:g} s" if stopped else ""
        if steps == 0:
            self.log(f"epoch {epoch}/{settings.epochs}: no batch run (0 of {per_epoch} batches{budget})")
            return
        numbers = ", ".join(f"{k}={float(v):.4g}" for k, v in means.items())
        self.log(f"epoch {epoch}/{settings.epochs}: {numbers} (mean over {steps} of {per_epoch} batches{budget})")

    def finish(self, **meta) -> None:
        self._capture.drain()
        if self._printed_dropped:
            self.log_lines.append(f"({self._printed_dropped} more printed lines not kept)")
        meta["log"] = self.log_lines[-200:]
        (self.outputs / "meta.json").write_text(json.dumps(meta))


def arguments_problem(cls, args: dict, ref: str, key: str) -> str | None:
    """Why ``cls(**args)`` cannot work, naming the manifest key that fixes it; None if it can."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    name = ref.rsplit(":", 1)[1]
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        unknown = [k for k in args if k not in {p.name for p in named}]
        if unknown:
            takes = ", ".join(p.name for p in named) or "no arguments"
            return f"{key}: {name}() has no argument {', '.join(map(repr, unknown))} (it takes: {takes})"
    missing = [p.name for p in named if p.default is p.empty and p.name not in args]
    if missing:
        example = ", ".join(f"{m}: ..." for m in missing)
        return (f"{ref}: {name}() needs {', '.join(missing)}: give {'it' if len(missing) == 1 else 'them'} "
                f"in submission.yaml as `{key}: {{{example}}}` beside `{key[:-5]}:`")
    return None


def fit_signature_problem(fit, ref: str) -> str | None:
    """Why ``fit(models, data, settings)`` cannot be called; None if it can."""
    if not callable(fit):
        return f"train: {ref} is a {type(fit).__name__}, expected a function fit(models, data, settings)"
    try:
        inspect.signature(fit).bind(None, None, None)
    except TypeError as exc:
        try:
            found = str(inspect.signature(fit))
        except (TypeError, ValueError):
            found = "?"
        return (f"train: {ref} has the signature {ref.rsplit(':', 1)[1]}{found}, expected "
                f"fit(models, data, settings) ({exc}); the harness calls it with the built model(s), the "
                f"training data and the settings (epochs, batch_size, make_optimizer, report, device)")
    except ValueError:
        return None
    return None


def describe(exc: BaseException) -> str:
    tb = exc.__traceback__
    where = ""
    while tb is not None:  # the innermost frame in the student's own files
        fname = tb.tb_frame.f_code.co_filename
        if "/harness/" not in fname and "site-packages" not in fname and not fname.startswith("<"):
            where = f" ({Path(fname).name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.lineno:
        text = (exc.text or "").strip()
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or '?').name}, line {exc.lineno}" + \
            (f": `{text}`)" if text else ")")
    message = f"{type(exc).__name__}: {exc}"
    return f"{message}{where}{hint_for(message)}"


def seed_everything(seed: int, device) -> None:
    random.seed(seed)
    np.random.seed(seed)
    if device.xp is not np:
        device.xp.random.seed(seed)
        chainer.config.cudnn_deterministic = True


def to_numpy(array) -> np.ndarray:
    if isinstance(array, chainer.Variable):
        array = array.array
    return np.asarray(chainer.backend.CpuDevice().send(array))


def read_npz_safely(path: Path, label: str) -> dict[str, np.ndarray]:
    """Every array of a student's ``.npz``, read with ``allow_pickle=False``; SubmissionError otherwise."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise SubmissionError(f"{label}: a single .npy array, expected an .npz archive (chainer.serializers.save_npz)")
            return {key: npz[key] for key in npz.files}
    except SubmissionError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise SubmissionError(f"{label}: holds pickled objects, which are refused "
                                  f"(save plain arrays with chainer.serializers.save_npz)") from exc
        raise SubmissionError(f"{label}: not a readable .npz file ({describe(exc)})") from exc
    except Exception as exc:
        raise SubmissionError(f"{label}: not a readable .npz file ({describe(exc)})") from exc


def load_weights_safely(model: chainer.Link, path: Path, label: str) -> None:
    """Load a student's ``.npz`` without pickle, naming any tensor that does not fit the model."""
    arrays = read_npz_safely(path, label)
    keys = [p.lstrip("/") for p, _ in model.namedparams()]
    if keys and not any(k in arrays for k in keys) and any(k.startswith("predictor/") for k in arrays):
        arrays = {k[len("predictor/"):]: v for k, v in arrays.items() if k.startswith("predictor/")}  # saved from L.Classifier
    problems = []
    for key, param in ((p.lstrip("/"), param) for p, param in model.namedparams()):
        if key not in arrays:
            problems.append(f"'{key}' missing")
            continue
        found = arrays[key]
        if found.dtype.kind not in "fiu":
            problems.append(f"'{key}' has dtype {found.dtype}, expected a number array")
        elif param.array is not None and found.shape != param.array.shape:
            problems.append(f"'{key}' has shape {found.shape}, the model expects {param.array.shape}")
    if problems:
        hint = "" if arrays else " (the file holds no arrays)"
        raise SubmissionError(f"{label}: does not fit the model{hint}: " + "; ".join(problems[:5]))
    try:
        chainer.serializers.NpzDeserializer(arrays, strict=False).load(model)
    except Exception as exc:
        raise SubmissionError(f"{label}: cannot be loaded into the model ({describe(exc)})") from exc


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays covering range(n): shuffled by ``rng`` if given, in order otherwise."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def minimize(model, n: int, loss_of: Callable, settings: Settings, job: Job, phase: str) -> None:
    """The default loops' shared core: seeded shuffled minibatches of range(n), ``loss_of(idx)`` (idx
    on the device) minimised with the manifest's optimizer, progress, and per epoch the mean loss over
    the batches actually run (a --quick budget may stop an epoch early: the log says so)."""
    optimizer = settings.make_optimizer(model)
    rng = np.random.default_rng(settings.seed)
    per_epoch = -(-n // settings.batch_size)
    total = settings.epochs * per_epoch
    job.training_started(settings, per_epoch)
    step = 0
    for epoch in range(1, settings.epochs + 1):
        loss_sum, seen, steps = 0.0, 0, 0
        for idx in batches(n, settings.batch_size, rng):
            if settings.out_of_time():
                break
            loss = as_submission_error(loss_of, settings.device.send(idx))
            model.cleargrads()
            loss.backward()
            optimizer.update()
            loss_sum += float(loss.array) * len(idx)
            seen += len(idx)
            steps += 1
            step += 1
            job.progress(phase, step, total)
        job.epoch_done(epoch, settings, steps, per_epoch, loss=loss_sum / max(1, seen))
        if settings.out_of_time():
            break


def as_submission_error(fn: Callable, *args):
    """``fn(*args)``, an unusable forward output (shapes.OutputError) becoming a SubmissionError."""
    try:
        return fn(*args)
    except OutputError as exc:
        raise SubmissionError(str(exc)) from exc


def predict(fn: Callable, x, batch_size: int, job: Job | None = None, phase: str = "evaluate"):
    """Apply ``fn`` to ``x`` (on the device) in batches in evaluation mode; return a numpy array."""
    out = []
    n = len(x)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i, idx in enumerate(batches(n, batch_size, None)):
            y = as_submission_error(fn, x[idx[0]:idx[-1] + 1])
            out.append(to_numpy(y))
            if job is not None:
                job.progress(phase, min(n, (i + 1) * batch_size), n)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def eval_batch_size(device) -> int:
    return 2000 if device.xp is not np else 500


def count_params(model: chainer.Link) -> int:
    return int(sum(p.size for p in model.params() if p.array is not None))
