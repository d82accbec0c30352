"""``harness data``, ``check``, ``grade`` and ``baselines``: the commands that run submissions."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness import competition as competition_mod, data, sandbox
from harness.cli.ci import finish as ci_finish, visible_results
from harness.cli.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, console, err
from harness import tracks as track_registry
from harness.cli.console import known_tracks
from harness.grading.check import check_submission
from harness.grading.grade import GradeOptions, grade_submission, resolve_device, results_json
from harness.grading.jobs import (auto_jobs, cpu_threads_per_job, device_gpus, options_for_slot,
                                  select_shard)
from harness.grading.plan import combine, longest_first, resume_split
from harness.grading.scorer_rows import ensure_references, record_references
from harness.render.tables import fmt, render_rich
from harness.sandbox.sweep import sweep_stale
from harness.standings.per_track import columns, standings
from harness.store import Store
from harness.text import plain_text


class GradeProgress:
    """One rich progress bar per (submission, track), fed by the ingestion process's progress file.

    The phase comes from the student's process (``progress.json``) and the description holds the
    submission's folder name: both are plain text (:func:`harness.text.plain_text`) and the columns
    that show them never read markup, so ``[/]`` or an escape sequence is shown as text, never run."""
    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def _task(self, sub: str, track: str) -> int:
        with self.lock:
            if (sub, track) not in self.tasks:
                self.tasks[(sub, track)] = self.progress.add_task(plain_text(f"{sub} {track}", 80, one_line=True),
                                                                  total=None, phase="starting")
            return self.tasks[(sub, track)]

    def callback(self, sub: str, track: str):
        task = self._task(sub, track)

        def update(phase: str, done: int, total: int) -> None:
            self.progress.update(task, completed=done, total=max(total, 1), phase=plain_text(phase, 40, one_line=True))

        return update

    def done(self, sub: str, track: str, status: str) -> None:
        task = self._task(sub, track)
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, completed=total, total=total, phase=plain_text(status, 40, one_line=True))


def make_progress() -> Progress:
    # markup=False: a phase or folder name such as "[/]" is text (as markup it kills rich's refresh thread)
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[phase]}", style="cyan", markup=False), TimeElapsedColumn(),
                    console=err, transient=False)


def print_result(result, private: bool = False) -> None:
    """One submission's result table. Names and messages come from students: shown as plain text.

    ``result`` is the audience's view (:func:`harness.cli.ci.visible_results`); ``private``: the
    audience may see the private half (revealed, or --private), which then leads the metrics."""
    table = Table(title=Text(plain_text(f"{result.id} ({result.name})", 300, one_line=True)), title_justify="left")
    table.add_column("track")
    table.add_column("status")
    table.add_column("metrics")
    table.add_column("seconds", justify="right")
    shown = {t: r for t, r in result.tracks.items() if r.status != "SKIPPED"} or result.tracks
    for track, r in shown.items():
        if r.status == "OK":
            keys = [(k, f) for k, _, f in columns(track, private=private)]
            keys += [(k, "{:.4g}") for k in r.metrics if k not in dict(keys) and isinstance(r.metrics[k], (int, float))]
            text = Text("  ".join(f"{k}={fmt(r.metrics.get(k), f)}" for k, f in keys if k in r.metrics))
            if r.message:
                text.append("\n" + plain_text(r.message, 4000), style="yellow")
            for name, path in r.artifacts.items():
                text.append(plain_text(f"\n{name}: {path}", 1000))
        else:
            text = Text(plain_text(r.message, 4000), style="red")
        style = {"OK": "green", "SKIPPED": "dim"}.get(r.status, "bold red")
        table.add_row(track, Text(r.status, style=style), text, f"{r.seconds:.1f}" if r.seconds else "")
    console.print(table)


def show_leaderboards(store: Store, tracks, profile: str, highlight: set[int], private: bool | None = None,
                      selection: str = "latest") -> None:

    for track in tracks:
        st = standings(store, track, profile, private, selection)
        if st.rows:
            console.print(render_rich(st, highlight))


def isolation_from_args(args) -> str | None:
    """The isolation to grade under, or None after explaining why the sandbox cannot run."""
    if args.no_sandbox:
        err.print("[bold white on red] WARNING: --no-sandbox: student code runs with your permissions, unisolated. "
                  "Every result says isolation: none. [/]")
        return "none"
    check = getattr(sandbox, "sandbox_available", None)
    if check is not None:
        ok, reason = check()
        if not ok:
            err.print(f"[bold red]SANDBOX_UNAVAILABLE:[/] {escape(reason)}")
            return None
    return "bubblewrap"


def say_isolation(opts) -> None:
    """One line on stderr: the isolation and the memory limit actually in force on this machine."""
    if opts.isolation == "none":
        return
    memory = sandbox.memory_mechanism(gpu=opts.device.startswith("@cupy"))
    err.print(f"sandbox: bubblewrap; memory limit {int(opts.competition['budget']['memory_mb'])} MiB per run "
              f"via {memory}", markup=False, highlight=False)


def grade_options(args, kind: str = "submission"):
    comp = competition_mod.load(args.config)
    if getattr(args, "stock_chainer", False):  # Chainer's own CPU convolution (recorded with each run)
        comp = dataclasses.replace(comp, raw={**comp.raw, "cpu_convolution": "stock"})
    tracks = known_tracks(getattr(args, "track", None))
    store_dir = Path(args.db_path).parent
    return GradeOptions(competition=comp, tracks=tracks, quick=args.quick, device=resolve_device(args.device),
                        seed=getattr(args, "seed", None), isolation=args.isolation, kind=kind,
                        artifacts_root=store_dir / "artifacts")


def grade_paths(paths: list[Path], args, kind: str = "submission") -> int:
    opts = grade_options(args, kind)
    say_isolation(opts)
    jobs = getattr(args, "jobs", 1) or 1
    swept = sweep_stale()  # what a grader killed with SIGKILL left: orphans under free uids, work folders
    if swept:
        err.print(f"startup sweep: {swept.summary()}")
    resume = getattr(args, "resume", None)
    resume = bool(getattr(args, "shard", None)) if resume is None else resume  # shards resume by default
    todo = [(p, tuple(opts.tracks)) for p in paths]
    done: dict = {}
    if resume:
        with Store(args.db_path) as store:
            split = resume_split(paths, opts, store)
        todo, done = split.todo, split.done
        for sub_id, track, status in split.skipped:
            err.print(f"resume: skipped {plain_text(sub_id, 80, one_line=True)} {track}: this tree and config "
                      f"already have a stored run ({status})", markup=False, highlight=False)
        err.print(f"resume: {len(split.skipped)} run(s) already stored, {len(todo)} submission(s) to grade")
    if jobs == "auto":
        jobs = auto_jobs(len(todo), int(opts.competition["budget"]["memory_mb"]) << 20,
                         device_gpus(opts.device, getattr(args, "gpus", None)))
        err.print(f"--jobs auto: {jobs} in parallel", markup=False, highlight=False)
    opts = dataclasses.replace(opts, cpu_threads=cpu_threads_per_job(jobs, opts.device))
    if jobs > 1 and len(todo) > 1:  # slots finish together when the longest runs start first
        with Store(args.db_path) as store:
            todo = longest_first(todo, store, opts.competition, args.quick, kind)
    with make_progress() as progress:
        tracker = GradeProgress(progress)
        local = threading.local()

        slots = itertools.count()  # job slot i -> GPU i % n (harness.grading.jobs)

        def one(item):
            path, tracks = item
            if not hasattr(local, "store"):
                local.store = Store(args.db_path)
                local.slot = next(slots)
            slot_opts = options_for_slot(opts, local.slot, getattr(args, "gpus", None))
            return grade_submission(path, dataclasses.replace(slot_opts, tracks=tracks), local.store, tracker)

        if jobs == 1:
            graded = [one(item) for item in todo]
        else:
            with ThreadPoolExecutor(jobs) as pool:
                graded = list(pool.map(one, todo))
    graded_by_path = {str(item[0]): r for item, r in zip(todo, graded)}
    results = [combine(graded_by_path.get(str(p)), done.get(str(p)), opts.tracks) for p in paths]
    private = bool(getattr(args, "private", False))
    highlight = {t.id for r in results for t in r.tracks.values() if t.id is not None}
    graded_tracks = [t for t in track_registry.names() if any(t in r.tracks and r.tracks[t].status != "SKIPPED" for r in results)]
    with Store(args.db_path) as store:
        revealed = store.revealed
        results = visible_results(results, revealed, private)  # all that is printed or written: the audience's view
        for r in results:
            print_result(r, private=private or revealed)
        if kind == "submission":  # a fresh store shows its ceilings and floors beside the first grade
            ensure_references(store, opts.competition, args.quick, tracks=graded_tracks, console=err)
        show_leaderboards(store, graded_tracks, "quick" if args.quick else "full", highlight,
                          private=True if private else None, selection=opts.competition["selection"])
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(results_json(results), indent=2) + "\n")
        err.print(f"results written to {args.json}")
    # --junit/--gradescope/--summary-md, and --min/--max thresholds (exit 1 on a miss only when asked)
    return ci_finish(results, args, EXIT_OK if all(r.ok for r in results) else EXIT_FAILED, err)


def cmd_data(args) -> int:
    m = data.prepare(force=args.verify)
    if args.verify:
        data.verify(m.arrays(), str(data.cache_file()))
    table = Table(title="MNIST (canonical)")
    for col in ("array", "shape", "dtype", "sha256", "ok"):
        table.add_column(col)
    for key, a in m.arrays().items():
        digest = data.sha256_of(a)
        table.add_row(key, str(a.shape), str(a.dtype), digest, "[green]yes" if digest == data.SHA256[key] else "[red]NO")
    console.print(table)
    console.print(f"cache: {data.cache_file()}\nchainer cache: {data.chainer_cache_dir()}")
    # The generate track's real-data statistics (reference features, KID terms, copy radius):
    # computed once here so the first grade does not pay for them.

    with err.status("computing the reference classifier's test-set statistics (once) ..."):
        from harness.scoring.tracks.generate_suite import prepare_real_statistics  # scipy: only here

        prepare_real_statistics()
    return EXIT_OK


def cmd_check(args) -> int:
    args.quick = False
    opts = grade_options(args)
    say_isolation(opts)
    data.load_or_prepare()
    status = EXIT_OK
    for path in args.paths:
        problems = check_submission(path, opts)
        if problems:
            status = EXIT_FAILED
            console.print(f"[bold red]✗ {path}[/]: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
            for p in problems:
                console.print(f"  - {plain_text(p, 4000)}", markup=False, highlight=False)
        else:
            console.print(f"[bold green]✓ {path}[/]: ready to grade")
        for w in getattr(problems, "warnings", []):  # exit 0: the grade accepts these too
            console.print(f"  ! warning: {plain_text(w, 4000)}", markup=False, highlight=False)
    return status


def cmd_grade(args) -> int:
    data.load_or_prepare()
    missing = [p for p in args.paths if not p.is_dir()]
    for p in missing:
        err.print(f"[red]{escape(str(p))}: not a folder[/] (expected a submission folder holding submission.yaml)")
    return grade_paths(select_shard(args.paths, getattr(args, "shard", None)), args) if not missing else EXIT_USAGE


def cmd_baselines(args) -> int:
    data.load_or_prepare()
    root = Path(args.root)
    paths = sorted(p for p in root.iterdir() if (p / "submission.yaml").is_file()) if root.is_dir() else []
    if not paths:
        err.print(f"[red]{root}: no baselines found[/]")
        return EXIT_USAGE

    comp = competition_mod.load(args.config)
    with Store(args.db_path) as store:
        record_references(store, comp, args.quick, console=err)
    return grade_paths(paths, args, kind="baseline")
