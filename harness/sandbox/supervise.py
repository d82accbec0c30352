"""Running the ingestion process: start it in the sandbox, watch time, output and memory, kill the tree, classify the end."""

from __future__ import annotations

import os
import re
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.sandbox.constants import (BWRAP, CRASH, SETPRIV, INPUT_MOUNT, OK, OUT_OF_MEMORY, OUTPUT_LIMIT, OUTPUT_MOUNT, PRLIMIT,
                                       SANDBOX_UNAVAILABLE, SUBMISSION_MOUNT, TIMEOUT, TOKEN_VAR)
from harness.sandbox.limits import (RLIMIT_MECHANISM, Limits, _Cgroup, _fmt_bytes, _nice_args, _prlimit_args,
                                    _rlimits_preexec, _seccomp_program, _UidLease, memory_slack_bytes)
from harness.sandbox.mounts import (_bwrap_path, _child_env, _data_pipe, _features, _make_world_readable, build_bwrap_argv,
                                    gpu_binds)
from harness.sandbox.probe import _probe



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
    memory_mechanism: str = "none"  # "cgroup v2", "cgroup v1", RLIMIT_MECHANISM or "none"

    @property
    def ok(self) -> bool:
        return self.status == OK

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr.rstrip("\n").splitlines()[-lines:])


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
    parent, version, _why = _Cgroup.find()
    if parent is not None:
        try:
            return _Cgroup.create(parent, limits, version), None, f"cgroup v{version}"
        except OSError:
            pass
    if gpu:
        # CUDA maps large writable regions; without a cgroup, host memory is left unlimited.
        return None, None, "none"
    return None, int(limits.memory_bytes) + memory_slack_bytes(), RLIMIT_MECHANISM


def _cgroup_wrap(cg: _Cgroup | None, cmd: list[str]) -> list[str]:
    if cg is None:
        return cmd
    # The shell moves itself into the cgroup, then execs: every descendant is born inside it.
    # setpriv first asks for SIGKILL should the grader die (kept across the execs), closing the window
    # between the spawn and bubblewrap's own --die-with-parent in which a killed grader left a sandbox.
    return [SETPRIV, "--pdeathsig", "KILL", "/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"',
            str(cg.path / "cgroup.procs"), *cmd]


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
        prog = _seccomp_program(block_memfd=mechanism == RLIMIT_MECHANISM)
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
    scratch = tempfile.mkdtemp(prefix=f"harness-nosandbox-{os.getpid()}-")  # pid: swept (sweep.py) if killed
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


def _supervise(cmd, *, env, cwd, pass_fds, limits, output_dir, cgroup, token, isolation,
               sandboxed, preexec=None) -> SandboxResult:
    start = time.monotonic()
    try:
        # No preexec_fn (unless prlimit is missing): the child is then started without running
        # pthread_atfork handlers, which can deadlock against BLAS busy in another thread.
        proc = subprocess.Popen(_nice_args() + list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=cwd, pass_fds=pass_fds,
                                start_new_session=True, preexec_fn=preexec, close_fds=True)
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
