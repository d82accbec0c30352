"""Generate track, scoring side: seeded samples in, every generative metric computed here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness import data
from harness.scoring.outputs import count_npz_params, read_array
from harness.scoring.tracks.context import ScoringContext
from harness.scoring.tracks.context import save_inputs
from harness.images import save_grid
from harness.scoring.tracks.generate_suite import generative_metrics, prepare_real_statistics


def prepare(ctx: ScoringContext) -> None:
    """Load the real-data statistics while the sandbox samples (the grader runs it on a side thread)."""
    prepare_real_statistics()


def n_samples(ctx: ScoringContext) -> int:
    return int(ctx.competition["quick"]["generate_samples"] if ctx.quick else ctx.competition["generate"]["samples"])


def write_inputs(ctx: ScoringContext, input_dir: Path) -> dict:
    save_inputs(input_dir, train_x=ctx.train_rows(ctx.mnist.train_x))
    return {"samples": n_samples(ctx)}


def score_samples(ctx: ScoringContext, samples: np.ndarray, name: str) -> tuple[dict, dict]:
    metrics = generative_metrics(samples)
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    grid = ctx.artifacts_dir / f"{name}.png"
    save_grid(samples[:100], grid)
    return metrics, {"samples_grid": str(grid)}


def score(ctx: ScoringContext, output_dir: Path, meta: dict) -> tuple[dict, dict]:
    samples = read_array(output_dir, "samples.npy", (n_samples(ctx), 1, 28, 28), np.float32, 0.0, 1.0)
    metrics, artifacts = score_samples(ctx, samples, "samples")
    metrics["params"] = count_npz_params(output_dir, "generator.npz")
    metrics["train_seconds"] = float(meta.get("train_seconds", 0.0))
    return metrics, artifacts


def run_notes(ctx: ScoringContext, metrics: dict) -> list[str]:
    """The run's message when its samples copy training images: ``copy_rate`` above
    ``generate.max_copy_rate`` makes the run unranked (status stays OK). The same text as the
    leaderboards' :func:`harness.standings.per_track.unranked_reason` (standings may not import
    scoring; tests/test_copy_detection.py checks that both say the same)."""
    limit = (ctx.competition.raw.get("generate") or {}).get("max_copy_rate")
    value = metrics.get("copy_rate")
    if limit is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return []
    if math.isfinite(value) and value <= float(limit):
        return []
    return [f"unranked: copy_rate {value:.2f} > max_copy_rate {float(limit):g}: samples copy training images"]


def reference_rows(ctx: ScoringContext) -> dict:
    """Real test images (the ceiling) and uniform noise (the floor), scored like any submission."""
    n = n_samples(ctx)
    rng = np.random.default_rng(ctx.seed)
    real = data.to_images(ctx.mnist.test_x[rng.permutation(len(ctx.mnist.test_x))[:n]])
    noise = rng.uniform(0, 1, size=(n, 1, 28, 28)).astype(np.float32)
    rows = {}
    for ident, name, images in (("reference-real", "Reference: real test images (ceiling)", real),
                                ("reference-noise", "Reference: uniform noise (floor)", noise)):
        metrics, artifacts = score_samples(ctx, images, ident)
        rows[ident] = (name, metrics, artifacts)
    return rows
