#!/usr/bin/env python
"""Train the generate track's reference classifier (deterministic, seeded, CPU).

    python scripts/train_reference_classifier.py [--out PATH] [--epochs 6] [--seed 0]

Trains ``harness.scoring.reference_classifier.model.ReferenceClassifier`` on the 60,000 canonical training images
only (the test set is used once, at the end, to report accuracy), then writes the weights as a
byte-reproducible compressed npz (default ``harness/scoring/reference_classifier/reference_classifier.npz``) and
prints its SHA-256, size and test accuracy. Paste the SHA-256 into
``harness.scoring.reference_classifier.REFERENCE_SHA256`` when the shipped file is replaced.

Recipe: Adam (alpha 1e-3, cosine decay to 0 over all iterations), batch 100, seeded shuffles,
every training image shifted by a seeded random offset in [-2, 2] pixels on each axis
(zero fill), cross-entropy loss; afterwards the batch-normalisation statistics are recomputed
as exact averages over the unshifted training set (``finetune=True``).

Determinism: all randomness comes from ``--seed`` (NumPy's global RNG for Chainer's
initialisers, one RandomState for shuffles and shifts), so a rerun on the same NumPy/OpenBLAS
stack and CPU reproduces the file bit for bit; another BLAS or CPU may round differently and give
a different SHA-256 with the same accuracy to within a few hundredths of a percent.

On CPU the glibc allocator settings below make Chainer about 30 % faster (large im2col buffers
are reused instead of being mapped and unmapped every call); the script re-executes itself with
them when they are not set.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "2147483648"}
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in _MALLOC_ENV.items()):
    os.environ.update(_MALLOC_ENV)
    os.execv(sys.executable, [sys.executable, *sys.argv])

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness import data  # noqa: E402
from harness.chainer_env import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402
from harness.scoring import reference_classifier as reference  # noqa: E402
from harness.scoring.reference_classifier.model import ReferenceClassifier  # noqa: E402

SHIFT = 2


def shift_batch(x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Translate each (1,28,28) image by a random integer offset in [-SHIFT, SHIFT]^2, zero fill."""
    n = len(x)
    padded = np.pad(x, ((0, 0), (0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    dy = rng.randint(0, 2 * SHIFT + 1, size=n)
    dx = rng.randint(0, 2 * SHIFT + 1, size=n)
    rows = dy[:, None] + np.arange(28)[None, :]
    cols = dx[:, None] + np.arange(28)[None, :]
    out = padded[np.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(out[:, None], dtype=np.float32)


def accuracy(model, x, y, batch=100) -> float:
    correct = 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).array.argmax(axis=1) == y[i:i + batch]).sum())
    return correct / len(x)


def recompute_bn_statistics(model, x, batch=500) -> None:
    """Replace BN running averages by exact population averages over ``x`` (no augmentation)."""
    for link in model.links():
        if isinstance(link, chainer.links.BatchNormalization):
            link.N = 0
    with chainer.using_config("train", True), chainer.no_backprop_mode():
        for i in range(0, len(x), batch):
            model(x[i:i + batch], finetune=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=reference.WEIGHTS_PATH)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--alpha", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests: first N images
    args = p.parse_args(argv)

    m = data.load_or_prepare()
    x_train, y_train = data.to_images(m.train_x), m.train_y.astype(np.int32)
    x_test, y_test = data.to_images(m.test_x), m.test_y.astype(np.int32)
    if args.limit:
        x_train, y_train, x_test, y_test = x_train[:args.limit], y_train[:args.limit], x_test[:args.limit], y_test[:args.limit]

    np.random.seed(args.seed)  # Chainer's initialisers draw from NumPy's global RNG
    model = ReferenceClassifier()
    optimizer = chainer.optimizers.Adam(alpha=args.alpha)
    optimizer.setup(model)
    rng = np.random.RandomState(args.seed + 1)

    n = len(x_train)
    iters_per_epoch = n // args.batch_size
    total = args.epochs * iters_per_epoch
    t0 = time.time()
    it = 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for b in range(iters_per_epoch):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            xb, yb = shift_batch(x_train[idx], rng), y_train[idx]
            optimizer.alpha = args.alpha * 0.5 * (1.0 + math.cos(math.pi * it / total))
            logits = model(xb)
            loss = F.softmax_cross_entropy(logits, yb)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            it += 1
            loss_sum += float(loss.array) * len(idx)
            correct += int((logits.array.argmax(axis=1) == yb).sum())
        seen = iters_per_epoch * args.batch_size
        print(f"epoch {epoch}/{args.epochs}: train loss {loss_sum / seen:.4f}, "
              f"train acc (shifted) {correct / seen:.4f}, {time.time() - t0:.0f} s", flush=True)

    recompute_bn_statistics(model, x_train)
    train_seconds = time.time() - t0
    train_acc = accuracy(model, x_train, y_train)
    test_acc = accuracy(model, x_test, y_test)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    sha = reference.save_params_npz(model, args.out)
    # Read it back the way the harness does and check it predicts the same.
    reloaded = reference.load_reference(args.out, sha256=sha)
    assert accuracy(reloaded, x_test, y_test) == test_acc
    size = args.out.stat().st_size
    print(f"train accuracy {train_acc:.4%} (unshifted, eval mode)")
    print(f"test accuracy  {test_acc:.4%}")
    print(f"training time  {train_seconds:.0f} s")
    print(f"wrote {args.out} ({size:,} bytes)")
    print(f"SHA-256 {sha}")
    if sha == reference.REFERENCE_SHA256:
        print("matches harness.scoring.reference_classifier.REFERENCE_SHA256 (the shipped file)")
    else:
        print("differs from harness.scoring.reference_classifier.REFERENCE_SHA256: update the constant if this file is to ship")
    if test_acc < 0.993:
        print("test accuracy is below the 99.3 % the spec requires", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
