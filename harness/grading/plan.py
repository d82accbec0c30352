"""Before grading a class: what is already graded (``--resume``) and what the rest will cost (``harness plan``).

Resume. A run is a verdict on one tree of files (its sha256) under one effective configuration: the
track, the profile, the kind (submission or baseline) and :func:`config_sha256` of the competition
config and seed, which every run records in ``versions["config"]``. ``harness grade --resume`` grades
a (submission, track) only when the store holds no such run, OK or failed (a run that found no
sandbox is no verdict and is graded again). Regrading a class after one submission changed grades
that one submission.

Plan. Each submission costs the sum of its tracks' run times (``runs.seconds``: the track's wall
time in the grader, copy, sandbox, training, scoring): the submission's own latest run of that track
and profile when it has one, else the median over the baselines' OK runs (``harness baselines``),
else the track's time limit (an upper bound, flagged). Submissions are then placed on
``nodes x jobs`` slots the way the harness runs them: node K grades shard K (``sorted[K-1::N]``, as
``--shard K/N``), and each of its ``--jobs`` slots takes the node's next submission when it frees
up. Longest-processing-time-first packing is given beside it, as the ideal lower bound. The wall
time adds the per-node start-up (``startup_seconds``: interpreter, MNIST, the leaderboard).
"""

from __future__ import annotations

import heapq
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import manifest as manifest_mod
from harness.competition import Competition
from harness.grading.config_id import config_sha256
from harness.grading.grade import GradeOptions, SubmissionResult, tree_sha256
from harness.grading.jobs import select_shard
from harness.store import Store

# Measured on the 2-core development machine: `harness grade` start-up and the leaderboard it
# prints, around the runs (process start 2.1 s, MNIST and imports, reference rows, rendering).
STARTUP_SECONDS = 3.5


def options_config(opts: GradeOptions) -> str:
    return config_sha256(opts.competition, opts.seed)


# --- resume ---------------------------------------------------------------------------------------

@dataclass
class ResumeSplit:
    todo: list[tuple[Path, tuple[str, ...]]] = field(default_factory=list)  # (path, tracks still to grade)
    done: dict[str, SubmissionResult] = field(default_factory=dict)          # str(path) -> stored results
    skipped: list[tuple[str, str, str]] = field(default_factory=list)        # (submission id, track, status)


def resume_split(paths, opts: GradeOptions, store: Store) -> ResumeSplit:
    """Which (submission, track) pairs already have a verdict in ``store`` for the current tree and
    configuration, and which remain. A folder that cannot be hashed or whose manifest does not load
    is graded again (the grade reports why)."""
    profile = "quick" if opts.quick else "full"
    config = options_config(opts)
    split = ResumeSplit()
    for path in map(Path, paths):
        try:
            sub_id = manifest_mod.submission_id(path)
            sha = tree_sha256(path)
            entered = manifest_mod.load(path).tracks
        except Exception:
            split.todo.append((path, tuple(opts.tracks)))
            continue
        stored, missing = {}, []
        for track in opts.tracks:
            if track not in entered:
                continue  # graded as SKIPPED, never stored: nothing to resume
            run = store.stored_run(sub_id, sha, track, profile, opts.kind, config)
            if run is None:
                missing.append(track)
            else:
                stored[track] = run  # the stored run itself: same run_uid, so merging it again adds nothing
                split.skipped.append((sub_id, track, run.status))
        if stored:
            first = next(iter(stored))
            run = store.stored_run(sub_id, sha, first, profile, opts.kind, config)
            split.done[str(path)] = SubmissionResult(sub_id, run.name, run.path, sha, stored)
        if missing or not stored:
            split.todo.append((path, tuple(missing) if stored else tuple(opts.tracks)))
    return split


def combine(graded: SubmissionResult | None, stored: SubmissionResult | None, order) -> SubmissionResult:
    """One submission's result from its newly graded tracks and its resumed (stored) ones, in track order."""
    if graded is None:
        return stored
    if stored is None:
        return graded
    tracks = {**stored.tracks, **graded.tracks}
    return replace(graded, tracks={t: tracks[t] for t in order if t in tracks})


# --- plan -----------------------------------------------------------------------------------------

@dataclass
class Item:
    path: str
    submission_id: str
    seconds: float
    tracks: dict[str, tuple[float, str]]  # track -> (seconds, source: own | baselines | limit)


