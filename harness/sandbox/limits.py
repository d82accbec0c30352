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


def _seccomp_program(block_memfd: bool = False) -> bytes | None:
    """A classic-BPF seccomp filter: no new user namespaces (clone/unshare with CLONE_NEWUSER ->
    EPERM; clone3 -> ENOSYS so libc falls back to clone), no kernel keyrings, bpf, userfaultfd,
    perf_event_open or io_uring (EPERM), no foreign-ABI syscalls (ENOSYS). ``block_memfd``: no
    memfd_create either (EPERM): without a cgroup, pages written to a memfd count against no
    rlimit. None on other arches."""
    machine = platform.machine()
    if machine == "x86_64":
        arch, nrs = 0xC000003E, dict(clone=56, unshare=272, clone3=435, add_key=248,
                                     request_key=249, keyctl=250, bpf=321, userfaultfd=323,
                                     perf_event_open=298, io_uring_setup=425, memfd_create=319)
    elif machine == "aarch64":
        arch, nrs = 0xC00000B7, dict(clone=220, unshare=97, clone3=435, add_key=217,
                                     request_key=218, keyctl=219, bpf=280, userfaultfd=282,
                                     perf_event_open=241, io_uring_setup=425, memfd_create=279)
    else:
        return None
    LD, JEQ, JSET, JGE, RET = 0x20, 0x15, 0x45, 0x35, 0x06
    ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    CLONE_NEWUSER = 0x10000000
    denied = [nrs[k] for k in ("add_key", "request_key", "keyctl", "bpf", "userfaultfd",
                               "perf_event_open", "io_uring_setup")]
    if block_memfd:
        denied.append(nrs["memfd_create"])
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
    """A child cgroup holding one run: v2 (memory.max, memory.swap.max=0, pids.max) or, on a
    legacy/hybrid hierarchy, v1 (memory.limit_in_bytes, memory.memsw.limit_in_bytes)."""

    def __init__(self, path: Path, version: int = 2):
        self.path = path
        self.version = version

    @staticmethod
    def find() -> tuple[Path | None, int, str]:
        """(parent, version, why): where this process may create a memory cgroup for a run;
        v2 first, then v1. ``HARNESS_CGROUP=off`` refuses both (the rlimit fallback, for tests
        and for machines whose cgroups must not be touched)."""
        if os.environ.get("HARNESS_CGROUP", "").strip().lower() in ("off", "none", "0"):
            return None, 0, "HARNESS_CGROUP=off"
        parent, why2 = _Cgroup.find_parent()
        if parent is not None:
            return parent, 2, why2
        parent, why1 = _Cgroup.find_v1_parent()
        if parent is not None:
            return parent, 1, why1
        return None, 0, f"cgroup v2: {why2}; cgroup v1: {why1}"

    @staticmethod
    def find_v1_parent(mounts: Path = Path("/proc/self/mounts"), env: dict | None = None,
                       proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[Path | None, str]:
        """Our own cgroup in the v1 memory hierarchy (or ``HARNESS_CGROUP_V1``), when we may
        create children in it (root, or a delegated folder)."""
        env = os.environ if env is None else env
        root = None
        try:
            for line in mounts.read_text().splitlines():
                f = line.split()
                if len(f) >= 4 and f[2] == "cgroup" and "memory" in f[3].split(","):
                    root = Path(f[1])
                    break
        except OSError:
            pass
        if root is None:
            return None, "no cgroup v1 memory hierarchy mounted"
        explicit = env.get("HARNESS_CGROUP_V1")
        if explicit:
            parent = Path(explicit) if Path(explicit).is_absolute() else root / explicit
        else:
            rel = "/"
            try:
                for line in proc_self_cgroup.read_text().splitlines():
                    _, ctl, path = line.split(":", 2)
                    if "memory" in ctl.split(","):
                        rel = path.strip()
            except (OSError, ValueError):
                pass
            parent = root / rel.lstrip("/")
        if not (parent / "memory.limit_in_bytes").is_file():
            return None, f"{parent}: not a cgroup v1 memory folder"
        if not os.access(parent, os.W_OK):
            return None, f"{parent}: not writable (run as root, or set HARNESS_CGROUP_V1 to a delegated folder)"
        return parent, "ok"

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
    def create(cls, parent: Path, limits: Limits, version: int = 2) -> "_Cgroup":
        path = parent / f"harness-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        cg = cls(path, version)
        try:
            if version == 1:
                if limits.memory_bytes:
                    (path / "memory.limit_in_bytes").write_text(str(int(limits.memory_bytes)))
                    if (path / "memory.memsw.limit_in_bytes").exists():  # no swap either
                        (path / "memory.memsw.limit_in_bytes").write_text(str(int(limits.memory_bytes)))
                    if (path / "memory.swappiness").exists():
                        try:
                            (path / "memory.swappiness").write_text("0")
                        except OSError:
                            pass
                return cg
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
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and int(v) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def peak(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text())
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
        if self.version == 2:
            try:
                (self.path / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for _ in range(50 if self.version == 1 else 1):  # v1: no cgroup.kill; forks may race us
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
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
    MAP_SHARED memory), so a cap on the whole address space bounds those too. ``data_limit`` is
    RLIMIT_DATA (memory_bytes + memory_slack_bytes()); on top of it: 256 MiB for the libraries'
    read-only and executable mappings and 64 MiB per CPU for the thread stacks and OpenBLAS
    buffers that are reserved without being used (measured: Python + NumPy + Chainer training a
    small CNN peaks at 0.56 GiB of address space for 0.37 GiB resident, 2 CPUs; glibc's arenas are
    capped with MALLOC_ARENA_MAX)."""
    return int(data_limit) + (256 << 20) + (64 << 20) * (os.cpu_count() or 1)


RLIMIT_MECHANISM = "rlimit (RLIMIT_DATA + RLIMIT_AS, memfd_create blocked)"


def memory_mechanism(gpu: bool = False) -> str:
    """Which mechanism bounds a run's memory on this machine, in words: ``cgroup v2 (<folder>)``,
    ``cgroup v1 (<folder>)``, the rlimit fallback, or none (GPU runs without a cgroup)."""
    parent, version, why = _Cgroup.find()
    if parent is not None:
        return f"cgroup v{version} ({parent})"
    if gpu:
        return f"none: GPU runs without a cgroup are not memory-limited ({why})"
    return f"{RLIMIT_MECHANISM}; no cgroup: {why}"


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
# niceness costs a student nothing. Applied by `nice` on the command line, not in a preexec_fn:
# without one, CPython starts the child with vfork/posix_spawn, which runs no pthread_atfork
# handlers (OpenBLAS's would wait for a thread pool that another grading thread keeps busy).
STUDENT_NICENESS = 5
NICE = "/usr/bin/nice"


def _nice_args() -> list[str]:
    return [NICE, "-n", str(STUDENT_NICENESS)] if os.access(NICE, os.X_OK) else []
