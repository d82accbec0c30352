"""Grading: for each submission and track, run the ingestion process, validate and score what it returns,
and record the run in the store. One submission's failure never stops the others."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import uuid
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness import __version__, data, manifest as manifest_mod, sandbox
from harness.competition import TRACKS, Competition
from harness.scoring.outputs import InvalidOutput, read_json
from harness.store.artifacts import LOG_LINES, log_tail, save_log
from harness.grading.config_id import config_sha256
from harness.grading.jobs import ingestion_device
from harness.store import Run, Store
from harness.text import clip_text, plain_text
from harness.sandbox.copy import SubmissionCopyError, SubmissionTree, remove_tree, scan_submission
from harness import tracks
from harness.scoring.tracks.context import ScoringContext, jobs_of

INGESTION_ARGV = ["-m", "harness.ingestion", "--submission", sandbox.SUBMISSION_MOUNT,
                  "--input", sandbox.INPUT_MOUNT, "--output", sandbox.OUTPUT_MOUNT]


@dataclass
class GradeOptions:
    competition: Competition
    tracks: tuple[str, ...] = TRACKS
    quick: bool = False
    device: str = "@numpy"
    seed: int | None = None
    isolation: str = "bubblewrap"
    kind: str = "submission"  # submission | baseline
    artifacts_root: Path = Path("leaderboard") / "artifacts"
    gpu_devices: tuple[int, ...] = ()
    cpu_threads: int | None = None  # fast_conv workers per ingestion process (--jobs share); None: every core


@dataclass
class SubmissionResult:
    id: str
    name: str
    path: str
    sha256: str
    tracks: dict[str, Run]  # track -> its run (SKIPPED ones too, never stored)
    harness_version: str = __version__

    @property
    def ok(self) -> bool:
        return all(t.status in ("OK", "SKIPPED") for t in self.tracks.values())

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "path": self.path, "sha256": self.sha256,
                "harness_version": self.harness_version,
                "tracks": {k: v.result_json() for k, v in self.tracks.items()}}


def tree_sha256(root: Path, tree: SubmissionTree | None = None) -> str:
    """SHA-256 over the sorted relative paths and contents of the files of a submission folder.

    The tree is checked first (``scan_submission``: depth, entries, files, bytes by st_size, links,
    special files; no recursion), so nothing is read from a tree the copy would refuse: a 32 GiB
    sparse file or a 1,100-deep folder chain raises SubmissionCopyError before any byte is hashed.
    Folders the copy skips (.git, __pycache__, ...) are not hashed.
    """
    tree = tree or scan_submission(root)
    h = hashlib.sha256()
    budget = tree.bytes
    for rel, source in tree.file_entries():
        h.update(rel.encode() + b"\0")
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            while budget >= 0 and (chunk := f.read(min(1 << 20, budget + 1))):
                budget -= len(chunk)
                h.update(chunk)
        if budget < 0:
            raise SubmissionCopyError(f"{rel}: changed while being read (larger than when checked)")
        h.update(b"\0")
    return h.hexdigest()


def versions() -> dict:
    import numpy

    # The installed distribution's version (the one the sandbox imports), read from its metadata:
    # importing Chainer here would cost the grader about 0.4 s for one string.
    try:
        chainer_version = importlib.metadata.version("chainer")
    except importlib.metadata.PackageNotFoundError:
        chainer_version = ""
    return {"python": platform.python_version(), "numpy": numpy.__version__, "chainer": chainer_version}


class DeviceError(RuntimeError):
    """The asked-for device cannot be used here (exit code 3)."""


class DeviceSpecError(ValueError):
    """``--device`` is not a device spec the harness knows (exit code 2)."""


def resolve_device(device: str) -> str:
    """Check ``--device`` and resolve ``auto``: ``@numpy``, ``@cupy:N`` (or ``@cupy:N,M``, one GPU per
    job slot), or ``auto`` (``@cupy:0`` when CuPy sees a GPU, else ``@numpy``).

    DeviceSpecError for a spec that is none of these; DeviceError when a GPU is asked for and CuPy
    sees none, so the run stops before any submission is graded on the wrong device.
    """
    if device not in ("auto", "@numpy") and not re.fullmatch(r"@cupy:\d+(,\d+)*", device or ""):
        raise DeviceSpecError(f"--device {device!r}: expected @numpy, @cupy:N (e.g. @cupy:0) or auto")
    if device == "@numpy" or (device == "auto" and importlib.util.find_spec("cupy") is None):
        return "@numpy"  # without CuPy there is no GPU to find: no need to import Chainer to ask
    from harness.chainer_env import chainer  # imported when grading needs it: seconds at start-up otherwise

    try:
        available = chainer.backends.cuda.available
    except Exception:
        available = False
    if device == "auto":
        return "@cupy:0" if available else "@numpy"
    if not available:
        raise DeviceError(f"--device {device}: CuPy is not installed or sees no GPU "
                          f"(install the GPU extra: pip install -e '.[gpu]'; or grade on the CPU with --device @numpy)")
    return device


def training_settings(spec: manifest_mod.TrackSpec, comp: Competition, quick: bool) -> tuple[dict, dict]:
    """The epochs/batch size/optimizer the job runs with, and the clamps applied (key -> {asked, used})."""
    track = spec.track
    defaults, budget = comp["defaults"], comp["budget"]
    epochs = spec.epochs or int(defaults["epochs"][track])
    batch_size = spec.batch_size or int(defaults["batch_size"][track])
    clamped = {}
    max_epochs = int(budget["max_epochs"][track])
    if epochs > max_epochs:
        clamped["epochs"] = {"asked": epochs, "used": max_epochs}
        epochs = max_epochs
    if batch_size > int(budget["max_batch_size"]):
        clamped["batch_size"] = {"asked": batch_size, "used": int(budget["max_batch_size"])}
        batch_size = int(budget["max_batch_size"])
    settings = {"epochs": epochs, "batch_size": batch_size, "optimizer": spec.optimizer or defaults["optimizer"],
                "optimizer_args": spec.optimizer_args}
    if quick:  # feedback within about a minute, whatever the model: one epoch, and a training-time budget
        settings["epochs"] = min(epochs, int(comp["quick"]["max_epochs"]))
        settings["max_train_seconds"] = quick_train_seconds(comp, track)
    settings["cpu_convolution"] = cpu_convolution(comp)
    return settings, clamped


CONVOLUTIONS = {"fast": "harness-fast-conv", "stock": "chainer"}  # competition.yaml cpu_convolution -> recorded name


def cpu_convolution(comp: Competition) -> str:
    """``cpu_convolution`` of competition.yaml (``--stock-chainer`` sets it to ``stock``): on the CPU the
    ingestion runs Chainer's 2-D (de)convolutions with the harness's own kernels (``fast``) or Chainer's."""
    value = comp.raw.get("cpu_convolution", "fast")
    if value not in CONVOLUTIONS:
        raise ValueError(f"{comp.path}: cpu_convolution is {value!r}, expected one of: {', '.join(CONVOLUTIONS)}")
    return value


