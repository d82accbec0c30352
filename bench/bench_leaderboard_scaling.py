"""How rendering the leaderboard grows with the stored runs (target: at most linearly).

    python bench/bench_leaderboard_scaling.py [--sizes 10,100,1000] [--runs-per-submission 3]

For each size N it fills a real SQLite store with N submissions x 3 tracks x R runs (plausible
metrics, the public/private keys included), then times what `harness leaderboard` does for every
format: standings of every track, the overall ranking and the rendering (table via a recording
console, md, csv, json, html). It prints seconds and seconds per stored run; the ratio of the
per-run cost at the largest size to the smallest is the check (<= about 1.5 means linear).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from harness import competition  # noqa: E402
from harness.render.exports import render  # noqa: E402
from harness.render.tables import render_rich  # noqa: E402
from harness.standings.overall import compute_overall, track_standings  # noqa: E402
from harness.store import Run, Store  # noqa: E402


def metrics_for(track: str, rng: random.Random) -> dict:
    if track == "classify":
        acc = rng.uniform(0.85, 0.995)
        return {"test_accuracy": acc, "test_accuracy_public": acc + rng.uniform(-0.005, 0.005),
                "test_accuracy_private": acc + rng.uniform(-0.005, 0.005), "train_accuracy": acc + 0.01,
                "accuracy_gap": 0.01, "test_loss": 0.1, "train_loss": 0.05, "loss_gap": 0.05,
                "params": rng.randint(7850, 2_000_000), "train_seconds": rng.uniform(5, 500)}
    if track == "generate":
        return {"fcd": rng.uniform(1, 300), "classifier_score": rng.uniform(1, 9.9), "kid_mean": rng.uniform(0, 1),
                "kid_std": 0.01, "precision": rng.random(), "recall": rng.random(), "density": rng.random(),
                "coverage": rng.random(), "class_entropy": rng.uniform(0, 2.3), "classes_covered": rng.randint(1, 10),
                "copy_rate": rng.uniform(0, 0.002)}
    a = rng.uniform(0.5, 0.99)
    return {"auroc": a, "auroc_salt": a, "auroc_vbar": a, "auroc_oneclass_mean": a, "params": 1000,
            "train_seconds": 10.0}


def fill(store: Store, n: int, runs_per_submission: int, rng: random.Random) -> int:
    count = 0
    for i in range(n):
        for track in ("classify", "generate", "anomaly"):
            for _ in range(runs_per_submission):
                store.add(Run(submission_id=f"student{i:04d}", name=f"Student {i}", path=f"submissions/student{i:04d}",
                              sha256="0" * 64, track=track, profile="full", status="OK",
                              metrics=metrics_for(track, rng), kind="submission"))
                count += 1
    return count


def render_all(db: Path, comp) -> None:
    with Store(db) as store:
        per_track = track_standings(store, comp, "full", None)
        revealed = store.revealed
    overall = compute_overall(per_track, comp)
    rec = Console(record=True, width=160, file=io.StringIO())
    for st in per_track:
        rec.print(render_rich(st))
    for fmt in ("md", "csv", "json", "html"):
        render(fmt, per_track, overall, comp, revealed, False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--runs-per-submission", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    comp = competition.load()
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            db = Path(tmp) / f"n{n}.db"
            with Store(db) as store:
                stored = fill(store, n, args.runs_per_submission, rng)
            best = min(_timed(render_all, db, comp) for _ in range(args.repeat))
            rows.append((n, stored, best))
    print(f"{'submissions':>11s} {'runs':>7s} {'seconds':>9s} {'ms/run':>8s}")
    for n, stored, s in rows:
        print(f"{n:11d} {stored:7d} {s:9.3f} {1000 * s / stored:8.3f}")
    ratio = (rows[-1][2] / rows[-1][1]) / (rows[0][2] / rows[0][1])
    print(f"per-run cost, largest / smallest size: {ratio:.2f}x (<= ~1.5: linear or better)")
    return 0


def _timed(fn, *a) -> float:
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
