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

Adding a track: one folder plus configuration. The folder holds ``track.py`` (``register(Track(...))``
with ``scorer="scorer.py"`` and ``ingestion="ingestion.py"``, paths relative to the folder),
``scorer.py`` and ``ingestion.py``; ``competition.yaml`` lists the folder under ``tracks:`` and gives
the track its entries under ``budget``/``defaults``. The ingestion file is copied into the sandbox's
runtime package as ``harness.ingestion.plugin_<name>`` (see :func:`Track.ingestion_module`); it may
import only ``harness.ingestion`` and Chainer.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
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

    @property
    def is_plugin(self) -> bool:
        """Declared by a track folder (``tracks:`` in competition.yaml), its sides given as files."""
        return self.scorer.endswith(".py")

    def scorer_module(self) -> ModuleType:
        if self.is_plugin:
            return _module_from_file(f"harness_track_{self.name}_scorer", Path(self.scorer))
        return importlib.import_module(self.scorer)

    def ingestion_module(self) -> str:
        """The module the sandboxed ingestion process imports for this track."""
        return f"harness.ingestion.plugin_{self.name}" if self.is_plugin else self.ingestion


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


def load_folder(folder: str | Path) -> Track:
    """Register the track a folder declares in its ``track.py`` (its file paths made absolute)."""
    folder = Path(folder).resolve()
    before = set(_REGISTRY)
    if not (folder / "track.py").is_file():
        raise ValueError(f"{folder}: a track folder needs track.py (with scorer.py and ingestion.py beside it)")
    _module_from_file(f"harness_track_folder_{abs(hash(str(folder)))}", folder / "track.py")
    new = [n for n in _REGISTRY if n not in before] or [n for n, t in _REGISTRY.items()
                                                         if t.is_plugin and Path(t.scorer).parent == folder]
    if len(new) != 1:
        raise ValueError(f"{folder}/track.py: expected it to register one track, found {new or 'none'}")
    track = _REGISTRY[new[0]]
    resolved = Track(**{**track.__dict__, "scorer": str(folder / track.scorer), "ingestion": str(folder / track.ingestion)})
    for side in (resolved.scorer, resolved.ingestion):
        if not Path(side).is_file():
            raise ValueError(f"{folder}/track.py: track '{track.name}' names {side}, which does not exist")
    return register(resolved)


def _module_from_file(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def all_tracks() -> tuple[Track, ...]:
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    """The registered tracks, built-in ones first, in registration order."""
    return tuple(_REGISTRY)


from harness.tracks import builtin  # noqa: E402,F401  (registers classify, generate, anomaly)
