"""Running the ingestion process. PLACEHOLDER: plain subprocess, no isolation (issue 5 replaces it).

Interface (kept by the real sandbox):
  run_ingestion(argv, *, submission_dir, input_dir, output_dir, limits, isolation, env) -> SandboxResult
Inside the child, the submission is at SUBMISSION_MOUNT, inputs at INPUT_MOUNT (read-only) and
the output folder at OUTPUT_MOUNT (writable, empty). argv may use those paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SUBMISSION_MOUNT = "/submission"
INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"


@dataclass
class Limits:
    wall_seconds: float = 3600.0
    cpu_seconds: float = 7200.0
    memory_bytes: int = 8 << 30
    max_processes: int = 512
    max_file_bytes: int = 1 << 30
    max_open_files: int = 1024
    max_output_bytes: int = 1 << 20
    tmp_bytes: int = 512 << 20


@dataclass
class SandboxResult:
    status: str  # OK, CRASH, TIMEOUT, OUT_OF_MEMORY, OUTPUT_LIMIT, SANDBOX_UNAVAILABLE
    returncode: int | None
    stdout: str  # captured, capped
    stderr: str  # captured, capped
    wall_seconds: float
    isolation: str  # "bubblewrap" or "none"
    message: str = ""


def run_ingestion(argv, *, submission_dir: Path, input_dir: Path, output_dir: Path,
                  limits: Limits, isolation: str = "none", env: dict | None = None) -> SandboxResult:
    mapping = {SUBMISSION_MOUNT: str(submission_dir), INPUT_MOUNT: str(input_dir), OUTPUT_MOUNT: str(output_dir)}

    def translate(a: str) -> str:
        for mount, real in mapping.items():
            if a == mount or a.startswith(mount + "/"):
                return real + a[len(mount):]
        return a

    argv = [translate(a) for a in argv]
    child_env = dict(env or {})
    child_env.update({"HARNESS_MOUNT_" + k.strip("/").upper(): v for k, v in mapping.items()})
    start = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, timeout=limits.wall_seconds, env={**os.environ, **child_env})
    except subprocess.TimeoutExpired as e:
        return SandboxResult("TIMEOUT", None, "", (e.stderr or b"").decode(errors="replace")[-4000:],
                             time.monotonic() - start, "none", f"exceeded {limits.wall_seconds:.0f} s")
    status = "OK" if p.returncode == 0 else "CRASH"
    return SandboxResult(status, p.returncode, p.stdout.decode(errors="replace")[-limits.max_output_bytes:],
                         p.stderr.decode(errors="replace")[-limits.max_output_bytes:],
                         time.monotonic() - start, "none")
