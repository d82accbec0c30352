"""What a track is: one :class:`Track` object per track, in one registry.

A track owns its manifest keys (the roles naming student classes), its leaderboard (rank key,
direction, columns) and the names of its two sides: the **scorer** module (runs in the grader:
``write_inputs(ctx, input_dir) -> dict`` and ``score(ctx, output_dir, meta) -> (metrics, artifacts)``,
or, for a track of several ingestion jobs (anomaly: one per protocol and one-class digit, each given
only its own inputs), ``jobs(ctx) -> [IngestionJob]`` and ``score(ctx, outputs_by_job, meta_by_job)``;
plus optional ``reference_rows(ctx)``) and the **ingestion** module (runs in the sandbox with the
student's code: ``run(job)`` and ``check(job) -> problems``). The two sides are named, not imported,
here: the standings and renderings read a track's columns without loading any scoring code, and the
sandbox never receives the scorer.

Adding a track: a module declaring its :class:`Track` (``register(...)``), its scorer and ingestion
modules, and its section of ``competition.yaml`` (defaults, budget).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class Track:
    name: str
    roles: tuple[str, ...]  # manifest keys that name student classes (``model``, ``generator``, ...)
    rank_key: str  # the public ranking metric
    higher_is_better: bool
    columns: tuple[tuple[str, str, str], ...]  # leaderboard columns: (metric key, header, format)
    scorer: str  # dotted module path of the scoring side
    ingestion: str  # dotted module path of the student side
    private_rank_key: str | None = None  # ranking after the reveal (default: rank_key)
    public_keys: frozenset[str] = field(default_factory=frozenset)  # keys shown before the reveal (default: all)

    def ranked_by(self, private: bool) -> str:
        return (self.private_rank_key or self.rank_key) if private else self.rank_key

    def scorer_module(self) -> ModuleType:
        return importlib.import_module(self.scorer)


_REGISTRY: dict[str, Track] = {}


def register(track: Track) -> Track:
    """Add (or replace) a track; returns it, so a module can write ``TRACK = register(Track(...))``."""
    _REGISTRY[track.name] = track
    return track


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Track:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown track '{name}' (known: {', '.join(_REGISTRY)})") from None


def names() -> tuple[str, ...]:
    """The registered tracks, built-in ones first, in registration order."""
    return tuple(_REGISTRY)


from harness.tracks import builtin  # noqa: E402,F401  (registers classify, generate, anomaly)