def quick_train_seconds(comp: Competition, track: str) -> float:
    """The --quick training budget of ``track``: ``quick.max_train_seconds``, a number, or one per track
    with ``default`` for the others (a track folder's own track, say)."""
    budget = comp["quick"]["max_train_seconds"]
    if isinstance(budget, dict):
        if track not in budget and "default" not in budget:
            raise ValueError(f"{comp.path}: quick.max_train_seconds has no entry for the '{track}' track "
                             f"and no default (found: {', '.join(budget) or 'none'}); give one, e.g. {track}: 25")
        budget = budget.get(track, budget.get("default"))
    return float(budget)


def ran_convolution(meta: dict) -> str:
    """Which CPU convolution the ingestion says it ran (meta.json is untrusted: only a known name counts)."""
    value = meta.get("convolution")
    return value if value in CONVOLUTIONS.values() else ""


def limits_for(comp: Competition, quick: bool) -> sandbox.Limits:
    wall = float(comp["quick"]["time_limit_seconds"] if quick else comp["budget"]["time_limit_seconds"])
    # RLIMIT_CPU counts every thread of a process: allow all cores busy for the whole wall time.
    return sandbox.Limits(wall_seconds=wall, cpu_seconds=wall * max(1, os.cpu_count() or 1),
                          memory_bytes=int(comp["budget"]["memory_mb"]) << 20)


def job_spec(spec: manifest_mod.TrackSpec, settings: dict, mode: str, seed: int, device: str, extra: dict) -> dict:
    return {"track": spec.track, "ingestion_module": tracks.get(spec.track).ingestion_module(),
            "mode": mode, "seed": seed, "device": device,
            "classes": {role: str(ref) for role, ref in spec.classes.items()},
            "weights": spec.weights, "train": str(spec.train) if spec.train else None,
            "class_args": getattr(spec, "class_args", {}), **settings, **extra}


