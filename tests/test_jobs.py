"""--jobs N and --jobs auto: how many ingestion processes run at once, and each one's share of the cores.

The share reaches the student's process through the real sandbox (BLAS and fast_conv thread counts),
and the metrics do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.grading import jobs

ROOT = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def test_parse_jobs():
    assert jobs.parse_jobs("auto") == "auto" and jobs.parse_jobs("AUTO") == "auto"
    assert jobs.parse_jobs("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a number of parallel jobs"):
            jobs.parse_jobs(bad)


@pytest.mark.parametrize("cores,memory,n,gpus,expected", [
    (2, 22 * GiB, 9, (), 2),     # this 2-core machine: the cores
    (16, 22 * GiB, 9, (), 2),    # memory for two 8 GiB limits only
    (16, 128 * GiB, 9, (), 9),   # every baseline at once
    (16, 128 * GiB, 1, (), 1),   # one submission
    (2, 4 * GiB, 9, (), 1),      # not even one limit fits: still one job
    (2, None, 9, (), 2),         # no /proc/meminfo: the cores
    (16, 128 * GiB, 9, (0, 1), 2),  # one per GPU
])
def test_auto_jobs(monkeypatch, cores, memory, n, gpus, expected):
    monkeypatch.setattr(jobs, "cpus", lambda: cores)
    monkeypatch.setattr(jobs, "available_memory_bytes", lambda: memory)
    assert jobs.auto_jobs(n, 8 * GiB, gpus) == expected


def test_cpu_threads_per_job(monkeypatch):
    monkeypatch.setattr(jobs, "cpus", lambda: 8)
    assert jobs.cpu_threads_per_job(1, "@numpy") is None
    assert jobs.cpu_threads_per_job(2, "@numpy") == 4
    assert jobs.cpu_threads_per_job(3, "@numpy") == 2
    assert jobs.cpu_threads_per_job(16, "@numpy") == 1
    assert jobs.cpu_threads_per_job(2, "@cupy:0") is None


def test_available_memory_reads_proc_meminfo():
    memory = jobs.available_memory_bytes()
    assert memory is None or memory > 64 << 20


MODEL = '''import os

import chainer
import chainer.functions as F
import chainer.links as L


class Reporter(chainer.Chain):
    """A small CNN (the fast convolution's worker count depends on the --jobs share) that prints the
    thread settings it was given."""

    def __init__(self):
        super().__init__()
        print("threads", os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("HARNESS_CPU_THREADS"))
        with self.init_scope():
            self.conv = L.Convolution2D(1, 32, 3, pad=1)
            self.linear = L.Linear(32 * 14 * 14, 10)

    def forward(self, x):
        h = F.max_pooling_2d(F.relu(self.conv(x.reshape(-1, 1, 28, 28))), 2)
        return self.linear(h)
'''
MANIFEST = "name: reporter\nclassify:\n  model: model.py:Reporter\n  epochs: 1\n  batch_size: 100\n"
CONFIG = "quick:\n  train_subset: 1000\n  train_eval_subset: 500\n  max_epochs: 1\n  max_train_seconds: 5\n"


def _grade(tmp_path, subs, *extra):
    out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    p = subprocess.run([sys.executable, "-m", "harness.cli", "grade", *map(str, subs), "--quick", "--track", "classify",
                        "--config", str(config), "--db", str(tmp_path / "db.db"), "--json", str(out), *extra],
                       check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    runs = {r["id"]: r["tracks"]["classify"] for r in json.loads(out.read_text())["submissions"]}
    logs = {k: Path(v["artifacts"]["log"]).read_text() for k, v in runs.items()}
    return runs, logs, p.stderr


def test_jobs_share_the_cores_in_the_sandbox_and_not_the_metrics(tmp_path, make_submission):
    subs = [make_submission("baselines/softmax-regression", f"r{i}", files={"model.py": MODEL}, manifest=MANIFEST)
            for i in range(2)]
    alone, alone_logs, _ = _grade(tmp_path, subs, "--jobs", "1")
    together, together_logs, err = _grade(tmp_path, subs, "--jobs", "2", "--no-resume")
    share = str(max(1, jobs.cpus() // 2))
    for sub in ("r0", "r1"):
        assert "threads None None" in alone_logs[sub]
        assert f"threads None {share}" in together_logs[sub]  # fast_conv's share; BLAS keeps its own
        assert alone[sub]["status"] == together[sub]["status"] == "OK"
        timing = ("train_seconds",)
        assert {k: v for k, v in alone[sub]["metrics"].items() if k not in timing} == \
            {k: v for k, v in together[sub]["metrics"].items() if k not in timing}  # whatever the threads
    _, _, err = _grade(tmp_path, subs, "--jobs", "auto", "--no-resume")
    assert "--jobs auto: " in err
