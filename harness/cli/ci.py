"""The CI side of ``harness grade``: its CI options (shards, GPUs, thresholds, CI files, --private),
the audience's view of the results (:func:`visible_results`), writing the CI files after grading, and
which submissions a pull request changes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from pathlib import Path

from harness.competition import TRACKS
from harness.grading.jobs import parse_gpus, parse_shard
from harness.render.ci import Threshold, gradescope_results, junit_xml, summary_markdown, threshold_misses, unknown_thresholds
from harness.standings.visibility import hidden_before_reveal, hidden_keys_hint, shown_key, visible_metrics
from harness.text import plain_text

NAME_LIMIT, MESSAGE_LIMIT = 200, 4000  # characters of a name or id, of a message, in anything printed or written

_THRESHOLD = re.compile(r"^\s*(?:(?P<track>[a-z]+)\.)?(?P<metric>[A-Za-z0-9_]+)\s*=\s*(?P<value>\S+)\s*$")



def _threshold_parser(kind: str):
    def parse(text: str) -> Threshold:
        m = _THRESHOLD.match(text or "")
        if not m:
            raise argparse.ArgumentTypeError(f"'{text}': expected METRIC=VALUE or TRACK.METRIC=VALUE, "
                                             f"e.g. test_accuracy=0.98")
        track = m.group("track")
        if track is not None and track not in TRACKS:
            raise argparse.ArgumentTypeError(f"'{text}': unknown track '{track}' (known: {', '.join(TRACKS)})")
        try:
            value = float(m.group("value"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}': '{m.group('value')}' is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"'{text}': the threshold must be a finite number")
        return Threshold(kind, m.group("metric"), value, track)

    parse.__name__ = f"--{kind} threshold"
    return parse


parse_min = _threshold_parser("min")
parse_max = _threshold_parser("max")


def add_grade_arguments(p: argparse.ArgumentParser) -> None:
    """The whole-class and CI options of ``harness grade``."""
    p.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                   help="grade only shard K of N of the sorted submission paths (sorted[K-1::N])")
    p.add_argument("--gpus", type=parse_gpus, default=None, metavar="0,1",
                   help="spread the --jobs over these GPUs: job slot i uses GPU i %% n (same as --device @cupy:0,1)")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML: one testcase per submission x track")
    p.add_argument("--gradescope", default=None, metavar="FILE", help="write Gradescope's autograder results.json")
    p.add_argument("--summary-md", default=None, metavar="FILE", help="write a Markdown summary of the results")
    p.add_argument("--min", dest="thresholds", action="append", type=parse_min, default=[], metavar="METRIC=V",
                   help="exit 1 if a graded track reports METRIC below V (repeatable; TRACK.METRIC=V for one track)")
    p.add_argument("--max", dest="thresholds", action="append", type=parse_max, default=[], metavar="METRIC=V",
                   help="exit 1 if a graded track reports METRIC above V (repeatable)")
    p.add_argument("--private", action="store_true",
                   help="instructors: print and write every metric (whole test set, private half, full precision) "
                        "even before `harness reveal`; without it the output is what a student may see")


def visible_results(results, revealed: bool, private: bool):
    """The results as their audience may read them: copies whose metrics went through
    :func:`harness.standings.visibility.visible_metrics` (public half only before the reveal, losses
    to 4 significant digits; everything with ``private``) and whose id, name and messages are plain
    text. Everything ``harness grade`` prints or writes (table, --json, JUnit, Gradescope, summary,
    thresholds) is made from this view."""
    view = []
    for r in results:
        tracks = {name: dataclasses.replace(t, metrics=visible_metrics(name, t.metrics, revealed, private),
                                            message=plain_text(t.message, MESSAGE_LIMIT))
                  for name, t in r.tracks.items()}
        view.append(dataclasses.replace(r, id=plain_text(r.id, NAME_LIMIT, one_line=True),
                                        name=plain_text(r.name, NAME_LIMIT, one_line=True),
                                        path=plain_text(r.path, 1000, one_line=True), tracks=tracks))
    return view


def finish(results, args, status: int, console=None) -> int:
    """Write the CI files asked for and apply the thresholds; returns the exit code of ``harness grade``."""
    thresholds = list(getattr(args, "thresholds", None) or [])
    misses = threshold_misses(results, thresholds)
    unknown = unknown_thresholds(results, thresholds)

    def say(text):
        if console is not None:
            console.print(text, markup=False, highlight=False)

    for (sub, track), lines in misses.items():
        for line in lines:
            say(f"THRESHOLD {sub} {track}: {line}")
    for th in unknown:
        known = sorted({k for r in results for t in r.tracks.values() if t.status == "OK" for k in t.metrics})
        hidden = [track for r in results for track in r.tracks if th.track in (None, track)
                  and hidden_before_reveal(track, th.metric)
                  and (th.metric.endswith("_private") or shown_key(track, th.metric, False) not in (None, th.metric))]
        why = f"; {hidden_keys_hint(hidden[0], th.metric)} (or grade with --private)" if hidden else ""
        say(f"{th}: no graded track reports '{th.metric}' (known: {', '.join(known)}){why}")
    for attr, make in (("junit", lambda: junit_xml(results, misses)),
                       ("gradescope", lambda: json.dumps(gradescope_results(results, misses), indent=2) + "\n"),
                       ("summary_md", lambda: summary_markdown(results, misses, thresholds))):
        target = getattr(args, attr, None)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(make(), encoding="utf-8")
            say(f"{attr.replace('_', '-')} written to {target}")
    if unknown:
        return max(status, 2)
    if misses:
        return max(status, 1)
    return status


def changed_submissions(names, root: str | Path = ".") -> list[str]:
    """The submission folders a change touches: unique ``submissions/<id>`` of the changed file names
    (``git diff --name-only``), sorted, that still hold a ``submission.yaml``; ``_template``, and any
    id that is not plain letters, digits, ``.``, ``_`` and ``-`` (so never a shell word), are left out."""
    found = set()
    for name in names:
        parts = Path(str(name).strip()).parts
        if len(parts) >= 3 and parts[0] == "submissions" and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", parts[1]):
            found.add(f"submissions/{parts[1]}")
    return sorted(d for d in found if (Path(root) / d / "submission.yaml").is_file())


def main(argv=None) -> int:
    """``git diff --name-only BASE...HEAD | python -m harness.cli.ci changed-submissions``: one folder a line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["changed-submissions"]:
        sys.stderr.write("usage: git diff --name-only BASE...HEAD | python -m harness.cli.ci changed-submissions\n")
        return 2
    for d in changed_submissions(sys.stdin.read().splitlines()):
        print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
