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

How the sandbox is built :

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
``prlimit`` inside the sandbox; niceness through ``nice`` (no preexec_fn: the child starts without
pthread_atfork handlers, which deadlocked against OpenBLAS busy in another grading thread). Memory
through a cgroup the harness creates per run: v2 (memory.max, memory.swap.max=0, pids.max) where
the tree is delegated (``HARNESS_CGROUP=/sys/fs/cgroup/<dir>``, or our own cgroup when memory can be
enabled in its subtree_control), else v1 (memory.limit_in_bytes, memory.memsw.limit_in_bytes) where we
may create children (root, or ``HARNESS_CGROUP_V1``); ``HARNESS_CGROUP=off`` refuses both. Without a
cgroup: RLIMIT_DATA = memory_bytes + slack, RLIMIT_AS = that + 256 MiB + 64 MiB per CPU, and
memfd_create refused by the seccomp filter (memfd pages count against no rlimit); per process, not
per tree. ``memory_mechanism()`` names the one in force. With GPUs and no cgroup, host memory is
not limited (CUDA needs huge mappings). Only a runtime copy of the harness package (``__init__``,
``compat``, ``chainer_env``, ``ingestion``) is bound, at the package's path: the scoring code and the
reference classifier's weights never enter. A size-capped tmpfs /tmp and
/dev/shm, a polled cap on the bytes and files written to /output, capped stdout/stderr pipes read
concurrently, and a wall-clock timeout that kills the whole tree (pid namespace: when bubblewrap's
pid 1 dies every process in it dies, setsid/double-forked daemons included). A seccomp filter
refuses new user namespaces, keyrings, bpf, userfaultfd, perf_event_open and io_uring.

Rooms: ``constants`` (mounts, statuses), ``copy`` (the submission into the work folder), ``probe``
(availability and mode), ``mounts`` (the bwrap command line), ``limits`` (rlimits, seccomp, uid
leases, cgroups), ``supervise`` (run, watch, kill, classify).
"""

from harness.sandbox.constants import *  # noqa: F401,F403
from harness.sandbox.copy import CopySummary, SubmissionCopyError, copy_submission  # noqa: F401
from harness.sandbox.limits import Limits, memory_mechanism  # noqa: F401
from harness.sandbox.mounts import build_bwrap_argv, gpu_binds  # noqa: F401
from harness.sandbox.probe import sandbox_available, sandbox_mode  # noqa: F401
from harness.sandbox.supervise import SandboxResult, run_ingestion  # noqa: F401
