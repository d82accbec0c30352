"""Whole-class grading: sharding the submissions across machines and GPUs across parallel jobs.

Sharding (``harness grade PATH... --shard K/N``): the submission paths are sorted (as strings, after
dropping duplicates) and shard K takes every N-th one starting at the K-th: ``sorted[K-1::N]``. The
split is deterministic, needs no coordination, covers every path exactly once over K = 1..N, and
balances the shards to within one submission.

GPUs (``--gpus 0,1`` or ``--device @cupy:0,1``): job slot i (the i-th worker of ``--jobs``) always
uses GPU ``gpus[i % len(gpus)]``; with ``--jobs`` equal to the number of GPUs every job has its own
device. The sandbox exposes only that GPU to the ingestion process (CUDA_VISIBLE_DEVICES), where it is
device 0, so the job runs on ``@cupy:0`` inside while the results record the host's ``@cupy:<gpu>``.

Cores (``--jobs N`` on the CPU): each of the N ingestion processes gets ``cores // N`` worker threads
for the fast convolution (:func:`cpu_threads_per_job`), whose results do not depend on them; BLAS
keeps its own thread count, because OpenBLAS's results do depend on it, and a submission must score
the same graded alone or beside others. ``--jobs auto`` (the default of ``harness baselines``) runs
as many jobs as there are cores, submissions, and memory limits that fit in the memory available
(:func:`auto_jobs`). The metrics do not depend on ``--jobs``; only the wall-clock seconds do.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_CUPY = re.compile(r"^@cupy:(\d+(?:\s*,\s*\d+)*)$")


def parse_jobs(text: str) -> int | str:
    """``--jobs``: a positive number, or ``auto`` (:func:`auto_jobs`); argparse-friendly errors."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of parallel jobs (1, 2, ...) or auto")
    return n


def cpus() -> int:
    """The cores this process may use (its affinity mask, e.g. a Slurm allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def auto_jobs(n_submissions: int, memory_limit_bytes: int, gpus: tuple[int, ...] = ()) -> int:
    """``--jobs auto``: one job per GPU on GPUs; on the CPU as many as there are cores, submissions, and
    per-run memory limits (competition.yaml's ``budget.memory_mb``) within the memory available now."""
    if gpus:
        return max(1, min(len(gpus), n_submissions))
    fit = cpus()
    memory = available_memory_bytes()
    if memory and memory_limit_bytes > 0:
        fit = min(fit, memory // memory_limit_bytes)
    return max(1, min(fit, n_submissions))


def cpu_threads_per_job(jobs: int, device: str) -> int | None:
    """Fast-convolution workers of each ingestion process: its share of the cores when several run at
    once on the CPU (None: one job, or GPUs, where the process keeps every core)."""
    if jobs <= 1 or not str(device).startswith("@numpy"):
        return None
    return max(1, cpus() // jobs)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; argparse-friendly errors."""
    m = _SHARD.match(text or "")
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}': expected K/N, e.g. 1/4 (shard K of N, K from 1 to N)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"'{text}': K must lie in 1..N and N be at least 1")
    return k, n


def select_shard(paths, shard: tuple[int, int] | None) -> list[Path]:
    """The paths of shard K of N: ``sorted(set(paths))[K-1::N]``; every path, in the order given, without a shard."""
    if shard is None:
        return [Path(p) for p in paths]
    ordered = [p for _, p in sorted({str(p): Path(p) for p in paths}.items())]
    k, n = shard
    return ordered[k - 1::n]


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> (0, 1): the host GPUs (NVIDIA minor numbers) to spread the jobs over."""
    try:
        gpus = tuple(int(x) for x in str(text).split(",") if x.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected GPU numbers separated by commas, e.g. 0,1") from None
    if not gpus or any(g < 0 for g in gpus):
        raise argparse.ArgumentTypeError(f"'{text}': expected GPU numbers >= 0 separated by commas, e.g. 0,1")
    if len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError(f"'{text}': a GPU is listed twice")
    return gpus


def device_gpus(device: str, gpus: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The host GPUs a grade uses: ``--gpus`` if given, else those named by ``@cupy:N`` or ``@cupy:N,M``."""
    if gpus:
        return tuple(gpus)
    m = _CUPY.match((device or "").replace(" ", ""))
    return parse_gpus(m.group(1)) if m else ()


def gpu_for_slot(slot: int, gpus: tuple[int, ...]) -> int | None:
    """Job slot i -> GPU ``gpus[i % len(gpus)]``; None without GPUs."""
    if not gpus:
        return None
    if slot < 0:
        raise ValueError(f"slot must be >= 0, found {slot}")
    return gpus[slot % len(gpus)]


def options_for_slot(opts, slot: int, gpus: tuple[int, ...] | None = None):
    """The GradeOptions of job slot ``slot``: its own GPU (device ``@cupy:<gpu>``, ``gpu_devices=(gpu,)``).

    Without GPUs (``@numpy``) the options are returned unchanged.
    """
    gpus = device_gpus(opts.device, gpus)
    gpu = gpu_for_slot(slot, gpus)
    if gpu is None:
        return opts
    return dataclasses.replace(opts, device=f"@cupy:{gpu}", gpu_devices=(gpu,))


def ingestion_device(device: str, gpu_devices) -> str:
    """The device as the ingestion process sees it: the sandbox exposes ``gpu_devices`` renumbered from 0."""
    gpu_devices = tuple(int(g) for g in gpu_devices or ())
    m = _CUPY.match((device or "").replace(" ", ""))
    if not gpu_devices or not m:
        return device
    first = int(m.group(1).split(",")[0])
    return f"@cupy:{gpu_devices.index(first)}" if first in gpu_devices else "@cupy:0"
