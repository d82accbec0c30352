"""Standings as tables: rich (terminal), Markdown, CSV and JSON, per track and overall.

Every cell that comes from a student (ids, names, messages, statuses) is made plain text first
(:func:`harness.text.plain_text`: no terminal escapes, no control characters), then escaped for its
format by the one writer of that format here: :func:`markdown_table` (the only Markdown table
writer: leaderboards, overall standings and the CI summary), :func:`csv_cell` (formula cells are
prefixed with ``'``), :func:`html_cell`, and rich ``Text`` (never markup) for the terminal.
Metrics go through :func:`harness.standings.visibility.visible_metrics` (public half only before
the reveal)."""

from __future__ import annotations

import csv
import html
import io
import json

from rich.table import Table
from rich.text import Text

from harness.standings.overall import Overall
from harness.standings.per_track import Standings, columns
from harness.standings.visibility import visible_metrics
from harness.text import plain_text

FORMATS = ("table", "md", "html", "csv", "json")


def fmt(value, spec: str) -> str:
    if value is None:
        return ""
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


NAME_LIMIT = 120  # characters of a name or id shown in a table cell
# Markdown cells: these are backslash-escaped (no link, image, code, emphasis or new cell), and &, <, >
# become entities (no raw HTML, and the bytes "<img" never appear)
MD_SPECIAL = {**{ch: "\\" + ch for ch in "\\`*_[]()!|~#"}, "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def cell(value, limit: int = NAME_LIMIT) -> str:
    """A student string as one line of plain text (every table format starts from this)."""
    return plain_text(value, limit, one_line=True)


def md_cell(value, limit: int | None = NAME_LIMIT) -> str:
    """Plain text made inert in Markdown: every character that could start a link (``[x](...)``),
    an image (``![](...)``), raw HTML (``<img>``), code, emphasis or a new table cell is escaped."""
    return "".join(MD_SPECIAL.get(ch, ch) for ch in plain_text(value, limit, one_line=True))


def csv_cell(value):
    """A CSV field: numbers as they are; text plain, and prefixed with ``'`` when a spreadsheet would
    read it as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, also after
    leading blanks)."""
    if value is None or isinstance(value, (bool, int, float)):
        return "" if value is None else value
    text = plain_text(value, 2000, one_line=True)
    starts = (str(value)[:1], text.lstrip()[:1])  # also after leading blanks, which some readers trim
    return "'" + text if any(c in ("=", "+", "-", "@", "\t", "\r") for c in starts if c) else text


def csv_text(header: list, rows) -> str:
    """The one CSV writer: a header and rows, every field through :func:`csv_cell`."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_cell(h) for h in header])
    for row in rows:
        w.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def html_cell(value, limit: int | None = None) -> str:
    return html.escape(plain_text(value, limit), quote=True)


def shown_metrics(st: Standings, run) -> dict:
    """A run's metrics as the standings' audience sees them: every key once revealed (or --private),
    the public half only before."""
    return visible_metrics(st.track, run.metrics, revealed=st.private)


def table_rows(st: Standings) -> tuple[list[str], list[list[str]]]:
    cols = columns(st.track, st.private)
    header = ["rank", "submission", "name"] + [c[1] for c in cols] + ["status"]
    body = []
    for row in st.rows:
        r = row.run
        m = shown_metrics(st, r)
        rank = str(row.rank) if row.rank is not None else ("ref" if row.is_reference and r.status == "OK" else
                                                           "unranked" if row.unranked else "-")
        cells = [fmt(m.get(k), f) if r.status == "OK" else "" for k, _, f in cols]
        status = cell(row.unranked, 200) if row.unranked else cell(r.status, 40)  # the reason a run is unranked
        body.append([rank, cell(r.submission_id), cell(r.name)] + cells + [status])
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
        elif row.run.status != "OK" or row.unranked:
            style = "red"
        table.add_row(*(Text(c) for c in cells), style=style)  # names are untrusted: never markup
    return table


def markdown_table(title: str, header: list[str], body: list[list[str]], raw_columns: frozenset = frozenset(),
                   empty: str | None = None) -> str:
    """THE Markdown table writer (leaderboards, overall standings, CI summary): a ``###`` heading and
    a table whose every cell goes through :func:`md_cell`. ``raw_columns``: indexes of columns the
    harness itself writes (status marks), left as they are; ``empty``: the first cell of a row shown
    when there is no row."""
    lines = [f"### {md_cell(title, None)}", "", "| " + " | ".join(md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for cells in body:
        lines.append("| " + " | ".join(c if i in raw_columns else md_cell(c, None) for i, c in enumerate(cells)) + " |")
    if not body and empty is not None:
        lines.append("| " + " | ".join([empty] + ["" for _ in header[1:]]) + " |")
    return "\n".join(lines) + "\n"


def render_text(st: Standings, fmt_name: str) -> str:
    header, body = table_rows(st)
    if fmt_name == "md":
        return markdown_table(f"{st.track} ({st.profile}, ranked by {st.rank_key})", header, body)
    if fmt_name == "csv":
        keys = [k for k, _, _ in columns(st.track, st.private)]
        return csv_text(["track", "rank", "submission", "name", "kind", "status"] + keys
                        + ["run_id", "created_at", "unranked"],
                        ([st.track, row.rank or "", row.run.submission_id, row.run.name, row.run.kind, row.run.status]
                         + [shown_metrics(st, row.run).get(k, "") for k in keys]
                         + [row.run.id, row.run.created_at, row.unranked or ""]
                         for row in st.rows))
    if fmt_name == "json":
        return json.dumps(standings_json(st), indent=2) + "\n"
    if fmt_name == "html":
        rows = "".join("<tr>" + "".join(f"<td>{html_cell(c)}</td>" for c in cells) + "</tr>" for cells in body)
        head = "".join(f"<th>{html_cell(h)}</th>" for h in header)
        return f"<h2>{html_cell(st.track)}</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    raise ValueError(f"unknown format '{fmt_name}' (known: {', '.join(FORMATS)})")


def standings_json(st: Standings) -> dict:
    keys = [k for k, _, _ in columns(st.track, st.private)]
    return {"track": st.track, "profile": st.profile, "ranked_by": st.rank_key, "rows": [
        {"rank": row.rank, "submission": cell(row.run.submission_id, None), "name": cell(row.run.name, None),
         "kind": row.run.kind, "status": cell(row.run.status, None),
         "metrics": {k: shown_metrics(st, row.run).get(k) for k in keys}, "run_id": row.run.id,
         "unranked": row.unranked}
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
                cells.append(cell(e.status, 40) or "-")
            else:
                cells.append(str(e.rank))
        body.append([str(r.rank) if r.rank is not None else "-", cell(r.submission_id), cell(r.name), value] + cells)
    return header, body


def overall_json(ov: Overall) -> dict:
    return {"method": ov.method, "missing": ov.missing, "private": ov.private, "profile": ov.profile,
            "tracks": ov.tracks, "weights": ov.weights, "lower_is_better": ov.lower_is_better,
            "description": ov.describe(),
            "rows": [{"rank": r.rank, "submission": cell(r.submission_id, None), "name": cell(r.name, None),
                      "value": r.value,
                      "tracks": {t: {"rank": e.rank, "score": e.score, "status": cell(e.status, None),
                                     "counted": e.counted}
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
    header, body = overall_table(ov)
    if fmt_name == "md":
        return markdown_table(f"overall ({ov.profile}, {ov.describe()})", header, body)
    if fmt_name == "csv":
        return csv_text(["track", "rank", "submission", "name", "kind", "status", ov.method]
                        + [f"{t}_rank" for t in ov.tracks],
                        (["overall", r.rank or "", r.submission_id, r.name, "submission", "",
                          "" if r.value is None else r.value]
                         + ["" if r.tracks[t].rank is None else r.tracks[t].rank for t in ov.tracks] for r in ov.rows))
    raise ValueError(f"unknown format '{fmt_name}'")
