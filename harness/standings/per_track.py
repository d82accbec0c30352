"""Standings from the store, and their renderings: rich table, Markdown, CSV, JSON, HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.store import Run, Store
from harness.standings.visibility import shown_key
from harness import competition as competition_mod
from harness import tracks



@dataclass
class Row:
    rank: int | None  # None for reference rows, failed runs and unranked runs
    run: Run
    score: float | None
    unranked: str | None = None  # why an OK run is not ranked ("unranked: copy_rate 0.97 > ...")

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
    return tracks.get(track).ranked_by(private)


def _score(run: Run, key: str) -> float | None:
    value = run.metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def unranked_reason(track: str, metrics: dict, comp=None) -> str | None:
    """Why an OK run must not be ranked, or None. The generate track: ``copy_rate`` above
    ``generate.max_copy_rate`` of ``competition.yaml`` (a memoriser never tops the leaderboard)."""
    if track != "generate":
        return None
    comp = comp if comp is not None else competition_mod.load()
    limit = (comp.raw.get("generate") or {}).get("max_copy_rate")
    value = metrics.get("copy_rate")
    if limit is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if not math.isfinite(value) or value > float(limit):
        return (f"unranked: copy_rate {value:.2f} > max_copy_rate {float(limit):g}: "
                "samples copy training images")
    return None


def standings(store: Store, track: str, profile: str = "full", private: bool | None = None,
              selection: str = "latest", comp=None) -> Standings:
    """One row per submission (and per reference row): its latest run, or its best OK run.

    Ranked by the track's key (the public half until revealed; the private half after, or when
    asked). Equal scores share a rank (1, 2, 2, 4). Reference rows are placed by score, unranked.
    An OK run that breaks a rule of the competition (:func:`unranked_reason`, e.g. a generator
    whose samples copy training images) is listed after the ranked rows, unranked, with the reason.
    ``comp``: the competition (default: ``competition.load()``, i.e. ``$HARNESS_CONFIG``,
    ``./competition.yaml`` or the packaged one).
    """
    comp = comp if comp is not None else (competition_mod.load() if track == "generate" else None)
    if private is None:
        private = store.revealed
    spec = tracks.get(track)
    key = spec.ranked_by(private)
    sign = 1 if spec.higher_is_better else -1
    chosen: dict[tuple[str, str], Run] = {}
    for run in store.runs(track=track, profile=profile):
        ident = (run.kind, run.submission_id)
        prev = chosen.get(ident)
        if prev is None or selection == "latest":
            chosen[ident] = run
        elif selection == "best":  # by the public score, even after the reveal (as Kaggle's auto-selection)
            s_new, s_old = _score(run, spec.rank_key), _score(prev, spec.rank_key)
            if s_new is not None and (s_old is None or sign * s_new > sign * s_old):
                chosen[ident] = run
    scored = [(r, _score(r, key)) for r in chosen.values()]
    ok = sorted([(r, s) for r, s in scored if r.status == "OK" and s is not None],
                key=lambda rs: (-sign * rs[1], rs[0].submission_id))
    flagged = {r.id: unranked_reason(track, r.metrics, comp) for r, _ in ok}
    rows, rank, prev_score, seen = [], 0, None, 0
    for run, s in ok:
        if flagged[run.id] and run.kind == "submission":
            continue
        if run.kind == "submission":
            seen += 1
            if s != prev_score:
                rank = seen
            prev_score = s
            rows.append(Row(rank, run, s))
        else:
            rows.append(Row(None, run, s))
    rows += [Row(None, r, s, flagged[r.id]) for r, s in ok if flagged[r.id] and r.kind == "submission"]
    failed = sorted([r for r, s in scored if not (r.status == "OK" and s is not None)], key=lambda r: r.submission_id)
    rows += [Row(None, r, None) for r in failed]
    return Standings(track, profile, private, key, rows)


def columns(track: str, private: bool) -> list[tuple[str, str, str]]:
    cols = list(tracks.get(track).columns)
    if track == "classify":  # the headline accuracy column is the half the standings rank by
        head = ("test_accuracy_private", "private acc", "{:.4f}") if private else ("test_accuracy_public", "public acc", "{:.4f}")
        cols = [head] + [c for c in cols if c[0] != "test_accuracy" or private]
    # before the reveal a column shows its public-half twin (accuracy_gap -> accuracy_gap_public), never a
    # whole-test or private figure (harness.standings.visibility)
    shown = [(shown_key(track, k, private), h, f) for k, h, f in cols]
    return [c for c in shown if c[0] is not None]












