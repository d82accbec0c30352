"""Resource limits: the Limits record, rlimits, the seccomp filter, per-run uid leases and cgroup v2 memory."""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import secrets
import signal
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.sandbox.constants import DEFAULT_UID_RANGE, PRLIMIT



@dataclass
class Limits:
    wall_seconds: float = 3600.0
    cpu_seconds: float | None = 7200.0        # per process (RLIMIT_CPU); threads add up. None: unset
    memory_bytes: int | None = 8 << 30         # cgroup memory.max, else RLIMIT_DATA (+ slack). None: unset
    max_processes: int = 512                   # processes + threads (RLIMIT_NPROC, pids.max)
    max_file_bytes: int = 1 << 30              # RLIMIT_FSIZE: any single file
    max_open_files: int = 1024                 # RLIMIT_NOFILE
    max_output_bytes: int = 1 << 20            # per stream (stdout, stderr); beyond: OUTPUT_LIMIT
    tmp_bytes: int = 512 << 20                 # size of the private tmpfs /tmp (and /dev/shm)
    max_output_dir_bytes: int = 2 << 30        # bytes written under /output (polled)
    max_output_files: int = 10000              # entries under /output (polled)


def _seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter: no new user namespaces (clone/unshare with CLONE_NEWUSER ->
    EPERM; clone3 -> ENOSYS so libc falls back to clone), no kernel keyrings, bpf, userfaultfd,
    perf_event_open or io_uring (EPERM), no foreign-ABI syscalls (ENOSYS). None on other arches."""
    machine = platform.machine()
    if machine == "x86_64":
        arch, nrs = 0xC000003E, dict(clone=56, unshare=272, clone3=435, add_key=248,
                                     request_key=249, keyctl=250, bpf=321, userfaultfd=323,
                                     perf_event_open=298, io_uring_setup=425)
    elif machine == "aarch64":
        arch, nrs = 0xC00000B7, dict(clone=220, unshare=97, clone3=435, add_key=217,
                                     request_key=218, keyctl=219, bpf=280, userfaultfd=282,
                                     perf_event_open=241, io_uring_setup=425)
    else:
        return None
    LD, JEQ, JSET, JGE, RET = 0x20, 0x15, 0x45, 0x35, 0x06
    ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    CLONE_NEWUSER = 0x10000000
    denied = [nrs[k] for k in ("add_key", "request_key", "keyctl", "bpf", "userfaultfd",
                               "perf_event_open", "io_uring_setup")]
    # Labels resolved as absolute instruction indices, then turned into relative jumps.
    prog: list[tuple] = []

    def emit(code, k, jt=None, jf=None):
        prog.append((code, k, jt, jf))

    emit(LD, 4)                                   # arch
    emit(JEQ, arch, None, "enosys")
    emit(LD, 0)                                   # nr
    if machine == "x86_64":
        emit(JGE, 0x40000000, "enosys", None)     # x32 ABI
    emit(JEQ, nrs["clone3"], "enosys", None)
    emit(JEQ, nrs["unshare"], "flags", None)
    emit(JEQ, nrs["clone"], "flags", None)
    for nr in denied:
        emit(JEQ, nr, "eperm", None)
    emit(RET, ALLOW)
    labels = {"flags": len(prog)}
    emit(LD, 16)                                  # args[0], low 32 bits (little endian)
    emit(JSET, CLONE_NEWUSER, "eperm", None)
    emit(RET, ALLOW)
    labels["eperm"] = len(prog)
    emit(RET, EPERM)
    labels["enosys"] = len(prog)
    emit(RET, ENOSYS)
    out = b""
    for i, (code, k, jt, jf) in enumerate(prog):
        rel = lambda lab: 0 if lab is None else labels[lab] - i - 1  # noqa: E731
        out += struct.pack("=HBBI", code, rel(jt), rel(jf), k)
    return out


class _UidLease:
    """An exclusive lease on one uid of the pool, held (flock) for the duration of one run."""

    def __init__(self, uid_range: tuple[int, int] | None = None, wait_seconds: float = 120.0):
        first, last = uid_range or _uid_range()
        lock_dir = Path("/run/harness-sandbox")
        try:
            lock_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            lock_dir = Path(tempfile.gettempdir()) / f"harness-sandbox-{os.geteuid()}"
            lock_dir.mkdir(mode=0o700, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        start = secrets.randbelow(last - first + 1)
        while True:
            for i in range(last - first + 1):
                uid = first + (start + i) % (last - first + 1)
                fd = os.open(lock_dir / f"uid-{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                self.uid, self._fd = uid, fd
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"all sandbox uids {first}-{last} are busy "
                                   f"(set HARNESS_SANDBOX_UIDS=first-last for a larger pool)")
            time.sleep(0.2)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _uid_range() -> tuple[int, int]:
    v = os.environ.get("HARNESS_SANDBOX_UIDS", "")
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", v)
    if m:
        first = int(m.group(1))
        last = int(m.group(2) or first)
        if 0 < first <= last:
            return first, last
    return DEFAULT_UID_RANGE


class _Cgroup:
    """A child cgroup (v2) holding one run, with memory.max / memory.swap.max / pids.max."""

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def find_parent(root: Path = Path("/sys/fs/cgroup"), env: dict | None = None,
                    proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[Path | None, str]:
        env = os.environ if env is None else env
        if not (root / "cgroup.controllers").is_file():
            return None, f"{root} is not a cgroup v2 hierarchy"
        explicit = env.get("HARNESS_CGROUP")
        if explicit:
            parent = Path(explicit)
            if not parent.is_absolute():
                parent = root / explicit
        else:
            rel = None
            try:
                for line in proc_self_cgroup.read_text().splitlines():
                    if line.startswith("0::"):
                        rel = line[3:].strip()
            except OSError:
                pass
            if rel is None:
                return None, "no cgroup v2 entry in /proc/self/cgroup"
            parent = root / rel.lstrip("/")
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
        except OSError as e:
            return None, f"{parent}: {e.strerror}"
        if "memory" not in enabled:
            available = (parent / "cgroup.controllers").read_text().split() if (
                parent / "cgroup.controllers").is_file() else []
            if "memory" not in available:
                return None, f"{parent}: memory controller not delegated"
            want = " ".join("+" + c for c in ("memory", "pids") if c in available)
            try:
                (parent / "cgroup.subtree_control").write_text(want)
            except OSError as e:
                return None, (f"{parent}: cannot enable the memory controller ({e.strerror}); "
                              f"set HARNESS_CGROUP to an empty delegated cgroup")
        if not os.access(parent, os.W_OK):
            return None, f"{parent}: not writable"
        return parent, "ok"

    @classmethod
    def create(cls, parent: Path, limits: Limits) -> "_Cgroup":
        path = parent / f"harness-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        cg = cls(path)
        try:
            if limits.memory_bytes:
                (path / "memory.max").write_text(str(int(limits.memory_bytes)))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
            if (path / "pids.max").exists() and limits.max_processes:
                (path / "pids.max").write_text(str(int(limits.max_processes) + 8))
        except OSError:
            cg.remove()
            raise
        return cg

    def oom_killed(self) -> bool:
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and int(v) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def peak(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def cpu_seconds(self) -> float | None:
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "usage_usec":
                    return int(v) / 1e6
        except (OSError, ValueError):
            pass
        return None

    def kill(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")
            return
        except OSError:
            pass
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        except OSError:
            pass

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError as e:
                if e.errno != errno.EBUSY:  # gone, or not a cgroup (ENOTEMPTY): nothing to wait for
                    return
                self.kill()
                time.sleep(0.02)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def memory_slack_bytes() -> int:
    """Added to memory_bytes under RLIMIT_DATA: interpreter, libraries, per-thread stacks and
    OpenBLAS buffers, which are reserved writable memory whether used or not."""
    return (256 << 20) + (64 << 20) * (os.cpu_count() or 1)


def address_space_backstop(data_limit: int) -> int:
    """RLIMIT_AS set next to RLIMIT_DATA: RLIMIT_DATA does not count shared mappings (anonymous
    MAP_SHARED memory), so a loose cap on the whole address space bounds those too, while leaving
    room for the address space that threads and libraries reserve without using."""
    return 2 * int(data_limit) + (1 << 30) + (128 << 20) * (os.cpu_count() or 1)


def _prlimit_args(limits: Limits, memory_rlimit: int | None, nproc: bool = True) -> list[str]:
    args = [PRLIMIT, "--core=0:0"]
    if limits.cpu_seconds:
        soft = max(1, int(limits.cpu_seconds + 0.999))
        args.append(f"--cpu={soft}:{soft + 5}")
    if memory_rlimit:
        args.append(f"--data={memory_rlimit}:{memory_rlimit}")
        backstop = address_space_backstop(memory_rlimit)
        args.append(f"--as={backstop}:{backstop}")
    if nproc and limits.max_processes:
        args.append(f"--nproc={limits.max_processes}:{limits.max_processes}")
    if limits.max_file_bytes:
        args.append(f"--fsize={limits.max_file_bytes}:{limits.max_file_bytes}")
    if limits.max_open_files:
        args.append(f"--nofile={limits.max_open_files}:{limits.max_open_files}")
    return args + ["--"]


def _rlimits_preexec(limits: Limits, memory_rlimit: int | None) -> Callable[[], None]:
    """Fallback when prlimit is missing (isolation="none" only)."""
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.cpu_seconds:
            soft = max(1, int(limits.cpu_seconds + 0.999))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
        if memory_rlimit:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_rlimit, memory_rlimit))
            backstop = address_space_backstop(memory_rlimit)
            resource.setrlimit(resource.RLIMIT_AS, (backstop, backstop))
        if limits.max_processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
        if limits.max_file_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes,) * 2)
        if limits.max_open_files:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files,) * 2)
    return apply


# Student processes run a little below the harness, so that a CPU-bound process tree (a spinning
# fork bomb) cannot starve the supervisor that enforces limits and reaps it. Alone on a machine,
# niceness costs a student nothing.
STUDENT_NICENESS = 5


def _niced(preexec: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:
        os.nice(STUDENT_NICENESS)
        if preexec is not None:
            preexec()
    return run
