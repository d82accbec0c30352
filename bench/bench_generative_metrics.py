#!/usr/bin/env python
"""Time the generate track's metric suite on 10,000 samples.

    python bench/bench_generative_metrics.py [--n 10000] [--repeat 1]

Prints, in one process: the one-time preparation of the cached real-data statistics (cold
only the first time on a machine), a plain forward pass of the reference classifier over
10,000 images (the reference run), then ``generative_metrics`` on four kinds of samples: the
test set itself (real against real), training digits shifted by one pixel (new, realistic
digits: no copies), training images (a memoriser: every sample is a copy) and uniform noise,
each with seconds and the ratio to the reference run.
The spec's budget: at most 15 s for the whole suite on 10,000 samples on a 2-core CPU.
Wall seconds depend on what else runs on the machine; CPU seconds (all threads of this
process) and the ratios to the forward pass much less so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness import data  # noqa: E402
from harness.scoring import reference_classifier as reference  # noqa: E402
from harness.scoring.metrics import copy_detection, generative  # noqa: E402
from harness.scoring.tracks import generate_suite  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--breakdown", action="store_true", help="also time each metric separately")
    args = p.parse_args(argv)

    m = data.load_or_prepare()
    t = time.perf_counter()
    reference.load_reference()
    generate_suite.prepare_real_statistics()
    print(f"prepare (load reference, cached real statistics, pixel index): {time.perf_counter() - t:.2f} s")

    n = args.n
    rng = np.random.default_rng(0)
    test_images = data.to_images(m.test_x[rng.permutation(10000)[:min(n, 10000)]])
    train_images = data.to_images(m.train_x[rng.permutation(60000)[:n]])
    cases = {
        "the test set itself": test_images,
        "training digits shifted 1 px (new digits)": np.roll(train_images, 1, axis=3),
        "training copies (a memoriser)": train_images,
        "uniform noise": rng.uniform(0, 1, (n, 1, 28, 28)).astype(np.float32),
    }

    forward = []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        reference.predict(test_images)
        forward.append((time.perf_counter() - t, time.process_time() - c))
    ref_s, ref_cpu = min(forward)
    print(f"reference run: forward pass of {len(test_images)} images: {ref_s:.2f} s (CPU {ref_cpu:.2f} s)")

    if args.breakdown:
        ctx = generate_suite._real_context()
        for name, x in cases.items():
            t = time.perf_counter()
            _, feats = reference.predict(x)
            stages = {"forward": time.perf_counter() - t}
            t = time.perf_counter()
            mu, sigma = generative.gaussian_statistics(feats)
            generative.frechet_distance(mu, sigma, ctx["mu"], ctx["sigma"])
            stages["fcd"] = time.perf_counter() - t
            t = time.perf_counter()
            generative.kid(feats, ctx["features"], b_within=generative._real_kid_within(min(1000, len(x))))
            stages["kid"] = time.perf_counter() - t
            t = time.perf_counter()
            generative.precision_recall_density_coverage(ctx["features"], feats, 5, real_radii_sq=ctx["radii_sq"])
            stages["prdc"] = time.perf_counter() - t
            t = time.perf_counter()
            copy_detection.copy_rate(x, None, None, threshold=ctx["copy_threshold"], index=ctx["index"])
            stages["copy_rate"] = time.perf_counter() - t
            print(f"  breakdown, {name}: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))

    for name, x in cases.items():
        times = []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            metrics = generate_suite.generative_metrics(x)
            times.append((time.perf_counter() - t, time.process_time() - c))
        s, cpu = min(times)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"{name} (N={len(x)}): {s:.2f} s = {s / ref_s:.2f} x forward (CPU {cpu:.2f} s = "
              f"{cpu / ref_cpu:.2f} x)   [{shown}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
