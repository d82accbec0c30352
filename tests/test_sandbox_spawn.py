"""Starting sandboxes from several threads never deadlocks against BLAS busy in another thread.

glibc's fork() runs the pthread_atfork handlers; OpenBLAS's waits for its thread pool, which a
scoring thread (KID in the generate track) keeps busy, so `harness grade --jobs 2` hung forever.
The sandbox starts its process without a preexec_fn (niceness and rlimits are on the command line:
`nice`, `prlimit`), so CPython uses vfork and runs no fork handlers. Measured on the 2-core CPU:
300 spawns beside a busy np.dot thread took 0.8 s; the same with a preexec_fn hung (killed at 100 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import sandbox

ROOT = Path(__file__).resolve().parent.parent

needs_bwrap = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                 reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")

# Runs in a fresh interpreter, so a deadlock is a timeout of that process, not of pytest.
SPAWNER = textwrap.dedent("""
    import sys, tempfile, threading, time
    import numpy as np
    from harness import sandbox

    stop = threading.Event()

    def busy():
        a = np.random.default_rng(0).random((1500, 1500))
        while not stop.is_set():
            a.dot(a)  # multithreaded BLAS, all the time

    t = threading.Thread(target=busy)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    statuses = []
    try:
        for i in range(int(sys.argv[1])):
            with tempfile.TemporaryDirectory() as d:
                for sub in ("s", "i"):
                    (__import__("pathlib").Path(d) / sub).mkdir()
                r = sandbox.run_ingestion(["/bin/true"], submission_dir=d + "/s", input_dir=d + "/i",
                                          output_dir=d + "/o", limits=sandbox.Limits(wall_seconds=30),
                                          isolation=sys.argv[2])
                statuses.append(r.status)
    finally:
        stop.set()
        t.join()
    print(sorted(set(statuses)), round(time.monotonic() - started, 2))
""")


@pytest.mark.parametrize("isolation", [
    pytest.param("bubblewrap", marks=needs_bwrap),
    "none",
])
def test_sandbox_starts_while_blas_is_busy_in_another_thread(isolation):
    runs = 20
    started = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", SPAWNER, str(runs), isolation], capture_output=True,
                           text=True, timeout=120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{runs} sandbox starts beside a busy BLAS thread did not finish in 120 s (deadlock)")
    assert p.returncode == 0, p.stderr[-2000:]
    statuses, seconds = p.stdout.strip().rsplit(" ", 1)
    assert statuses == "['OK']", p.stdout
    assert time.monotonic() - started < 120 and float(seconds) < 90


STRESS_CONFIG = """
quick:
  train_subset: 2000
  max_epochs: 1
  max_train_seconds: 3
  generate_samples: 1000
  time_limit_seconds: 120
"""


@needs_bwrap
@pytest.mark.slow
def test_grade_jobs_2_with_the_generate_track_completes(tmp_path, make_submission):
    """A small class graded with --jobs 2: generate scoring (KID, BLAS-heavy) in one thread while
    the other thread starts sandboxes. Before the fix this hung within seconds; it must finish."""
    config = tmp_path / "stress.yaml"
    config.write_text(STRESS_CONFIG)
    subs = [make_submission("baselines/mlp-gan", "gan-a"), make_submission("baselines/mlp-gan", "gan-b")]
    subs += [make_submission("baselines/softmax-regression", f"softmax-{i}") for i in range(4)]
    args = ["grade", *subs, "--quick", "--jobs", "2", "--config", config, "--db", tmp_path / "db.db",
            "--json", tmp_path / "r.json"]
    started = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True,
                           text=True, timeout=480, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("harness grade --jobs 2 did not finish in 480 s (deadlock)")
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    results = json.loads((tmp_path / "r.json").read_text())["submissions"]
    statuses = {(r["id"], t): v["status"] for r in results for t, v in r["tracks"].items()}
    assert {s for s in statuses.values()} <= {"OK", "SKIPPED"}, statuses
    assert statuses[("gan-a", "generate")] == statuses[("gan-b", "generate")] == "OK"
    print(f"graded {len(subs)} submissions with --jobs 2 in {time.monotonic() - started:.1f} s")