ProgressFn = Callable[[str, int, int], None]


def run_job(submission_dir: Path, job: dict, write_inputs: Callable[[Path], dict | None],
            limits: sandbox.Limits, isolation: str, gpu_devices=(), on_progress: ProgressFn | None = None,
            cpu_threads: int | None = None):
    """Run one ingestion job in a fresh work folder; return (work folder, SandboxResult).

    ``write_inputs(input_dir)`` saves the arrays and returns extra job settings. The caller scores
    ``work/output`` and then removes the work folder.
    """
    work = Path(tempfile.mkdtemp(prefix=f"harness-job-{os.getpid()}-"))  # pid: swept if this grader is killed
    sub, inp, out = work / "submission", work / "input", work / "output"
    inp.mkdir()
    out.mkdir()
    sandbox.copy_submission(submission_dir, sub)
    job = {**job, **(write_inputs(inp) or {})}
    (inp / "job.json").write_text(json.dumps(job))

    stop = threading.Event()

    def poll():
        while not stop.wait(0.3):
            try:
                p = read_json(out, "progress.json", 4096)
                on_progress(str(p.get("phase", ""))[:40], int(p.get("done", 0)), int(p.get("total", 1)))
            except (InvalidOutput, ValueError, TypeError):
                pass

    poller = threading.Thread(target=poll, daemon=True) if on_progress else None
    if poller:
        poller.start()
    try:
        result = sandbox.run_ingestion([sys.executable] + INGESTION_ARGV, submission_dir=sub, input_dir=inp,
                                       output_dir=out, limits=limits, isolation=isolation,
                                       env=ingestion_env(cpu_threads), gpu_devices=tuple(gpu_devices))
    finally:
        stop.set()
        if poller:
            poller.join()
    return work, result


def ingestion_env(cpu_threads: int | None = None) -> dict:
    """The ingestion process's own variables. ``cpu_threads``: its share of the cores when ``--jobs``
    runs several at once, for the fast convolution's worker threads (its results do not depend on
    them). BLAS keeps its own thread count: OpenBLAS's results do depend on it (measured: a softmax
    regression's train loss moved in the 9th digit with 1 thread instead of 2), and a submission must
    score the same graded alone or in a class."""
    env = {"PYTHONHASHSEED": "0"}
    for key in ("CHAINER_DATASET_ROOT",):
        if key in os.environ:
            env[key] = os.environ[key]
    if cpu_threads:
        env["HARNESS_CPU_THREADS"] = str(int(cpu_threads))
    return env


def failure_from(result: sandbox.SandboxResult, out: Path) -> Run | None:
    """Map a finished ingestion process to a failed run, or None if it succeeded."""
    reported = None
    try:
        reported = read_json(out, "error.json", 8192)
    except Exception:  # InvalidOutput, or anything else a hostile error.json causes: not a claim
        pass
    if reported and reported.get("status") in ("INVALID_SUBMISSION", "CRASH", "OUT_OF_MEMORY") and result.status in ("OK", "CRASH"):
        return Run.outcome(str(reported["status"]), str(reported.get("message", ""))[:2000])
    if result.status == "OK":
        return None
    tail = "\n".join(result.stderr.strip().splitlines()[-8:])
    message = result.message or f"the ingestion process exited with code {result.returncode}"
    return Run.outcome(result.status, message + (f"\n{tail}" if tail and result.status != "OUTPUT_LIMIT" else ""))


def _quietly(fn, *args) -> None:
    """Run a warm-up whose failure only means score() redoes the work (and reports any error itself)."""
    try:
        fn(*args)
    except Exception:
        pass


