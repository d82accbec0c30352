"""SIGKILL anywhere loses nothing, and --resume grades only what is not stored yet (issue 14).

Real graders (``harness grade`` subprocesses), the real sandbox, real Chainer training on the quick
profile, the real SQLite store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import competition as competition_mod
from harness.grading.config_id import config_sha256
from harness.sandbox import sweep
from harness.sandbox.probe import sandbox_available
from harness.standings.per_track import standings
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
UIDS = (70900, 70911)  # a private slice of sandbox uids: outside the default pool other graders use
SLOW = "import time\ntime.sleep(5)  # inside the sandbox: the grader is killed meanwhile\n"

pytestmark = pytest.mark.skipif(not sandbox_available()[0], reason="bubblewrap sandbox unavailable")


def class_of(make_submission, n=6, slow=range(1, 6)):
    paths = []
    for i in range(n):
        files = {"classifier.py": SLOW + (ROOT / "baselines/softmax-regression/classifier.py").read_text()} \
            if i in slow else None
        paths.append(make_submission("baselines/softmax-regression", f"s{i}", files=files))
    return paths


def grade(paths, db, *extra, env=None, wait=True):
    argv = [sys.executable, "-m", "harness.cli", "grade", *map(str, paths), "--quick", "--track", "classify",
            "--db", str(db), *extra]
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return p
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


def stored(db, sql="SELECT submission_id, status FROM runs WHERE kind = 'submission' ORDER BY submission_id"):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def sandbox_pids(first, last):
    out = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if first <= int(line.split()[0]) <= last]


def stored_yet(db):
    """The stored runs, or [] while the grader has created the file but not yet its schema."""
    try:
        return stored(db)
    except sqlite3.OperationalError:
        return []


def env_with_uids():
    return {**os.environ, "HARNESS_SANDBOX_UIDS": f"{UIDS[0]}-{UIDS[1]}"}


@pytest.mark.skipif(os.geteuid() != 0, reason="uid leases exist only when the grader runs as root")
def test_sigkill_mid_run_then_resume_grades_each_submission_once(make_submission, tmp_path):
    paths = class_of(make_submission)
    db = tmp_path / "store.db"
    env = env_with_uids()
    p = grade(paths, db, "--jobs", "2", env=env, wait=False)
    deadline = time.monotonic() + 120
    try:  # kill once a run is stored and another sandbox is mid-run
        while time.monotonic() < deadline:
            if db.exists() and stored_yet(db) and sandbox_pids(*UIDS):
                break
            assert p.poll() is None, f"the grader ended before it could be killed: {p.communicate()}"
            time.sleep(0.1)
        else:
            pytest.fail("no run was stored within 120 s")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    killed_pid = p.pid
    first = stored(db)
    assert 1 <= len(first) < 6, first

    # the sandboxes died with their grader (--die-with-parent, pid namespaces): nothing under its uids
    for _ in range(50):
        if not sandbox_pids(*UIDS):
            break
        time.sleep(0.1)
    assert sandbox_pids(*UIDS) == []
    assert stored(db, "PRAGMA integrity_check") == [("ok",)]
    # and the leases are free again (flock: released by the kernel with the dead grader's descriptors)
    for uid in range(UIDS[0], UIDS[1] + 1):
        lock = sweep.lock_dir() / f"uid-{uid}.lock"
        if lock.exists():
            import fcntl
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if anyone still holds it
            finally:
                os.close(fd)
    # every artifact a stored run names is complete
    for (artifacts,) in stored(db, "SELECT artifacts FROM runs"):
        for path in json.loads(artifacts).values():
            text = Path(path).read_text()
            if path.endswith(".json"):
                json.loads(text)

    code, out, err = grade(paths, db, "--jobs", "2", "--resume", "--json", tmp_path / "r.json", env=env)
    assert code == 0, err[-3000:]
    assert f"resume: {len(first)} run(s) already stored, {6 - len(first)} submission(s) to grade" in err
    runs = stored(db)
    assert runs == [(f"s{i}", "OK") for i in range(6)], runs  # exactly one run each, all OK
    assert stored(db, "PRAGMA integrity_check") == [("ok",)]
    results = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert sorted(r["id"] for r in results) == [f"s{i}" for i in range(6)]
    assert all(r["tracks"]["classify"]["status"] == "OK" for r in results)
    # the killed grader's work folders were swept at this start
    assert not [n for n in os.listdir("/tmp") if n.startswith(tuple(f"{pre}{killed_pid}-" for pre in sweep.TMP_PREFIXES))]


def test_resume_skips_what_is_stored_and_regrades_only_the_changed_submission(make_submission, tmp_path):
    paths = class_of(make_submission, n=3, slow=())
    db = tmp_path / "store.db"
    code, _, err = grade(paths, db)
    assert code == 0, err[-3000:]
    comp = competition_mod.load(None)
    with Store(db) as store:
        config = {r.versions.get("config") for r in store.runs(track="classify", profile="quick")
                  if r.kind == "submission"}
    assert config == {config_sha256(comp)}  # every run records the configuration it was graded under

    code, _, err = grade(paths, db, "--resume")
    assert code == 0, err[-3000:]
    assert "resume: skipped s0 classify" in err and "resume: 3 run(s) already stored, 0 submission(s) to grade" in err
    assert len(stored(db)) == 3

    (paths[1] / "classifier.py").write_text((paths[1] / "classifier.py").read_text() + "\n# changed\n")
    t0 = time.monotonic()
    code, _, err = grade(paths, db, "--resume")
    assert code == 0, err[-3000:]
    assert "resume: 2 run(s) already stored, 1 submission(s) to grade" in err
    assert [r for r, _ in stored(db)] == ["s0", "s1", "s1", "s2"]  # one grade for the one change

    # another seed is another configuration: nothing is skipped
    code, _, err = grade(paths[:1], db, "--resume", "--seed", "7")
    assert "resume: 0 run(s) already stored, 1 submission(s) to grade" in err
    # shards resume by default, --no-resume grades again; the standings show one row per submission
    code, _, err = grade(paths, db, "--shard", "1/1")
    assert "resume: 3 run(s) already stored, 0 submission(s) to grade" in err
    code, _, err = grade(paths[2:], db, "--shard", "1/1", "--no-resume")
    assert "resume:" not in err
    assert [r for r, _ in stored(db)].count("s2") == 2
    with Store(db) as store:
        ids = [r.run.submission_id for r in standings(store, "classify", "quick").rows if not r.is_reference]
    assert sorted(ids) == ["s0", "s1", "s2"]
    assert time.monotonic() - t0 < 120


def test_sweep_removes_what_a_dead_grader_left_and_spares_live_ones(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = tmp_path / f"harness-job-{dead.pid}-abc"
    (mine / "output" / "deep").mkdir(parents=True)
    (mine / "output" / "deep" / "f").write_text("x")
    live = tmp_path / f"harness-job-{os.getpid()}-abc"
    live.mkdir()
    legacy = tmp_path / "harness-job-xyz"  # no pid in its name: never guessed at
    legacy.mkdir()
    removed = sweep.remove_dead_folders(tmp_path)
    assert removed == [str(mine)]
    assert not mine.exists() and live.exists() and legacy.exists()
