"""Parity track, scoring side: training images with parity labels in, test logits back, accuracy here."""

import numpy as np

from harness.scoring.outputs import read_array
from harness.scoring.tracks.context import save_inputs


def write_inputs(ctx, input_dir):
    idx = ctx.train_indices()
    save_inputs(input_dir, train_x=ctx.mnist.train_x[idx], train_y=(ctx.mnist.train_y[idx] % 2).astype(np.uint8),
                test_x=ctx.mnist.test_x)
    return {}


def score(ctx, output_dir, meta):
    logits = read_array(output_dir, "test_logits.npy", (len(ctx.mnist.test_x), 2))
    accuracy = float((logits.argmax(axis=1) == ctx.mnist.test_y % 2).mean())
    return {"parity_accuracy": accuracy, "train_seconds": float(meta.get("train_seconds", 0.0))}, {}
