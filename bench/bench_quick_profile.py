"""How long `harness grade --quick` takes for each baseline (target: at most 60 s on 2 cores).

    python bench/bench_quick_profile.py [--compare] [baselines/NAME ...]

Each grade runs the real CLI (sandbox included) into a scratch store and reads its --json, so a grade
that fails shows as such (its time means nothing then). The softmax-regression floor is graded first
in the same process as the reference: its time is mostly process start-up and evaluation, so the
ratio shows what each model's training adds on this machine, whatever its load. ``--compare`` also
grades each baseline with ``--stock-chainer`` (Chainer's own CPU convolution) right after it.
The load average is printed before and after: on a shared machine, quote it with the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0
SHOWN = {"classify": ("test_accuracy_public", "train_accuracy_subset"), "generate": ("classes_covered", "fcd"),
         "anomaly": ("auroc",)}


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def grade(path: Path, db: Path, tmp: Path, *flags: str) -> tuple[float, str]:
    out = tmp / "r.json"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "grade", str(path), "--quick", "--db", str(db),
                    "--json", str(out), *flags],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - start
    if not out.is_file():
        return seconds, "NO RESULTS (the command failed)"
    notes = []
    for track, t in json.loads(out.read_text())["submissions"][0]["tracks"].items():
        if t["status"] == "SKIPPED":
            continue
        shown = " ".join(f"{k}={t['metrics'][k]:.4g}" for k in SHOWN.get(track, ()) if k in t["metrics"])
        notes.append(f"{track} {t['status']} {t.get('convolution') or '-'} train {t['metrics'].get('train_seconds', 0):.1f}s {shown}")
    return seconds, "; ".join(notes)


def main(argv: list[str]) -> None:
    compare = "--compare" in argv
    paths = [Path(a) for a in argv if a != "--compare"]
    paths = paths or sorted(p for p in (ROOT / "baselines").iterdir() if (p / "submission.yaml").is_file())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs  {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        reference, notes = grade(ROOT / "baselines" / "softmax-regression", db, Path(tmp))
        print(f"{'baseline':34s} {'seconds':>8s} {'x floor':>8s}  {'<=60 s':6s}  result")
        print(f"{'softmax-regression (floor, first)':34s} {reference:8.1f} {1.0:8.2f}  "
              f"{'yes' if reference <= TARGET_SECONDS else 'NO':6s}  {notes}")
        for path in paths:
            for label, flags in [("", ())] + ([(" --stock-chainer", ("--stock-chainer",))] if compare else []):
                s, notes = grade(path, db, Path(tmp), *flags)
                ok = "yes" if s <= TARGET_SECONDS else "NO"
                print(f"{path.name + label:34s} {s:8.1f} {s / reference:8.2f}  {ok:6s}  {notes}", flush=True)
    print(load())


if __name__ == "__main__":
    main(sys.argv[1:])