@dataclass
class Plan:
    items: list[Item]
    nodes: int
    jobs: int
    gpus: int
    cpus_per_node: int
    profile: str
    startup_seconds: float
    node_seconds: list[float]   # busy time of each node (in-order schedule)
    lpt_seconds: float          # makespan of the longest-first packing (ideal)

    @property
    def wall_seconds(self) -> float:
        return self.startup_seconds + max(self.node_seconds, default=0.0)

    @property
    def ideal_wall_seconds(self) -> float:
        return self.startup_seconds + self.lpt_seconds

    @property
    def core_hours(self) -> float:
        """Allocated: every node's cores for the whole wall time (what a cluster charges)."""
        return self.nodes * self.cpus_per_node * self.wall_seconds / 3600

    @property
    def gpu_hours(self) -> float:
        return self.nodes * self.gpus * self.wall_seconds / 3600

    @property
    def busy_seconds(self) -> float:
        return sum(i.seconds for i in self.items)

    def by_track(self) -> dict[str, dict]:
        """track -> {submissions, seconds (each, by source), total}."""
        out: dict[str, dict] = {}
        for item in self.items:
            for track, (secs, source) in item.tracks.items():
                row = out.setdefault(track, {"submissions": 0, "total": 0.0, "sources": {}})
                row["submissions"] += 1
                row["total"] += secs
                row["sources"].setdefault(source, []).append(secs)
        return out


def track_seconds(store: Store, sub_id: str, track: str, profile: str, limit: float,
                  baseline_cache: dict, kind: str = "submission") -> tuple[float, str]:
    own = store.last_seconds(sub_id, track, profile, kind)
    if own is not None:
        return own, "own"
    if (track, profile) not in baseline_cache:
        secs = store.seconds_of_kind(track, profile, "baseline")
        baseline_cache[(track, profile)] = statistics.median(secs) if secs else None
    median = baseline_cache[(track, profile)]
    if median is not None:
        return median, "baselines"
    return limit, "limit"


def in_order_makespan(durations: list[float], slots: int) -> float:
    """Each of ``slots`` workers takes the next duration when it frees up (ThreadPoolExecutor.map)."""
    heap = [0.0] * max(1, slots)
    for d in durations:
        heapq.heapreplace(heap, heap[0] + d)
    return max(heap)


def lpt_makespan(durations: list[float], slots: int) -> float:
    return in_order_makespan(sorted(durations, reverse=True), slots)


def longest_first(todo: list[tuple[Path, tuple[str, ...]]], store: Store, comp: Competition,
                  quick: bool, kind: str = "submission") -> list[tuple[Path, tuple[str, ...]]]:
    """``todo`` ((path, tracks) pairs) in the order that lets ``--jobs`` slots finish together: the
    longest expected first (each submission's own last run, else the baselines' median, else the time
    limit, as :func:`estimate`); the order given among equals."""
    profile = "quick" if quick else "full"
    limit = float(comp["quick"]["time_limit_seconds"] if quick else comp["budget"]["time_limit_seconds"])
    cache: dict = {}

    def seconds(item) -> float:
        path, tracks = item
        sub_id = manifest_mod.submission_id(path)
        return sum(track_seconds(store, sub_id, t, profile, limit, cache, kind)[0] for t in tracks)

    return sorted(todo, key=seconds, reverse=True)  # stable: equals keep their order


def estimate(paths, store: Store, comp: Competition, tracks, quick: bool, nodes: int = 1, jobs: int = 1,
             gpus: int = 0, cpus_per_node: int = 1, startup_seconds: float = STARTUP_SECONDS) -> Plan:
    """The plan of grading ``paths`` (see the module text)."""
    profile = "quick" if quick else "full"
    limit = float(comp["quick"]["time_limit_seconds"] if quick else comp["budget"]["time_limit_seconds"])
    cache: dict = {}
    items = []
    for path in select_shard(paths, (1, 1)):  # sorted and deduplicated, as the shards see them
        sub_id = manifest_mod.submission_id(path)
        try:
            entered = [t for t in tracks if t in manifest_mod.load(path).tracks]
        except manifest_mod.ManifestError:
            entered = []  # refused in a moment, nothing trained: no cost
        per = {t: track_seconds(store, sub_id, t, profile, limit, cache) for t in entered}
        items.append(Item(str(path), sub_id, sum(s for s, _ in per.values()), per))
    node_seconds = []
    for k in range(1, nodes + 1):
        shard = {str(p) for p in select_shard([i.path for i in items], (k, nodes))}
        node_seconds.append(in_order_makespan([i.seconds for i in items if i.path in shard], jobs))
    lpt = lpt_makespan([i.seconds for i in items], nodes * jobs)
    return Plan(items, nodes, jobs, gpus, cpus_per_node, profile, startup_seconds, node_seconds, lpt)
