"""Standings as tables: rich (terminal), Markdown, CSV and JSON, per track and overall.
Every cell that comes from a student (names, messages) is plain text here."""

from __future__ import annotations

import csv
import html
import io
import json

from rich.table import Table
from rich.text import Text

from harness.standings.overall import Overall
from harness.standings.per_track import Standings, columns



FORMATS = ("table", "md", "html", "csv", "json")


def fmt(value, spec: str) -> str:
    if value is None:
        return ""
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def table_rows(st: Standings) -> tuple[list[str], list[list[str]]]:
    cols = columns(st.track, st.private)
    header = ["rank", "submission", "name"] + [c[1] for c in cols] + ["status"]
    body = []
    for row in st.rows:
        r = row.run
        rank = str(row.rank) if row.rank is not None else ("ref" if row.is_reference and r.status == "OK" else "-")
        cells = [fmt(r.metrics.get(k), f) if r.status == "OK" else "" for k, _, f in cols]
        body.append([rank, r.submission_id, r.name] + cells + [r.status])
    return header, body


def render_rich(st: Standings, highlight: set[int] = frozenset(), title: str | None = None):

    header, body = table_rows(st)
    half = "private" if st.private else "public"
    caption = f"ranked by {st.rank_key} ({half}); 'ref' rows are baselines and references" if st.track == "classify" \
        else f"ranked by {st.rank_key}; 'ref' rows are baselines and references"
    table = Table(title=title or f"{st.track} leaderboard ({st.profile})", caption=caption)
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if i >= 3 and h != "status" else "left",
                         no_wrap=i != 2, min_width=12 if i == 2 else None)
    for row, cells in zip(st.rows, body):
        style = None
        if row.run.id in highlight:
            style = "bold black on yellow"
        elif row.is_reference:
            style = "dim italic"
        elif row.run.status != "OK":
            style = "red"
        table.add_row(*(Text(c) for c in cells), style=style)  # names are untrusted: never markup
    return table


def markdown_table(title: str, header: list[str], body: list[list[str]]) -> str:
    """A Markdown table under a heading; cells are escaped (student names are untrusted)."""
    def esc(cell: str) -> str:
        return html.escape(cell, quote=False).replace("|", "\\|")

    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def render_text(st: Standings, fmt_name: str) -> str:
    header, body = table_rows(st)
    if fmt_name == "md":
        return markdown_table(f"{st.track} ({st.profile}, ranked by {st.rank_key})", header, body)
    if fmt_name == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        keys = [k for k, _, _ in columns(st.track, st.private)]
        w.writerow(["track", "rank", "submission", "name", "kind", "status"] + keys + ["run_id", "created_at"])
        for row in st.rows:
            r = row.run
            w.writerow([st.track, row.rank or "", r.submission_id, r.name, r.kind, r.status]
                       + [r.metrics.get(k, "") for k in keys] + [r.id, r.created_at])
        return buf.getvalue()
    if fmt_name == "json":
        return json.dumps(standings_json(st), indent=2) + "\n"
    if fmt_name == "html":
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        return f"<h2>{html.escape(st.track)}</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    raise ValueError(f"unknown format '{fmt_name}' (known: {', '.join(FORMATS)})")


def standings_json(st: Standings) -> dict:
    keys = [k for k, _, _ in columns(st.track, st.private)]
    return {"track": st.track, "profile": st.profile, "ranked_by": st.rank_key, "rows": [
        {"rank": row.rank, "submission": row.run.submission_id, "name": row.run.name, "kind": row.run.kind,
         "status": row.run.status, "metrics": {k: row.run.metrics.get(k) for k in keys}, "run_id": row.run.id}
        for row in st.rows]}


def overall_table(ov: Overall) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "submission", "name", ov.value_label] + [f"{t} rank" for t in ov.tracks]
    body = []
    for r in ov.rows:
        value = "" if r.value is None else (f"{r.value:.2f}" if ov.method == "mean_rank" else f"{r.value:.3f}")
        cells = []
        for t in ov.tracks:
            e = r.tracks.get(t)
            if e is None or (e.rank is None and not e.status):
                cells.append("-")
            elif e.rank is None:
                cells.append(e.status or "-")
            else:
                cells.append(str(e.rank))
        body.append([str(r.rank) if r.rank is not None else "-", r.submission_id, r.name, value] + cells)
    return header, body


def overall_json(ov: Overall) -> dict:
    return {"method": ov.method, "missing": ov.missing, "private": ov.private, "profile": ov.profile,
            "tracks": ov.tracks, "weights": ov.weights, "lower_is_better": ov.lower_is_better,
            "description": ov.describe(),
            "rows": [{"rank": r.rank, "submission": r.submission_id, "name": r.name, "value": r.value,
                      "tracks": {t: {"rank": e.rank, "score": e.score, "status": e.status, "counted": e.counted}
                                 for t, e in r.tracks.items()}} for r in ov.rows]}


def render_overall_rich(ov: Overall):

    header, body = overall_table(ov)
    table = Table(title=f"overall standings ({ov.profile})", caption=ov.describe())
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i in (1, 2) else "right", no_wrap=i != 2)
    for cells in body:
        table.add_row(*(Text(c) for c in cells))  # names are untrusted: never markup
    return table


def render_overall_text(ov: Overall, fmt_name: str) -> str:
    import csv
    import io

    header, body = overall_table(ov)
    if fmt_name == "md":
        return markdown_table(f"overall ({ov.profile}, {ov.describe()})", header, body)
    if fmt_name == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["track", "rank", "submission", "name", "kind", "status", ov.method]
                   + [f"{t}_rank" for t in ov.tracks])
        for r in ov.rows:
            w.writerow(["overall", r.rank or "", r.submission_id, r.name, "submission", "",
                        "" if r.value is None else r.value]
                       + ["" if r.tracks[t].rank is None else r.tracks[t].rank for t in ov.tracks])
        return buf.getvalue()
    raise ValueError(f"unknown format '{fmt_name}'")
