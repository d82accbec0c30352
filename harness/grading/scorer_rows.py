"""Reference rows computed by the scorer itself (no student code): ceilings and floors per track."""

from __future__ import annotations

from pathlib import Path

from harness import __version__, data, tracks as track_registry
from harness.competition import Competition
from harness.store import Run, Store
from harness.grading.grade import versions
from harness.scoring.tracks.context import ScoringContext


def record_references(store: Store, comp: Competition, quick: bool, console=None,
                      tracks=None) -> list[Run]:
    """Compute and store each track's reference rows (``reference_rows(ctx)`` in its track module)."""
    mnist = data.load()
    runs = []
    for track in tracks if tracks is not None else track_registry.names():
        fn = getattr(track_registry.get(track).scorer_module(), "reference_rows", None)
        if fn is None:
            continue
        ctx = ScoringContext(mnist, comp, quick, comp.seed, Path(store.path).parent / "artifacts" / f"reference-{track}")
        if console:
            console.print(f"computing {track} reference rows ...")
        for ident, (name, metrics, artifacts) in fn(ctx).items():
            run = Run(submission_id=ident, name=name, path="(scorer)", sha256="", track=track,
                      profile=ctx.profile, status="OK", metrics=metrics, artifacts=artifacts, kind="reference",
                      seed=comp.seed, isolation="scorer", harness_version=__version__, versions=versions())
            runs.append(store.add(run))
    return runs


def ensure_references(store: Store, comp: Competition, quick: bool, tracks=None, console=None) -> list[Run]:
    """Record the reference rows of the tracks whose store has none for this profile yet, so every
    store shows its ceilings and floors from the first grade on (SPEC: sanity rows)."""
    profile = "quick" if quick else "full"
    missing = [t for t in (tracks if tracks is not None else track_registry.names()) if not any(r.kind == "reference" for r in store.runs(track=t, profile=profile))]
    return record_references(store, comp, quick, console=console, tracks=missing) if missing else []
