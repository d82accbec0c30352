#!/usr/bin/env python
"""Time the generate track's metric suite on 10,000 samples.

    python bench/bench_generative_metrics.py [--n 10000] [--repeat 1]

Prints, in one process: the one-time preparation of the cached real-data statistics (cold
only the first time on a machine), a plain forward pass of the reference classifier over
10,000 images (the reference run), then ``generative_metrics`` on four kinds of samples: the
test set itself (real against real), training images shifted by one pixel (a memoriser
hiding its copies), training images (a memoriser: every sample is a copy) and uniform noise,
each with seconds and the ratio to the reference run.
The budget (issue 13): at most 3 s for the whole suite on 10,000 samples on an idle 2-core CPU.\nEach case also prints its ratio to the newest saved run (``--save`` writes bench/results/generative-<time>.txt).
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
from harness.sandbox.mounts import no_hugepage_advice  # noqa: E402
from harness.scoring.tracks import generate_suite  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--breakdown", action="store_true", help="also time each stage separately, with its share")
    p.add_argument("--save", action="store_true", help="save the results as bench/results/generative-<time>.txt")
    p.add_argument("--grade", type=int, default=0, metavar="K",
                   help="also time K full `harness grade baselines/memoriser-gan` (10k samples, every metric, "
                        "sandbox, store, leaderboard) after one warm-up grade, in a scratch store")
    args = p.parse_args(argv)

    no_hugepage_advice()  # as the grader (harness.cli.main) does
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
        "training copies shifted 1 px (a hiding memoriser)": np.roll(train_images, 1, axis=3),
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
        shares_of = {}
        for name, x in cases.items():
            stages = {}

            def timed(stage, f):
                t, c = time.perf_counter(), time.process_time()
                out = f()
                stages[stage] = (time.perf_counter() - t, time.process_time() - c)
                return out

            with generate_suite._one_blas_thread():  # as in the suite: one BLAS thread per stream
                _, feats = timed("forward", lambda: reference.predict(x))
                timed("fcd", lambda: generative.frechet_distance(*generative.gaussian_statistics(feats), ctx["mu"], ctx["sigma"]))
                timed("kid", lambda: generative.kid(feats, ctx["features"],
                                                    b_within=generate_suite._real_kid_within(min(1000, len(x)))))
                timed("prdc", lambda: generative.precision_recall_density_coverage(ctx["features"], feats, 5,
                                                                                     real_radii_sq=ctx["radii_sq"]))
                timed("copy_rate", lambda: copy_detection.copy_rate(x, ctx["copy_index"], ctx["copy_thresholds"]))
            total = sum(c for _, c in stages.values())
            shares_of[name] = {k: c / total for k, (_, c) in stages.items()}
            print(f"  breakdown, {name}: " + ", ".join(f"{k} {w:.2f} s (CPU {c:.2f} s, {100 * c / total:.0f}%)"
                                                      for k, (w, c) in stages.items()))

    lines = []
    last = _last_recorded()
    for name, x in cases.items():
        times = []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            metrics = generate_suite.generative_metrics(x)
            times.append((time.perf_counter() - t, time.process_time() - c))
        s, cpu = min(times)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        ratio = f", {cpu / last[name]:.2f} x the last recorded run's CPU" if name in last else ""
        line = (f"{name} (N={len(x)}): {s:.2f} s = {s / ref_s:.2f} x forward (CPU {cpu:.2f} s = "
                f"{cpu / ref_cpu:.2f} x{ratio})   [{shown}]")
        print(line)
        lines.append(line)
    if args.grade:
        line = time_memoriser_grades(args.grade, ref_s)
        print(line)
        lines.append(line)
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"generative-{time.strftime('%Y-%m-%d-%H%M%S')}.txt"
        out.write_text(f"reference run: forward pass of {len(test_images)} images: {ref_s:.2f} s (CPU {ref_cpu:.2f} s)\n"
                       + "\n".join(lines) + "\n")
        print(f"saved to {out}")
    return 0


RESULTS = ROOT / "bench" / "results"


def time_memoriser_grades(k: int, ref_s: float) -> str:
    """Wall seconds of ``harness grade baselines/memoriser-gan`` (the console script, a fresh process
    each time, as a student runs it), K times after a warm-up grade that records the reference rows."""
    import os
    import statistics
    import subprocess
    import tempfile

    harness = Path(sys.executable).with_name("harness")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(harness), "grade", str(ROOT / "baselines" / "memoriser-gan"), "--db", f"{tmp}/lb.db"]
        walls = []
        for i in range(k + 1):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            if i:
                walls.append(time.perf_counter() - t)
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"full grade of baselines/memoriser-gan (harness grade, 10k samples): min {min(walls):.2f} s, "
            f"median {statistics.median(walls):.2f} s = {statistics.median(walls) / ref_s:.2f} x forward "
            f"over {k} grades [{', '.join(f'{w:.2f}' for w in walls)}] (target <= 3.0 s idle; load {load})")


def _last_recorded() -> dict[str, float]:
    """Each case's CPU seconds in the newest bench/results/generative-*.txt (empty if none)."""
    files = sorted(RESULTS.glob("generative-*.txt"))
    out = {}
    if files:
        for line in files[-1].read_text().splitlines():
            if " (N=" in line and "(CPU " in line:
                out[line.split(" (N=")[0]] = float(line.split("(CPU ")[1].split(" s")[0])
    return out


if __name__ == "__main__":
    sys.exit(main())