def grade_track(path: Path, spec: manifest_mod.TrackSpec, opts: GradeOptions, mnist: data.Mnist,
                run_uid: str, on_progress: ProgressFn | None = None) -> Run:
    comp = opts.competition
    seed = comp.seed if opts.seed is None else opts.seed
    module = tracks.get(spec.track).scorer_module()
    settings, clamped = training_settings(spec, comp, opts.quick)
    ctx = ScoringContext(mnist, comp, opts.quick, seed, opts.artifacts_root / run_uid)
    job = job_spec(spec, settings, "grade", seed, ingestion_device(opts.device, opts.gpu_devices), {})
    started = time.monotonic()
    works: list[Path] = []
    try:
        # One sandbox and one fresh work folder per ingestion job (the anomaly track: one per protocol
        # and per one-class digit), each receiving only its own inputs; the track's wall-clock limit is
        # shared by its jobs' sandboxes (the grader's own work between them is not the student's).
        # Any job's failure is the track's, named by the job.
        ingestion_jobs, several = jobs_of(module, ctx, spec.track)
        limits = limits_for(comp, opts.quick)
        # The scorer loads what it compares against (e.g. the generate track's cached real-data
        # statistics) on a side thread while the sandbox trains or samples; score() waits for it.
        prepare = getattr(module, "prepare", None)
        if callable(prepare):
            threading.Thread(target=_quietly, args=(prepare, ctx), daemon=True, name="scorer-prepare").start()
        outputs, metas, log = {}, {}, []
        sandboxed = 0.0  # wall seconds the track's jobs have spent in their sandboxes
        for ij in ingestion_jobs:
            named, tag = (f"{ij.title}: ", f"[{ij.title}] ") if several else ("", "")  # messages, log lines
            left = limits.wall_seconds - sandboxed
            work, result = run_job(path, {**job, **ij.extra}, ij.write_inputs,
                                   dataclasses.replace(limits, wall_seconds=max(left, 1.0)),
                                   opts.isolation, opts.gpu_devices, on_progress, opts.cpu_threads)
            works.append(work)
            sandboxed += result.wall_seconds
            remove_tree(work / "input")  # keep only what is scored
            base = dict(seconds=round(time.monotonic() - started, 2), device=opts.device, seed=seed,
                        isolation=result.isolation, clamped=clamped)
            failed = failure_from(result, work / "output")
            if failed:
                failed.__dict__.update(base)
                failed.message = named + failed.message
                stdout = (result.stdout or "").splitlines()[-LOG_LINES:]
                failed.artifacts = save_log(ctx.artifacts_dir, log + [tag + line for line in stdout])
                return failed
            try:
                meta = read_json(work / "output", "meta.json")
                seconds = meta.get("train_seconds", 0.0)  # untrusted: NaN would reach the store and --json
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds != seconds:
                    raise InvalidOutput(f"meta.json: train_seconds is {str(seconds)[:40]!r}, expected a number")
            except InvalidOutput as exc:
                return Run.outcome("INVALID_OUTPUT", named + str(exc), **base)
            meta["train_seconds"] = min(max(float(seconds), 0.0), result.wall_seconds)
            convolution = ran_convolution(meta)
            base["versions"] = {"convolution": convolution} if convolution else {}
            outputs[ij.name], metas[ij.name] = work / "output", meta
            # the student's last log lines, each model's own (named) when there are several
            log += [tag + line for line in log_tail(meta.get("log"), max(8, LOG_LINES // len(ingestion_jobs)))]
        try:
            if on_progress:
                on_progress("scoring", 0, 1)
            if several:
                metrics, artifacts = module.score(ctx, outputs, metas)
            else:
                metrics, artifacts = module.score(ctx, outputs[spec.track], metas[spec.track])
            artifacts.update(save_log(ctx.artifacts_dir, log))
        except InvalidOutput as exc:
            return Run.outcome("INVALID_OUTPUT", str(exc), **base)
        except ValueError as exc:  # a metric refused the values (e.g. every score equal)
            return Run.outcome("INVALID_OUTPUT", f"the outputs cannot be scored: {exc}", **base)
        except Exception as exc:  # one scoring bug must not stop the grading of the others
            return Run.outcome("CRASH", f"the scorer failed ({type(exc).__name__}: {exc}); "
                                        f"this is a harness bug, please report it", **base)
        message = "" if opts.quick else "; ".join(  # --quick trains 1 epoch anyway: a clamp notice misleads
            f"{k} clamped from {v['asked']} to {v['used']} (competition budget)" for k, v in clamped.items())
        notes = getattr(module, "run_notes", None)  # e.g. generate: "unranked: copy_rate ... > max_copy_rate ..."
        message = "; ".join([m for m in [*(notes(ctx, metrics) if notes else []), message] if m])
        return Run.outcome("OK", message, metrics=metrics, artifacts=artifacts, **base)
    except sandbox.SubmissionCopyError as exc:
        return Run.outcome("INVALID_SUBMISSION", str(exc), seed=seed, device=opts.device)
    finally:
        for work in works:
            remove_tree(work)  # iterative: a run may leave a 1,100-deep tree in /output


def grade_submission(path: Path, opts: GradeOptions, store: Store | None, progress=None) -> SubmissionResult:
    """Grade every requested track of one submission folder and record each run.

    The submission's error boundary: whatever the folder holds or its runs write ends as a status on
    its own rows (INVALID_SUBMISSION, INVALID_OUTPUT, CRASH, ...) with a short message; this never
    raises for one submission, so the others are graded and the results file is written."""
    path = Path(path)
    try:
        return _grade_submission(path, opts, store, progress)
    except Exception as exc:  # a harness bug met on this submission: reported on its rows, not raised
        message = clip_text(f"the harness failed on this submission ({type(exc).__name__}: {exc}); "
                            f"this is a harness bug, please report it")
        try:
            sub_id = manifest_mod.submission_id(path)
        except Exception:
            sub_id = path.name
        results = {t: Run.outcome("CRASH", message) for t in opts.tracks}
        for track, r in results.items():
            _finish(r, uuid.uuid4().hex, opts)
        return SubmissionResult(sub_id, sub_id, str(path), "", results)


def _finish(r: Run, run_uid: str, opts: GradeOptions) -> Run:
    r.run_uid, r.profile, r.kind = run_uid, "quick" if opts.quick else "full", opts.kind
    r.created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    r.message = clip_text(plain_text(r.message))  # no terminal escape or control character is stored
    return r


def identity_problem(store: Store | None, sub_id: str, path: Path, kind: str) -> str | None:
    """Why ``path`` may not be graded as ``sub_id``: the store holds runs of that id graded from another
    folder (SPEC: another folder claiming a stored id is refused, never merged into that row)."""
    if store is None:
        return None
    for run in store.runs(submission_id=sub_id):
        if run.kind == kind and run.path and not manifest_mod.same_submission(run.path, path):
            return (f"the id '{sub_id}' already belongs to {run.path} (graded {run.created_at}); this folder, "
                    f"{path.resolve()}, is another submission with the same id: rename the folder, place it "
                    f"under a submissions/ folder at a path of its own, or grade it into another store (--db)")
    return None


def _grade_submission(path: Path, opts: GradeOptions, store: Store | None, progress=None) -> SubmissionResult:
    sub_id = manifest_mod.submission_id(path)
    resolved = str(path.resolve())
    sha, problems, manifest, name, clash = "", None, None, sub_id, None
    try:  # limits first: nothing is hashed or parsed in a tree the copy would refuse
        sha = tree_sha256(path)
        problems = clash = identity_problem(store, sub_id, path, opts.kind)
    except SubmissionCopyError as exc:
        problems = str(exc)
    if problems is None:
        try:
            manifest = manifest_mod.load(path)
            name = plain_text(manifest.name, 200, one_line=True)
        except manifest_mod.ManifestError as exc:
            problems = str(exc)
    mnist = data.load() if problems is None else None
    results: dict[str, Run] = {}
    for track in opts.tracks:
        run_uid = uuid.uuid4().hex
        if problems is not None:
            results[track] = Run.outcome("INVALID_SUBMISSION", problems)
        elif track not in manifest.tracks:
            results[track] = Run.outcome("SKIPPED", f"no '{track}' section in submission.yaml")
            continue
        else:
            on_progress = progress.callback(sub_id, track) if progress else None
            try:
                results[track] = grade_track(path, manifest.tracks[track], opts, mnist, run_uid, on_progress)
            except Exception as exc:  # the track's boundary: the other tracks and submissions go on
                results[track] = Run.outcome("CRASH", f"the harness failed on this track ({type(exc).__name__}: "
                                                      f"{exc}); this is a harness bug, please report it")
            if progress:
                progress.done(sub_id, track, results[track].status)
        r = _finish(results[track], run_uid, opts)
        r.submission_id, r.name, r.path, r.sha256, r.track = sub_id, name, resolved, sha, track
        r.harness_version = __version__
        r.versions = {**versions(), "config": config_sha256(opts.competition, opts.seed), **r.versions}  # --resume
        if store is not None and clash is None:  # a refused identity is never stored under that id
            store.add(r)
    return SubmissionResult(sub_id, clip_text(name, 200), resolved, sha, results)


def results_json(results: list[SubmissionResult]) -> dict:
    return {"harness_version": __version__, "submissions": [r.as_json() for r in results]}
