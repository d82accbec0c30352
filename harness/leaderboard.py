"""Standings from the store, and their renderings: rich table, Markdown, CSV, JSON, HTML."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field

from harness.store import Run, Store
from harness.tracks import track_module

FORMATS = ("table", "md", "html", "csv", "json")


@dataclass
class Row:
    rank: int | None  # None for reference rows and failed runs
    run: Run
    score: float | None

    @property
    def is_reference(self) -> bool:
        return self.run.kind != "submission"


@dataclass
class Standings:
    track: str
    profile: str
    private: bool
    rank_key: str
    rows: list[Row] = field(default_factory=list)


def rank_key(track: str, private: bool) -> str:
    module = track_module(track)
    return getattr(module, "PRIVATE_RANK_KEY", module.RANK_KEY) if private else module.RANK_KEY


def _score(run: Run, key: str) -> float | None:
    value = run.metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def standings(store: Store, track: str, profile: str = "full", private: bool | None = None,
              selection: str = "latest") -> Standings:
    """One row per submission (and per reference row): its latest run, or its best OK run.

    Ranked by the track's key (the public half until revealed; the private half after, or when
    asked). Equal scores share a rank (1, 2, 2, 4). Reference rows are placed by score, unranked.
    """
    if private is None:
        private = store.revealed
    module = track_module(track)
    key = rank_key(track, private)
    sign = 1 if module.HIGHER_IS_BETTER else -1
    chosen: dict[tuple[str, str], Run] = {}
    for run in store.runs(track=track, profile=profile):
        ident = (run.kind, run.submission_id)
        prev = chosen.get(ident)
        if prev is None or selection == "latest":
            chosen[ident] = run
        elif selection == "best":  # by the public score, even after the reveal (as Kaggle's auto-selection)
            s_new, s_old = _score(run, module.RANK_KEY), _score(prev, module.RANK_KEY)
            if s_new is not None and (s_old is None or sign * s_new > sign * s_old):
                chosen[ident] = run
    scored = [(r, _score(r, key)) for r in chosen.values()]
    ok = sorted([(r, s) for r, s in scored if r.status == "OK" and s is not None],
                key=lambda rs: (-sign * rs[1], rs[0].submission_id))
    rows, rank, prev_score, seen = [], 0, None, 0
    for run, s in ok:
        if run.kind == "submission":
            seen += 1
            if s != prev_score:
                rank = seen
            prev_score = s
            rows.append(Row(rank, run, s))
        else:
            rows.append(Row(None, run, s))
    failed = sorted([r for r, s in scored if not (r.status == "OK" and s is not None)], key=lambda r: r.submission_id)
    rows += [Row(None, r, None) for r in failed]
    return Standings(track, profile, private, key, rows)


def columns(track: str, private: bool) -> list[tuple[str, str, str]]:
    module = track_module(track)
    cols = list(module.COLUMNS)
    if track == "classify":  # the headline accuracy column is the half the standings rank by
        head = ("test_accuracy_private", "private acc", "{:.4f}") if private else ("test_accuracy_public", "public acc", "{:.4f}")
        cols = [head] + [c for c in cols if c[0] != "test_accuracy" or private]
    return cols


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
    from rich.table import Table
    from rich.text import Text

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
