"""Memory binds for real: a memory cgroup (v2, or v1) the harness creates for every run, else
RLIMIT_DATA + a tight RLIMIT_AS with memfd_create refused by the seccomp filter.

Measured here (root, hybrid cgroup v1 hierarchy, 2 CPUs), limit 512 MiB: a memfd hog and a shared
anonymous mmap hog end OUT_OF_MEMORY with the cgroup's peak at 512 MiB (before: 4.9 GiB held). Under
the rlimit fallback (HARNESS_CGROUP=off) memfd_create fails with EPERM and the shared mmap with
ENOMEM; a real Chainer training step still runs there at 512 MiB.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from harness import sandbox
from harness.sandbox import limits as sandbox_limits

pytestmark = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")

MEMFD = """
import os
fd = os.memfd_create("hog")
chunk, n = b"\\1" * (32 << 20), 0
while n < (3 << 30):
    os.write(fd, chunk)
    n += len(chunk)
print("held", n >> 20)
"""
SHM = """
import mmap
maps = []
for _ in range(24):
    m = mmap.mmap(-1, 128 << 20, flags=mmap.MAP_SHARED)
    for off in range(0, len(m), 4096):
        m[off] = 1
    maps.append(m)
print("held", len(maps) * 128)
"""
TRAIN = """
import numpy as np
from harness.chainer_env import chainer
import chainer.functions as F, chainer.links as L
model = L.Classifier(chainer.Sequential(L.Convolution2D(1, 32, 3), F.relu, L.Convolution2D(32, 64, 3),
                                        F.relu, L.Linear(None, 128), F.relu, L.Linear(128, 10)))
opt = chainer.optimizers.Adam()
opt.setup(model)
rng = np.random.default_rng(0)
x = rng.random((20000, 1, 28, 28), dtype=np.float32)  # 63 MB, like a quick train subset
t = rng.integers(0, 10, 20000).astype(np.int32)
for i in range(5):
    model.cleargrads()
    loss = model(x[i * 100:(i + 1) * 100], t[i * 100:(i + 1) * 100])
    loss.backward()
    opt.update()
print("trained", float(loss.array))
"""

MiB = 1 << 20


def run(tmp_path, code, memory_mb):
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "i").mkdir(exist_ok=True)
    out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
    return sandbox.run_ingestion([sys.executable, "-c", textwrap.dedent(code)], submission_dir=tmp_path / "s",
                                 input_dir=tmp_path / "i", output_dir=out,
                                 limits=sandbox.Limits(wall_seconds=120, memory_bytes=memory_mb * MiB))


def test_memory_mechanism_is_named():
    mechanism = sandbox.memory_mechanism()
    assert mechanism.startswith(("cgroup v2 (", "cgroup v1 (", sandbox_limits.RLIMIT_MECHANISM)), mechanism


@pytest.mark.skipif(not sandbox.memory_mechanism().startswith("cgroup"), reason="no memory cgroup here")
@pytest.mark.parametrize("code", [MEMFD, SHM], ids=["memfd", "shared_mmap"])
def test_cgroup_holds_memory_the_rlimits_miss(tmp_path, code):
    r = run(tmp_path, code, 256)
    assert r.memory_mechanism.startswith("cgroup")
    assert r.status == "OUT_OF_MEMORY", (r.status, r.message, r.stdout)
    assert "held" not in r.stdout
    assert r.max_rss_bytes is not None and r.max_rss_bytes <= 256 * MiB  # the tree's peak (cgroup)


@pytest.mark.parametrize("code, status, said", [
    (MEMFD, "CRASH", "PermissionError: [Errno 1] Operation not permitted"),
    (SHM, "OUT_OF_MEMORY", "Cannot allocate memory"),
], ids=["memfd", "shared_mmap"])
def test_rlimit_fallback_refuses_memfd_and_bounds_shared_memory(tmp_path, monkeypatch, code, status, said):
    monkeypatch.setenv("HARNESS_CGROUP", "off")
    assert sandbox.memory_mechanism().startswith(sandbox_limits.RLIMIT_MECHANISM)
    r = run(tmp_path, code, 512)
    assert r.memory_mechanism == sandbox_limits.RLIMIT_MECHANISM
    assert r.status == status and said in r.message, (r.status, r.message)
    assert "held" not in r.stdout


@pytest.mark.parametrize("memory_mb, fallback", [(512, True), (1024, True), (1024, False)])
def test_chainer_trains_under_the_memory_limit(tmp_path, monkeypatch, memory_mb, fallback):
    if fallback:
        monkeypatch.setenv("HARNESS_CGROUP", "off")
    r = run(tmp_path, TRAIN, memory_mb)
    assert r.status == "OK", (r.memory_mechanism, r.message, r.stderr[-1500:])
    assert "trained" in r.stdout
