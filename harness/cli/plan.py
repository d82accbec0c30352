"""``harness plan``: what grading a class will cost, before spending it; and ``harness grade --resume``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from harness import competition as competition_mod, tracks as track_registry
from harness.cli.console import EXIT_OK, EXIT_USAGE, console, err
from harness.grading.plan import STARTUP_SECONDS, estimate
from harness.store import Store

SOURCES = {"own": "own last run", "baselines": "median of baselines", "limit": "time limit (no runs stored)"}


def add_resume_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                   help="skip (submission, track) pairs whose current files and config already have a stored "
                        "run of this profile (default: on with --shard, off otherwise)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number >= 1") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number >= 1")
    return n


def add_plan_command(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("plan", parents=[common], help="estimate the wall time, core- and GPU-hours of grading a class")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--nodes", type=_positive, default=1, help="machines (Slurm array tasks / shards), default 1")
    p.add_argument("--jobs", type=_positive, default=1, help="--jobs of each node's grade, default 1")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per node (for GPU-hours), default 0")
    p.add_argument("--cpus", type=_positive, default=os.cpu_count() or 1,
                   help="cores per node (for core-hours), default this machine's")
    p.add_argument("--quick", action="store_true", help="the --quick profile")
    p.add_argument("--track", action="append", metavar="TRACK", help="only this track (repeatable)")
    p.add_argument("--startup", type=float, default=STARTUP_SECONDS,
                   help=f"seconds each node spends around the runs (default {STARTUP_SECONDS})")
    p.set_defaults(func=cmd_plan)


def hms(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s"
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def cmd_plan(args) -> int:
    missing = [p for p in args.paths if not p.is_dir()]
    for p in missing:
        err.print(f"[red]{escape(str(p))}: not a folder[/] (expected a submission folder holding submission.yaml)")
    if missing:
        return EXIT_USAGE
    if args.gpus < 0:
        err.print(f"[red]--gpus {args.gpus}: expected 0 or more GPUs per node[/]")
        return EXIT_USAGE
    comp = competition_mod.load(args.config)
    known = track_registry.names()
    bad = [t for t in args.track or () if t not in known]
    if bad:
        err.print(f"[red]--track {escape(bad[0])}: unknown track[/] (known: {', '.join(known)})")
        return EXIT_USAGE
    tracks = tuple(args.track) if args.track else known
    with Store(args.db_path) as store:
        plan = estimate(args.paths, store, comp, tracks, args.quick, nodes=args.nodes, jobs=args.jobs,
                        gpus=args.gpus, cpus_per_node=args.cpus, startup_seconds=args.startup)
    table = Table(title=f"plan: {len(plan.items)} submissions, {plan.profile} profile, "
                        f"{plan.nodes} node(s) x {plan.jobs} job(s)", title_justify="left")
    for col, justify in (("track", "left"), ("submissions", "right"), ("seconds each", "right"),
                         ("from", "left"), ("total", "right")):
        table.add_column(col, justify=justify)
    for track, row in plan.by_track().items():
        first = True
        for source, secs in row["sources"].items():
            each = f"{min(secs):.1f}" if min(secs) == max(secs) else f"{min(secs):.1f}-{max(secs):.1f}"
            table.add_row(track if first else "", str(len(secs)), each, f"{SOURCES[source]} ({len(secs)})",
                          hms(sum(secs)))
            first = False
        if len(row["sources"]) > 1:
            table.add_row("", str(row["submissions"]), "", "all", hms(row["total"]))
    console.print(table)
    if any(src == "limit" for r in plan.by_track().values() for src in r["sources"]):
        err.print("[yellow]some tracks have no stored run to go by and count at their time limit: "
                  "run `harness baselines" + (" --quick" if args.quick else "") + "` for a better estimate[/]")
    gpu = f", {plan.gpu_hours:.2f} GPU-hours" if plan.gpus else ""
    console.print(f"estimate: wall {hms(plan.wall_seconds)} ({plan.wall_seconds:.0f} s; longest-first packing "
                  f"{hms(plan.ideal_wall_seconds)}), {plan.core_hours:.2f} core-hours allocated "
                  f"({plan.nodes} x {plan.cpus_per_node} cores){gpu}; {hms(plan.busy_seconds)} of grading",
                  markup=False, highlight=False)
    return EXIT_OK
