"""Is the sandbox available here, and in which mode (privileged bubblewrap as root, or a user namespace)?"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from harness.sandbox.constants import DEFAULT_UID_RANGE, FIX_HINT, PRLIMIT, SETPRIV
from harness.sandbox.mounts import _bwrap_path, _namespace_args, _system_binds

_probe_lock = threading.Lock()
_probe_cache: tuple[bool, str, str | None] | None = None  # (ok, reason, mode)









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
