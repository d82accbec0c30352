"""Overhead of the ingestion sandbox: run_ingestion with bubblewrap vs isolation="none".

    python bench/bench_sandbox.py [--runs N] [--payload "import numpy"]

Runs the payload `python -c <payload>` with the venv's interpreter N times in each mode
(interleaved, after one warm-up each), and prints the median and minimum wall time of each mode
and the difference of the medians. Target: under 0.3 s added by the sandbox.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.sandbox import Limits, run_ingestion, sandbox_available, sandbox_mode


def one(isolation: str, argv: list[str], root: Path, i: int) -> float:
    base = root / f"{isolation}-{i}"
    sub, inp = base / "submission", base / "input"
    sub.mkdir(parents=True)
    inp.mkdir()
    t0 = time.perf_counter()
    r = run_ingestion(argv, submission_dir=sub, input_dir=inp, output_dir=base / "output",
                      limits=Limits(wall_seconds=60), isolation=isolation)
    dt = time.perf_counter() - t0
    if r.status != "OK":
        raise SystemExit(f"{isolation}: {r.status}: {r.message}\n{r.stderr[-2000:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--payload", default="import numpy")
    args = ap.parse_args()
    ok, reason = sandbox_available()
    if not ok:
        print(f"sandbox unavailable: {reason}")
        return 3
    payloads = {f"python -c {args.payload!r}": [sys.executable, "-c", args.payload],
                "/bin/true": ["/bin/true"]}
    print(f"sandbox: {reason} (mode {sandbox_mode()}); {args.runs} runs per mode, medians")
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        root = Path(tmp)
        for name, argv in payloads.items():
            times: dict[str, list[float]] = {"bubblewrap": [], "none": []}
            for mode in times:  # warm-up (page cache, probe)
                one(mode, argv, root / name.replace("/", "_"), -1)
            for i in range(args.runs):
                for mode in times:
                    times[mode].append(one(mode, argv, root / name.replace("/", "_"), i))
            med = {m: statistics.median(t) for m, t in times.items()}
            print(f"{name}:")
            for m, t in times.items():
                print(f"  {m:10s} median {med[m]:.3f} s   min {min(t):.3f} s")
            diff = med["bubblewrap"] - med["none"]
            verdict = "ok" if diff < 0.3 else "OVER the 0.3 s target"
            print(f"  added by the sandbox: {diff:+.3f} s ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
