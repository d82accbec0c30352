"""Overall standings across tracks, configured by ``overall`` in competition.yaml.

Each track's standings come from :func:`harness.standings.per_track.standings` (one run per submission, chosen
by the competition's ``selection`` rule, ranked on the public half until ``harness reveal`` and on the
private half after). Only student submissions (``kind == "submission"``) take part; baselines and
references stay reference rows of their track.

Methods (``overall.method``):

``mean_rank``
    The mean of a submission's ranks over the tracks of the competition that have at least one ranked
    submission (the *contested* tracks). A contested track the submission did not enter, or whose
    chosen run failed, counts as ``missing`` says: ``last`` (default) = one place below the last
    ranked submission of that track (``n_ranked + 1``), so entering a track never hurts and skipping
    one costs; ``ignore`` = the mean runs over the tracks entered and ranked only (a one-track
    specialist can then lead). Lower is better.
``weighted``
    ``sum_t w_t * s_t / sum_t w_t`` over the contested tracks, ``w_t`` from ``overall.weights``, with
    ``s_t`` the track score normalised to [0, 1] among the ranked submissions of that track: the best
    scores 1, the worst 0 (all equal: 1), linear in between, direction-aware (``fcd``: lower is
    better). A missing or failed track scores 0 under ``missing: last``, and drops out of both sums
    under ``missing: ignore``. Higher is better.

Ties share a rank (1, 2, 2, 4); the display order breaks them by the number of tracks ranked (more
first) and then by submission id. A submission with no ranked track is listed unranked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.competition import Competition, ConfigError
from harness.standings.per_track import Standings, standings
from harness.store import Store
from harness import tracks
from harness.tracks import names as track_names

METHODS = ("mean_rank", "weighted")
MISSING = ("last", "ignore")
SELECTIONS = ("latest", "best")


@dataclass
class TrackEntry:
    rank: int | None  # None: not entered or failed
    score: float | None  # the track's ranking metric
    status: str  # the chosen run's status, or "" when not entered
    counted: float | None  # what entered the overall formula: the rank used, or the normalised score


@dataclass
class OverallRow:
    rank: int | None
    submission_id: str
    name: str
    value: float | None  # mean rank (lower is better) or weighted score (higher is better)
    tracks: dict[str, TrackEntry] = field(default_factory=dict)

    @property
    def n_ranked(self) -> int:
        return sum(1 for e in self.tracks.values() if e.rank is not None)


@dataclass
class Overall:
    method: str
    missing: str
    private: bool
    profile: str
    tracks: list[str]  # the contested tracks
    weights: dict[str, float]
    rows: list[OverallRow] = field(default_factory=list)

    @property
    def lower_is_better(self) -> bool:
        return self.method == "mean_rank"

    @property
    def value_label(self) -> str:
        return "mean rank" if self.method == "mean_rank" else "weighted score"

    def describe(self) -> str:
        half = "private" if self.private else "public"
        if self.method == "mean_rank":
            miss = "a missing or failed track counts as one below the last ranked" if self.missing == "last" \
                else "mean over the tracks entered"
            return f"mean of the per-track ranks ({half} scores); {miss}"
        w = ", ".join(f"{t} {self.weights.get(t, 0):g}" for t in self.tracks)
        miss = "a missing or failed track scores 0" if self.missing == "last" else "missing tracks are left out"
        return f"weighted mean of per-track scores normalised to [0, 1] ({w}; {half} scores); {miss}"


def overall_config(comp: Competition) -> tuple[str, str, dict[str, float]]:
    """(method, missing, weights) from ``overall`` in competition.yaml, validated."""
    cfg = comp.raw.get("overall") or {}
    method = str(cfg.get("method", "mean_rank"))
    missing = str(cfg.get("missing", "last"))
    if method not in METHODS:
        raise ConfigError(f"overall.method: '{method}' is not one of {', '.join(METHODS)}")
    if missing not in MISSING:
        raise ConfigError(f"overall.missing: '{missing}' is not one of {', '.join(MISSING)}")
    weights = {}
    for track, w in (cfg.get("weights") or {}).items():
        if track not in tracks.names():
            raise ConfigError(f"overall.weights: unknown track '{track}' (known: {', '.join(tracks.names())})")
        try:
            weights[track] = float(w)
        except (TypeError, ValueError):
            raise ConfigError(f"overall.weights.{track}: expected a number, found {w!r}") from None
        if not math.isfinite(weights[track]) or weights[track] < 0:
            raise ConfigError(f"overall.weights.{track}: expected a number >= 0, found {w!r}")
    return method, missing, {t: weights.get(t, 1.0) for t in tracks.names()}


def selection_rule(comp: Competition) -> str:
    sel = str(comp.raw.get("selection", "latest"))
    if sel not in SELECTIONS:
        raise ConfigError(f"selection: '{sel}' is not one of {', '.join(SELECTIONS)}")
    return sel


def track_standings(store: Store, comp: Competition, profile: str = "full", private: bool | None = None,
                    tracks=None) -> list[Standings]:
    sel = selection_rule(comp)
    return [standings(store, t, profile, private, sel) for t in (tracks if tracks is not None else track_names())]


def compute_overall(per_track: list[Standings], comp: Competition) -> Overall:
    """The overall standings from the per-track standings (see the module docstring)."""
    method, missing, weights = overall_config(comp)
    private = any(st.private for st in per_track)
    profile = per_track[0].profile if per_track else "full"
    names: dict[str, tuple[str, str]] = {}  # submission id -> (created_at, name) of its newest run
    seen: dict[str, dict] = {}  # track -> {submission id -> TrackEntry}
    n_ranked: dict[str, int] = {}
    for st in per_track:
        if method == "weighted" and weights.get(st.track, 1.0) == 0:
            continue
        rows = [r for r in st.rows if not r.is_reference]
        ranked = [r for r in rows if r.rank is not None]
        if not ranked:
            continue
        n_ranked[st.track] = len(ranked)
        higher = tracks.get(st.track).higher_is_better
        lo, hi = min(r.score for r in ranked), max(r.score for r in ranked)
        seen[st.track] = {}
        for row in rows:
            sid = row.run.submission_id
            if sid not in names or row.run.created_at >= names[sid][0]:
                names[sid] = (row.run.created_at, row.run.name)
            norm = None
            if row.rank is not None:
                if hi == lo:
                    norm = 1.0
                else:
                    norm = (row.score - lo) / (hi - lo) if higher else (hi - row.score) / (hi - lo)
            seen[st.track][row.run.submission_id] = TrackEntry(row.rank, row.score, row.unranked or row.run.status, norm)
    contested = [st.track for st in per_track if st.track in seen]
    rows = []
    for sid in names:
        tr = {}
        for t in contested:
            e = seen[t].get(sid) or TrackEntry(None, None, "", None)
            if method == "mean_rank":
                e.counted = float(e.rank) if e.rank is not None else (
                    float(n_ranked[t] + 1) if missing == "last" else None)
            elif e.rank is None:
                e.counted = 0.0 if missing == "last" else None
            tr[t] = e
        value = None
        if any(e.rank is not None for e in tr.values()):
            if method == "mean_rank":
                vals = [e.counted for e in tr.values() if e.counted is not None]
                value = sum(vals) / len(vals)
            else:
                pairs = [(weights.get(t, 1.0), e.counted) for t, e in tr.items() if e.counted is not None]
                total = sum(w for w, _ in pairs)
                value = sum(w * v for w, v in pairs) / total if total > 0 else 0.0
            value = round(value, 12)  # equal means compare equal despite float summation order
        rows.append(OverallRow(None, sid, names[sid][1], value, tr))
    sign = 1 if method == "mean_rank" else -1
    ranked_rows = sorted([r for r in rows if r.value is not None],
                         key=lambda r: (sign * r.value, -r.n_ranked, r.submission_id))
    rank, prev = 0, None
    for i, r in enumerate(ranked_rows, 1):
        if r.value != prev:
            rank = i
        prev = r.value
        r.rank = rank
    unranked = sorted([r for r in rows if r.value is None], key=lambda r: r.submission_id)
    return Overall(method, missing, private, profile, contested, {t: weights.get(t, 1.0) for t in contested},
                   ranked_rows + unranked)


def overall_standings(store: Store, comp: Competition, profile: str = "full",
                      private: bool | None = None) -> Overall:
    return compute_overall(track_standings(store, comp, profile, private), comp)


# ----- renderings







