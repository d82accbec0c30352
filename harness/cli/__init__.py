"""The ``harness`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape

from harness import __version__, competition as competition_mod, data
from harness.cli.ci import add_grade_arguments
from harness.cli.console import EXIT_ENV, EXIT_USAGE, UnknownTrack, err
from harness.cli.grading import cmd_baselines, cmd_check, cmd_data, cmd_grade, isolation_from_args
from harness.cli.plan import add_plan_command, add_resume_argument
from harness.cli.workflow import add_commands, cmd_leaderboard
from harness.grading.grade import DeviceError, DeviceSpecError
from harness.grading.jobs import parse_jobs
from harness.sandbox.mounts import no_hugepage_advice
from harness.store import db_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Grade Chainer MNIST submissions.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", dest="db_path", default=None, help="leaderboard store (default leaderboard/leaderboard.db or $HARNESS_DB)")
    common.add_argument("--config", default=None, help="competition.yaml (default ./competition.yaml or the packaged one)")
    running = argparse.ArgumentParser(add_help=False)
    running.add_argument("--quick", action="store_true", help="small training subset and one epoch: feedback in about a minute")
    running.add_argument("--device", default="@numpy", help="@numpy (default), @cupy:N or auto")
    running.add_argument("--no-sandbox", action="store_true", help="run student code without isolation (trusted code only)")
    running.add_argument("--stock-chainer", action="store_true",
                         help="on the CPU, run Chainer's own convolution instead of the harness's faster one "
                              "(same as cpu_convolution: stock in competition.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", parents=[common], help="make MNIST available offline and print its checksums")
    p.add_argument("--verify", action="store_true", help="rebuild from the source and verify every checksum")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("check", parents=[common, running], help="validate a submission in seconds")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--track", action="append", metavar="TRACK", help="check only this track (repeatable)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", parents=[common, running], help="grade submissions and update the leaderboard")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--track", action="append", metavar="TRACK", help="grade only this track (repeatable)")
    p.add_argument("--jobs", type=parse_jobs, default=1, metavar="N|auto",
                   help="grade N submissions in parallel, each with its share of the cores (auto: as many as "
                        "cores and memory allow)")
    p.add_argument("--seed", type=int, default=None, help="seed for training and sampling (default: competition.yaml)")
    p.add_argument("--json", default=None, help="write machine-readable results to FILE")
    add_grade_arguments(p)  # --shard, --gpus, --junit, --gradescope, --summary-md, --min, --max
    add_resume_argument(p)  # --resume / --no-resume (harness.cli.plan)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("leaderboard", parents=[common], help="show or export the standings")
    p.add_argument("--track", action="append", metavar="TRACK")
    p.add_argument("--private", action="store_true", help="rank by the private half (instructors)")
    p.add_argument("--quick", action="store_true", help="the standings of --quick runs")
    p.add_argument("--format", default="table", choices=["table", "md", "html", "csv", "json"])
    p.add_argument("-o", "--output", default=None, help="write to FILE instead of the terminal")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("baselines", parents=[common, running], help="grade everything under baselines/")
    p.add_argument("--root", default="baselines", help=argparse.SUPPRESS)
    p.add_argument("--jobs", type=parse_jobs, default="auto", metavar="N|auto",
                   help="baselines graded in parallel (default auto: as many as cores and memory allow)")
    p.add_argument("--json", default=None)
    p.set_defaults(func=cmd_baselines, track=None, seed=None)
    add_commands(sub, common)  # reveal, history, merge, report (harness.cli.workflow)
    add_plan_command(sub, common)  # plan (harness.cli.plan)
    return parser


def main(argv=None) -> int:
    no_hugepage_advice()  # the grader's own arrays, as the sandbox's (MEMORY_SETTINGS)
    args = build_parser().parse_args(argv)
    args.db_path = str(db_path(args.db_path))
    if hasattr(args, "no_sandbox"):
        args.isolation = isolation_from_args(args)
        if args.isolation is None:
            return EXIT_ENV
    try:
        return args.func(args)
    except data.DataError as exc:
        err.print(f"[bold red]data:[/] {escape(str(exc))}")
        return EXIT_ENV
    except DeviceError as exc:
        err.print(f"[bold red]device:[/] {escape(str(exc))}")
        return EXIT_ENV
    except (DeviceSpecError, UnknownTrack) as exc:
        err.print(f"[bold red]usage:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except competition_mod.ConfigError as exc:
        err.print(f"[bold red]config:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
