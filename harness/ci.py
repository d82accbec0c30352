"""CI artefacts of ``harness grade``: score thresholds, JUnit XML, Gradescope ``results.json``, a Markdown summary.

* Thresholds (``--min test_accuracy=0.98``, ``--max fcd=40``, repeatable, optionally ``track.metric``)
  apply to every graded track that reports the metric. A miss makes ``harness grade`` exit 1; without
  thresholds a low score never changes the exit code (SPEC: CI fails only on broken submissions).
  A threshold naming a metric that no graded track reports is a usage error (exit 2), so a typo
  cannot pass silently.
* JUnit (``--junit FILE``): ``<testsuites>`` with one ``<testsuite>`` per submission and one
  ``<testcase classname="<submission id>" name="<track>">`` per graded track; a non-OK status is a
  ``<failure type="STATUS">``, a threshold miss a ``<failure type="THRESHOLD">``, a track the
  submission does not enter is ``<skipped>``. The metrics go to ``<system-out>`` as JSON.
* Gradescope (``--gradescope FILE``): Gradescope's autograder ``results.json``; one test per
  submission x track (``max_score`` 1: 1 when OK and within every threshold, else 0), the output
  holding the status, message and metrics, and a ``leaderboard`` entry per ranking metric (``order``
  ``asc`` for lower-is-better metrics such as ``fcd``).
* ``--summary-md FILE``: a Markdown table of the results (for a pull-request comment or
  ``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.competition import TRACKS
from harness.tracks import track_module

_THRESHOLD = re.compile(r"^\s*(?:(?P<track>[a-z]+)\.)?(?P<metric>[A-Za-z0-9_]+)\s*=\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True)
class Threshold:
    kind: str  # "min" or "max"
    metric: str
    value: float
    track: str | None = None

    def __str__(self) -> str:
        where = f"{self.track}." if self.track else ""
        return f"--{self.kind} {where}{self.metric}={self.value:g}"

    def applies(self, track: str, metrics: dict) -> bool:
        return (self.track in (None, track)) and self.metric in metrics

    def passes(self, value) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return False
        return value >= self.value if self.kind == "min" else value <= self.value


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
    from harness.jobs import parse_gpus, parse_shard

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


# ----- thresholds

def threshold_misses(results, thresholds) -> dict[tuple[str, str], list[str]]:
    """(submission id, track) -> the thresholds its OK run misses, as readable lines."""
    misses: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for track, t in r.tracks.items():
            if t.status != "OK":
                continue
            for th in thresholds:
                if th.applies(track, t.metrics) and not th.passes(t.metrics[th.metric]):
                    word = "below the minimum" if th.kind == "min" else "above the maximum"
                    misses.setdefault((r.id, track), []).append(
                        f"{th.metric} = {t.metrics[th.metric]:.6g} is {word} {th.value:g} ({th})")
    return misses


def unknown_thresholds(results, thresholds) -> list[Threshold]:
    """Thresholds whose metric no OK graded track reports (checked only when some track is OK)."""
    ok = [(track, t.metrics) for r in results for track, t in r.tracks.items() if t.status == "OK"]
    if not ok:
        return []
    return [th for th in thresholds if not any(th.applies(track, m) for track, m in ok)]


# ----- JUnit

def _clean(text: str) -> str:
    """XML 1.0 allows only some characters; drop the rest (ANSI escapes from tracebacks, say)."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "", str(text))


