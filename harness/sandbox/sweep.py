"""What a grader killed with SIGKILL leaves behind, found and removed when the next grader starts.

A killed grader cannot clean up, and the kernel does most of it: its uid leases are ``flock`` locks,
released when its last descriptor closes (the descriptors are close-on-exec, so no sandboxed child
keeps one); bubblewrap runs with ``--die-with-parent`` (PR_SET_PDEATHSIG) in its own pid namespace,
so the student's processes are killed with their grader. :func:`sweep_stale` covers the rest, and is
safe beside graders still running (it only touches what belongs to a dead process):

- processes still running under a sandbox uid whose lease nobody holds (the lease is taken while
  they are killed, so no new run can start under that uid meanwhile);
- the per-run cgroups ``harness-<pid>-<hex>`` of a dead grader pid;
- the temporary folders ``harness-job-<pid>-*``, ``harness-runtime-<pid>-*`` and
  ``harness-nosandbox-<pid>-*`` of a dead grader pid.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.sandbox.copy import remove_tree
from harness.sandbox.limits import _Cgroup, _uid_range

TMP_PREFIXES = ("harness-job-", "harness-runtime-", "harness-nosandbox-")
_TMP = re.compile(r"(?:harness-job|harness-runtime|harness-nosandbox)-(\d+)-.+")
_CGROUP = re.compile(r"harness-(\d+)-[0-9a-f]+")


@dataclass
class Swept:
    killed: list[int] = field(default_factory=list)      # pids killed (orphans under a free sandbox uid)
    cgroups: list[str] = field(default_factory=list)     # cgroup folders removed
    folders: list[str] = field(default_factory=list)     # temporary folders removed

    def __bool__(self) -> bool:
        return bool(self.killed or self.cgroups or self.folders)

    def summary(self) -> str:
        return (f"{len(self.killed)} orphaned sandbox process(es) killed, {len(self.cgroups)} cgroup(s) and "
                f"{len(self.folders)} work folder(s) of killed graders removed")


def lock_dir() -> Path:
    """Where the uid leases live (as ``_UidLease`` chooses it)."""
    d = Path("/run/harness-sandbox")
    if d.is_dir():
        return d
    return Path(tempfile.gettempdir()) / f"harness-sandbox-{os.geteuid()}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_by_uid(first: int, last: int) -> dict[int, list[int]]:
    """Real uid -> pids, for the processes running under a uid in ``first..last``."""
    out: dict[int, list[int]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if first <= uid <= last:
                            out.setdefault(uid, []).append(pid)
                        break
        except (OSError, ValueError, IndexError):
            continue
    return out


def kill_orphans(uid_range: tuple[int, int] | None = None) -> list[int]:
    """SIGKILL every process under a sandbox uid whose lease no grader holds (root only: without root
    the sandbox runs as the caller's own uid, in a user namespace, and no uid is leased)."""
    if os.geteuid() != 0:
        return []
    first, last = uid_range or _uid_range()
    killed: list[int] = []
    for uid, pids in sorted(processes_by_uid(first, last).items()):
        path = lock_dir() / f"uid-{uid}.lock"
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live grader holds this uid: its processes are not orphans
            for _ in range(50):  # held: no new run starts under this uid until every process is gone
                pids = processes_by_uid(uid, uid).get(uid, [])
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        if pid not in killed:
                            killed.append(pid)
                    except OSError:
                        pass
                time.sleep(0.02)
        finally:
            os.close(fd)
    return killed


def remove_dead_cgroups() -> list[str]:
    parent, _version, _why = _Cgroup.find()
    removed: list[str] = []
    if parent is None:
        return removed
    try:
        entries = [e for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for e in entries:
        m = _CGROUP.fullmatch(e.name)
        if m and not alive(int(m.group(1))):
            cg = _Cgroup(Path(e.path), 1 if (Path(e.path) / "memory.limit_in_bytes").exists() else 2)
            cg.kill()
            cg.remove()
            if not Path(e.path).exists():
                removed.append(e.path)
    return removed


def remove_dead_folders(tmp: str | os.PathLike | None = None) -> list[str]:
    root = Path(tmp or tempfile.gettempdir())
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(TMP_PREFIXES)]
    except OSError:
        return removed
    for e in entries:
        m = _TMP.fullmatch(e.name)
        if m and e.is_dir(follow_symlinks=False) and not alive(int(m.group(1))):
            remove_tree(Path(e.path))
            if not os.path.lexists(e.path):
                removed.append(e.path)
    return removed


def sweep_stale(uid_range: tuple[int, int] | None = None, tmp: str | os.PathLike | None = None) -> Swept:
    """Kill and remove what killed graders left (see the module text); safe beside live graders."""
    swept = Swept()
    swept.killed = kill_orphans(uid_range)
    swept.cgroups = remove_dead_cgroups()
    swept.folders = remove_dead_folders(tmp)
    return swept
