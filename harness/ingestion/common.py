"""What every track's ingestion needs: the job, the device, seeds, student classes, weights, loops."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.chainer_env import chainer

F = chainer.functions


class SubmissionError(Exception):
    """A problem in the student's code or files, reported as INVALID_SUBMISSION with this message."""


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
        self._last_progress = 0.0
        self._modules: dict[str, Any] = {}
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
        self.log_lines.append(message)
        print(message, flush=True)

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
    def load(self, ref: str):
        """Import ``file.py:Name`` from the submission and return the attribute."""
        file, name = ref.rsplit(":", 1)
        path = (self.submission / file).resolve()
        module = self._modules.get(file)
        if module is None:
            if str(self.submission) not in sys.path:
                sys.path.insert(0, str(self.submission))
            mod_name = "submission_" + file[:-3].replace("/", "_").replace(".", "_")
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise SubmissionError(f"{file}: importing it raised {describe(exc)}") from exc
            self._modules[file] = module
        if not hasattr(module, name):
            found = sorted(n for n in vars(module) if not n.startswith("_"))
            raise SubmissionError(f"{file}: no '{name}' defined (found: {', '.join(found) or 'nothing'})")
        return getattr(module, name)

    def build(self, role: str) -> chainer.Chain:
        """Build the class named by ``role`` with no arguments and put it on the device."""
        ref = self.spec["classes"][role]
        cls = self.load(ref)
        try:
            model = cls()
        except Exception as exc:
            raise SubmissionError(f"{ref}: building it with no arguments raised {describe(exc)}") from exc
        if not isinstance(model, chainer.Link):
            raise SubmissionError(f"{ref}: expected a chainer.Chain, found {type(model).__name__}")
        model.to_device(self.device)
        return model

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
        ref = self.spec.get("train")
        return self.load(ref) if ref else None

    def train(self, models, data, default_loop: Callable[[Settings], None]) -> float:
        """Train with the student's ``train:`` function, ``fit(models, data, settings)``, or the
        harness's ``default_loop(settings)``; return the seconds it took."""
        start = time.perf_counter()
        settings = self.settings()
        fit = self.custom_train()
        if fit is not None:
            fit(models, data, settings)
        else:
            default_loop(settings)
            if settings.out_of_time():
                self.log(f"stopped training after {settings.max_seconds:.0f} s: the --quick time budget")
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

    def finish(self, **meta) -> None:
        meta["log"] = self.log_lines[-200:]
        (self.outputs / "meta.json").write_text(json.dumps(meta))


def describe(exc: BaseException) -> str:
    tb = exc.__traceback__
    where = ""
    while tb is not None:  # the innermost frame in the student's own files
        fname = tb.tb_frame.f_code.co_filename
        if "/harness/" not in fname and "site-packages" not in fname:
            where = f" ({Path(fname).name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return f"{type(exc).__name__}: {exc}{where}"


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
    on the device) minimised with the manifest's optimizer, progress and the mean loss per epoch."""
    optimizer = settings.make_optimizer(model)
    rng = np.random.default_rng(settings.seed)
    total = settings.epochs * -(-n // settings.batch_size)
    step = 0
    for epoch in range(1, settings.epochs + 1):
        loss_sum = 0.0
        for idx in batches(n, settings.batch_size, rng):
            if settings.out_of_time():
                break
            loss = loss_of(settings.device.send(idx))
            model.cleargrads()
            loss.backward()
            optimizer.update()
            loss_sum += float(loss.array) * len(idx)
            step += 1
            job.progress(phase, step, total)
        settings.report(epoch, loss=loss_sum / n)


def predict(fn: Callable, x, batch_size: int, job: Job | None = None, phase: str = "evaluate"):
    """Apply ``fn`` to ``x`` (on the device) in batches in evaluation mode; return a numpy array."""
    out = []
    n = len(x)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i, idx in enumerate(batches(n, batch_size, None)):
            y = fn(x[idx[0]:idx[-1] + 1])
            out.append(to_numpy(y))
            if job is not None:
                job.progress(phase, min(n, (i + 1) * batch_size), n)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def eval_batch_size(device) -> int:
    return 2000 if device.xp is not np else 500


def count_params(model: chainer.Link) -> int:
    return int(sum(p.size for p in model.params() if p.array is not None))
