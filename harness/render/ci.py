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
  ``$GITHUB_STEP_SUMMARY``), written by the one Markdown table writer
  (:func:`harness.render.tables.markdown_table`).

Every text field a student controls (id, name, message) is plain text here
(:func:`harness.text.plain_text`); the metrics are those the caller passes, which ``harness grade``
has already filtered for its audience (:func:`harness.standings.visibility.visible_metrics`).
"""

from __future__ import annotations

import json
import math
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone

from harness import tracks
from harness.render.tables import fmt, markdown_table, md_cell
from harness.standings.per_track import columns
from harness.text import plain_text

MESSAGE_LIMIT = 4000  # characters of a message in a CI file


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

def _clean(text, limit: int | None = MESSAGE_LIMIT) -> str:
    """Plain text (no terminal escapes, no control characters) that XML 1.0 accepts."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "", plain_text(text, limit))


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
                out = {"status": t.status, "message": t.message, "metrics": t.metrics, "device": t.device,
                       "seed": t.seed,
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
                out.append(_clean(t.message))
            for line in misses.get((r.id, track), []):
                out.append(f"threshold missed: {line}")
            if t.metrics:
                out.append("metrics:")
                out += [f"  {k} = {v:.6g}" if isinstance(v, float) else f"  {k} = {v}" for k, v in t.metrics.items()]
            score = 1.0 if passed else 0.0
            total += score
            name = f"{track}" if len(results) == 1 else f"{_clean(r.id, 200)}: {track}"
            tests.append({"name": name, "name_format": "text", "score": score, "max_score": 1.0,
                          "status": "passed" if passed else "failed", "output": _clean("\n".join(out), None),
                          "output_format": "text", "visibility": "visible"})
            if t.status == "OK":
                spec = tracks.get(track)
                value = t.metrics.get(spec.rank_key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    board.append({"name": _leaderboard_name(track, spec.rank_key), "value": float(value),
                                  "order": "desc" if spec.higher_is_better else "asc"})
            lines.append(f"{_clean(r.id, 200)} {track}: {t.status}"
                         + ("" if passed or t.status != "OK" else " (threshold missed)"))
    # "text": Gradescope shows the outputs verbatim, never as HTML or Markdown
    return {"score": total, "output": "\n".join(lines) or "nothing was graded", "output_format": "text",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "leaderboard": board}


# ----- Markdown summary

def summary_markdown(results, misses=None, thresholds=()) -> str:
    """One row per graded submission x track; the status mark column is the harness's own, every
    other cell is escaped by :func:`harness.render.tables.markdown_table`."""
    misses = misses or {}
    body = []
    for r in results:
        for track, t in r.tracks.items():
            if t.status == "SKIPPED":
                continue
            if t.status == "OK":
                keys = [(k, f) for k, _, f in columns(track, private=False)][:4]
                metrics = ", ".join(f"{k} {fmt(t.metrics.get(k), f)}" for k, f in keys if k in t.metrics)
            else:
                metrics = ""
            note = plain_text(t.message, 200, one_line=True) if t.message else ""
            if (r.id, track) in misses:
                note = "; ".join(misses[(r.id, track)])
            status = t.status if (r.id, track) not in misses else "below threshold"
            mark = "✅" if t.status == "OK" and (r.id, track) not in misses else "❌"
            body.append([r.id, track, f"{mark} {md_cell(status, 40)}", metrics, note])
    text = markdown_table("Grading results", ["submission", "track", "status", "key metrics", "note"], body,
                          raw_columns=frozenset({2}), empty="(none)")
    if thresholds:
        text += "\nThresholds: " + ", ".join(f"`{th}`" for th in thresholds) + "\n"
    return text


# ----- after grading



# ----- pull requests
