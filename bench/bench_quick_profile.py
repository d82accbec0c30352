"""How long `harness grade --quick` takes for each baseline (target: under a minute on 2 cores).

    python bench/bench_quick_profile.py [baselines/NAME ...]

Each grade runs the real CLI (sandbox included) into a scratch store. The softmax-regression floor
is graded first in the same process as the reference: its time is mostly process start-up and
evaluation, so the ratio shows what each model's training adds on this machine, whatever its load.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def grade_seconds(path: Path, db: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "grade", str(path), "--quick", "--db", str(db)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or sorted(p for p in (ROOT / "baselines").iterdir() if (p / "submission.yaml").is_file())
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        reference = grade_seconds(ROOT / "baselines" / "softmax-regression", db)
        print(f"{'baseline':28s} {'seconds':>8s} {'x floor':>8s}  under {TARGET_SECONDS:.0f} s")
        print(f"{'softmax-regression (ref)':28s} {reference:8.1f} {1.0:8.2f}  {'yes' if reference < TARGET_SECONDS else 'NO'}")
        for path in paths:
            s = grade_seconds(path, db)
            print(f"{path.name:28s} {s:8.1f} {s / reference:8.2f}  {'yes' if s < TARGET_SECONDS else 'NO'}")


if __name__ == "__main__":
    main(sys.argv[1:])