def junit_xml(results, misses=None, name: str = "harness") -> str:
    misses = misses or {}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name=name)
    totals = dict(tests=0, failures=0, errors=0, skipped=0, time=0.0)
    for i, r in enumerate(results):
        suite = ET.SubElement(root, "testsuite", name=_clean(r.id), id=str(i), package="harness",
                              hostname=_clean(socket.gethostname() or "localhost"), timestamp=stamp)
        props = ET.SubElement(suite, "properties")
        for key, value in (("name", r.name), ("path", r.path), ("sha256", r.sha256),
                           ("harness_version", r.harness_version)):
            ET.SubElement(props, "property", name=key, value=_clean(value))
        counts = dict(tests=0, failures=0, errors=0, skipped=0, time=0.0)
        for track, t in r.tracks.items():
            case = ET.SubElement(suite, "testcase", name=track, classname=_clean(r.id),
                                 time=f"{float(t.seconds or 0):.3f}")
            counts["tests"] += 1
            counts["time"] += float(t.seconds or 0)
            if t.status == "SKIPPED":
                ET.SubElement(case, "skipped", message=_clean(t.message))
                counts["skipped"] += 1
            elif t.status != "OK":
                f = ET.SubElement(case, "failure", message=_clean(f"{t.status}: {t.message.splitlines()[0] if t.message else ''}"),
                                  type=t.status)
                f.text = _clean(t.message)
                counts["failures"] += 1
            elif (r.id, track) in misses:
                lines = misses[(r.id, track)]
                f = ET.SubElement(case, "failure", message=_clean("; ".join(lines)), type="THRESHOLD")
                f.text = _clean("\n".join(lines))
                counts["failures"] += 1
            if t.status != "SKIPPED":
                out = {"status": t.status, "metrics": t.metrics, "device": t.device, "seed": t.seed,
                       "isolation": t.isolation, "run_uid": getattr(t, "run_uid", "")}
                ET.SubElement(case, "system-out").text = _clean(json.dumps(out, indent=1, default=str))
        for k, v in counts.items():
            suite.set(k, f"{v:.3f}" if k == "time" else str(v))
            totals[k] += v
    for k in ("tests", "failures", "errors", "time"):
        root.set(k, f"{totals[k]:.3f}" if k == "time" else str(totals[k]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ----- Gradescope

def _leaderboard_name(track: str, key: str) -> str:
    return f"{track}: {key}"


def gradescope_results(results, misses=None) -> dict:
    misses = misses or {}
    tests, board, total = [], [], 0.0
    lines = []
    for r in results:
        for track, t in r.tracks.items():
            if t.status == "SKIPPED":
                continue
            passed = t.status == "OK" and (r.id, track) not in misses
            out = [f"status: {t.status}"]
            if t.message:
                out.append(t.message)
            for line in misses.get((r.id, track), []):
                out.append(f"threshold missed: {line}")
            if t.metrics:
                out.append("metrics:")
                out += [f"  {k} = {v:.6g}" if isinstance(v, float) else f"  {k} = {v}" for k, v in t.metrics.items()]
            score = 1.0 if passed else 0.0
            total += score
            name = f"{track}" if len(results) == 1 else f"{r.id}: {track}"
            tests.append({"name": name, "score": score, "max_score": 1.0,
                          "status": "passed" if passed else "failed", "output": _clean("\n".join(out)),
                          "visibility": "visible"})
            if t.status == "OK":
                module = track_module(track)
                value = t.metrics.get(module.RANK_KEY)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    board.append({"name": _leaderboard_name(track, module.RANK_KEY), "value": float(value),
                                  "order": "desc" if module.HIGHER_IS_BETTER else "asc"})
            lines.append(f"{r.id} {track}: {t.status}" + ("" if passed or t.status != "OK" else " (threshold missed)"))
    return {"score": total, "output": "\n".join(lines) or "nothing was graded", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests, "leaderboard": board}


# ----- Markdown summary

def summary_markdown(results, misses=None, thresholds=()) -> str:
    from harness.leaderboard import columns, fmt

    misses = misses or {}
    lines = ["### Grading results", "", "| submission | track | status | key metrics | note |", "|---|---|---|---|---|"]
    esc = lambda s: html.escape(str(s), quote=False).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for r in results:
        for track, t in r.tracks.items():
            if t.status == "SKIPPED":
                continue
            if t.status == "OK":
                keys = [(k, f) for k, _, f in columns(track, private=False)][:4]
                metrics = ", ".join(f"{k} {fmt(t.metrics.get(k), f)}" for k, f in keys if k in t.metrics)
            else:
                metrics = ""
            note = t.message.splitlines()[0][:200] if t.message else ""
            if (r.id, track) in misses:
                note = "; ".join(misses[(r.id, track)])
            status = t.status if (r.id, track) not in misses else "below threshold"
            mark = "✅" if t.status == "OK" and (r.id, track) not in misses else "❌"
            lines.append(f"| {esc(r.id)} | {track} | {mark} {status} | {esc(metrics)} | {esc(note)} |")
    if len(lines) == 4:
        lines.append("| (none) | | | | |")
    if thresholds:
        lines += ["", "Thresholds: " + ", ".join(f"`{th}`" for th in thresholds)]
    return "\n".join(lines) + "\n"


# ----- after grading

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
        say(f"{th}: no graded track reports '{th.metric}' (known: {', '.join(known)})")
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


# ----- pull requests

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
    """``git diff --name-only BASE...HEAD | python -m harness.ci changed-submissions``: one folder a line."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["changed-submissions"]:
        sys.stderr.write("usage: git diff --name-only BASE...HEAD | python -m harness.ci changed-submissions\n")
        return 2
    for d in changed_submissions(sys.stdin.read().splitlines()):
        print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
