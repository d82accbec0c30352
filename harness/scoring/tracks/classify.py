"""Classify track, scoring side: inputs without test labels in, logits out, every metric computed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.scoring.metrics.classify import classification_metrics
from harness.scoring.outputs import count_npz_params, read_array
from harness.scoring.tracks.context import ScoringContext, save_inputs, seeded_subset
from harness.store.artifacts import write_json
from harness.scoring.metrics.classify import confusion_matrix


def train_eval_positions(ctx: ScoringContext) -> np.ndarray | None:
    """--quick: the positions, within the training subset, of the images whose logits give the train
    accuracy and loss (``quick.train_eval_subset``, fixed and seeded); None: every training image."""
    if not ctx.quick or not ctx.competition["quick"].get("train_eval_subset"):
        return None
    n, k = len(ctx.train_indices()), int(ctx.competition["quick"]["train_eval_subset"])
    if k >= n:
        return None
    return seeded_subset(n, k, int(ctx.competition["split_seed"]) + 1)


def write_inputs(ctx: ScoringContext, input_dir: Path) -> dict:
    save_inputs(input_dir, train_x=ctx.train_rows(ctx.mnist.train_x), train_y=ctx.train_rows(ctx.mnist.train_y),
                test_x=ctx.mnist.test_x)
    positions = train_eval_positions(ctx)
    if positions is not None:  # the ingestion returns logits for these training images only
        save_inputs(input_dir, train_eval_idx=positions)
    return {}


def score(ctx: ScoringContext, output_dir: Path, meta: dict) -> tuple[dict, dict]:
    idx = ctx.train_indices()
    positions = train_eval_positions(ctx)
    if positions is not None:
        idx = idx[positions]
    train_logits = read_array(output_dir, "train_logits.npy", (len(idx), 10))
    test_logits = read_array(output_dir, "test_logits.npy", (len(ctx.mnist.test_x), 10))
    public = ctx.competition.public_mask(len(ctx.mnist.test_x))
    metrics = classification_metrics(ctx.mnist.train_y[idx], train_logits, ctx.mnist.test_y, test_logits, public)
    if positions is not None:  # said in the results: train accuracy/loss come from this many images
        metrics["train_accuracy_subset"] = len(idx)
    metrics["params"] = count_npz_params(output_dir, "model.npz")
    metrics["train_seconds"] = float(meta.get("train_seconds", 0.0))
    return metrics, confusion_artifact(ctx, test_logits, public)


def confusion_artifact(ctx: ScoringContext, test_logits, public) -> dict:
    """The test confusion matrices (rows true digit, columns predicted; 10x10 ints) of the public and
    the private half, kept as ``confusion_matrix`` (JSON) for ``harness report``."""

    y = ctx.mnist.test_y
    cm = {"labels": list(range(10)), "rows": "true digit", "columns": "predicted digit",
          "public": confusion_matrix(y[public], test_logits[public]).tolist(),
          "private": confusion_matrix(y[~public], test_logits[~public]).tolist()}
    return {"confusion_matrix": write_json(ctx.artifacts_dir, "confusion_matrix.json", cm)}
