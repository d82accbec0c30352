"""The instructor's commands: ``harness reveal``, ``harness history``, ``harness merge``, ``harness report``.

Registered on the ``harness`` parser by :func:`add_commands`; ``harness leaderboard`` is
:func:`harness.render.exports.cmd_leaderboard` and the CI options of ``harness grade`` come from
:func:`harness.render.ci.add_grade_arguments`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness import competition as competition_mod
from harness.cli.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, console, err, known_tracks
from harness.render.report import build_report, default_output, history_runs, key_metric, standing_run_ids, submission_id_of
from harness.render.exports import render
from harness.render.tables import render_overall_rich, render_rich
from harness.standings.overall import compute_overall, track_standings
from harness.standings.visibility import visible_metrics
from harness.store import Store
from harness.text import plain_text
from harness.store.merge import MergeError, merge_files




def cmd_reveal(args) -> int:
    with Store(args.db_path) as store:
        was = store.revealed
        if args.status:
            when = store.get_setting("revealed_at", "")
            console.print(f"revealed: {'yes' if was else 'no'}" + (f" (since {when})" if was and when else "")
                          + f"; the leaderboard ranks by the {'private' if was else 'public'} half")
            return EXIT_OK
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if args.undo:
            store.set_setting("revealed", "0")
            store.set_setting("revealed_at", "")
            console.print("hidden again: the leaderboard ranks by the public half" if was
                          else "not revealed: the leaderboard already ranks by the public half")
        else:
            store.set_setting("revealed", "1")
            if not was:
                store.set_setting("revealed_at", now)
            console.print("revealed: the leaderboard now ranks by the private half (`harness leaderboard`); "
                          "undo with `harness reveal --undo`" if not was else "already revealed")
    return EXIT_OK


def cmd_history(args) -> int:


    comp = competition_mod.load(args.config)
    with Store(args.db_path) as store:
        runs = history_runs(store, args.path, args.track)
        revealed = store.revealed
        standing = standing_run_ids(store, comp, runs) if runs else {}
    instructor = bool(getattr(args, "private", False))
    private = revealed or instructor
    sid = plain_text(submission_id_of(args.path), 200, one_line=True)
    if args.json:
        stand_ids = {v[0] for v in standing.values()}
        doc = {"submission": sid, "runs": [
            {"id": r.id, "run_uid": r.run_uid, "created_at": r.created_at, "track": r.track, "profile": r.profile,
             "kind": r.kind, "status": r.status, "message": plain_text(r.message, 4000),
             "metrics": visible_metrics(r.track, r.metrics, revealed, instructor), "sha256": r.sha256,
             "seconds": r.seconds, "device": r.device, "seed": r.seed, "isolation": r.isolation,
             "standing": r.id in stand_ids} for r in runs]}
        print(json.dumps(doc, indent=2))
        return EXIT_OK if runs else EXIT_FAILED
    if not runs:
        err.print(f"no stored run of '{sid}' in {args.db_path} (grade it with `harness grade {args.path}`)",
                  markup=False, highlight=False)
        return EXIT_FAILED
    stand_ids = {v[0] for v in standing.values()}
    name = plain_text(runs[-1].name, 200, one_line=True)
    table = Table(title=Text(f"history of {sid} ({name}): {len(runs)} run{'s' if len(runs) != 1 else ''}"),
                  caption="oldest first; * = the run standing on the leaderboard of its track and profile")
    for col in ("run", "date (UTC)", "track", "profile", "kind", "status", "key metric", "sha256", "seconds",
                "device", ""):
        table.add_column(col, justify="right" if col in ("run", "seconds") else "left", no_wrap=True)
    for r in runs:
        key, value = key_metric(r, private)
        style = None if r.status == "OK" else "red"
        cells = [str(r.id), r.created_at.replace("+00:00", ""), r.track, r.profile, r.kind, r.status,
                 f"{key} {value}" if value else "", r.sha256[:12], f"{r.seconds:.1f}" if r.seconds else "",
                 r.device or "", "*" if r.id in stand_ids else ""]
        table.add_row(*(Text(plain_text(c, 200, one_line=True)) for c in cells), style=style)  # never markup
    console.print(table)
    return EXIT_OK


def cmd_merge(args) -> int:
    missing = [p for p in args.files if not Path(p).is_file()]
    for p in missing:
        err.print(f"[red]{p}: no such file[/]")
    if missing:
        return EXIT_USAGE
    try:
        with Store(args.db_path) as store:
            report = merge_files(args.files, store)
    except MergeError as exc:
        err.print(f"[bold red]merge:[/] {escape(plain_text(str(exc), 2000))}")
        return EXIT_USAGE
    for f, (added, present) in report.per_file.items():
        console.print(f"{f}: {added} run{'s' if added != 1 else ''} added, {present} already stored",
                      markup=False, highlight=False)
    for line in report.refused:  # another folder's id: never merged into that row
        err.print(line, markup=False, highlight=False)
    console.print(f"merged into {args.db_path}: {report.added} added, {report.present} already stored")
    return EXIT_OK


def cmd_report(args) -> int:
    comp = competition_mod.load(args.config)
    with Store(args.db_path) as store:
        text = build_report(store, comp, args.path, True if args.private else None)
    if text is None:
        err.print(f"no stored run of '{submission_id_of(args.path)}' in {args.db_path} "
                  f"(grade it with `harness grade {args.path}`)")
        return EXIT_FAILED
    out = Path(args.output) if args.output else default_output(args.db_path, args.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    err.print(f"report written to {out}")
    return EXIT_OK


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("reveal", parents=[common], help="rank by the private half from now on (the deadline)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--undo", action="store_true", help="hide the private half again")
    g.add_argument("--status", action="store_true", help="only say whether the private half is revealed")
    p.set_defaults(func=cmd_reveal)

    p = sub.add_parser("history", parents=[common], help="every stored run of one submission")
    p.add_argument("path", help="a submission folder, or its id")
    p.add_argument("--track", default=None, metavar="TRACK")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--private", action="store_true",
                   help="instructors: every metric (whole test set, private half, full precision) before the reveal")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("merge", parents=[common], help="import runs from --json result files (or stores), each once")
    p.add_argument("files", nargs="+", help="results JSON files written by `harness grade --json`, or .db stores")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("report", parents=[common], help="a self-contained HTML report about one submission")
    p.add_argument("path", help="a submission folder, or its id")
    p.add_argument("-o", "--output", default=None, help="the HTML file (default <store dir>/reports/<id>.html)")
    p.add_argument("--private", action="store_true", help="show the private half even before the reveal")
    p.set_defaults(func=cmd_report)


def cmd_leaderboard(args) -> int:
    comp = competition_mod.load(args.config)
    tracks = list(known_tracks(args.track))
    private = True if args.private else None
    profile = "quick" if args.quick else "full"
    with Store(args.db_path) as store:
        revealed = store.revealed
        all_tracks = track_standings(store, comp, profile, private)
    per_track = [s for s in all_tracks if s.track in tracks]
    overall = compute_overall(all_tracks, comp) if not args.track else None
    shown = [s for s in per_track if s.rows]
    is_private = bool(args.private or revealed)
    if args.format == "table" and not args.output:
        if not shown:
            other = "full" if profile == "quick" else "quick"
            with Store(args.db_path) as store:
                elsewhere = [s for s in track_standings(store, comp, other, private) if s.track in tracks and s.rows]
            if not elsewhere:
                console.print("the leaderboard is empty: grade something first (`harness baselines --quick`)")
                return EXIT_OK
            flag = "`harness leaderboard --quick`" if other == "quick" else "`harness leaderboard` (no --quick)"
            console.print(f"no {profile}-profile runs yet: showing the {other}-profile standings ({flag})")
            shown, overall = elsewhere, None
        for st in shown:
            console.print(render_rich(st))
        if overall is not None and len(overall.tracks) >= 2:
            console.print(render_overall_rich(overall))
        return EXIT_OK
    if args.format == "table":
        rec = Console(record=True, width=160, file=io.StringIO())
        for st in shown:
            rec.print(render_rich(st))
        if overall is not None and overall.rows:
            rec.print(render_overall_rich(overall))
        text = rec.export_text()
    else:
        text = render(args.format, shown, overall, comp, revealed, is_private, args.db_path)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        err.print(f"written to {args.output}")
    else:
        sys_stdout_write(text)
    return EXIT_OK


def sys_stdout_write(text: str) -> None:
    sys.stdout.write(text)
