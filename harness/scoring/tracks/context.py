"""What the scoring side knows while grading one track of one submission."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.competition import Competition
from harness.data import Mnist


@dataclass
class ScoringContext:
    mnist: Mnist
    competition: Competition
    quick: bool
    seed: int
    artifacts_dir: Path  # where scorer-made files (sample grids, curves) for this run are kept
    extra: dict = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return "quick" if self.quick else "full"

    def train_indices(self) -> np.ndarray:
        """The training images this profile uses: all 60k, or a fixed seeded subset for --quick
        (computed once per context)."""
        if "train_indices" not in self.extra:
            n = len(self.mnist.train_x)
            self.extra["train_indices"] = (seeded_subset(n, int(self.competition["quick"]["train_subset"]),
                                                         int(self.competition["split_seed"]))
                                           if self.quick else np.arange(n))
        return self.extra["train_indices"]

    def train_rows(self, array: np.ndarray) -> np.ndarray:
        """``array`` (one row per training image) cut to this profile's training images: the array
        itself in the full profile (no 47 MB copy of the mapped cache before saving it), a copy of the
        subset's rows under --quick."""
        return array[self.train_indices()] if self.quick else array


def seeded_subset(n: int, k: int, seed: int) -> np.ndarray:
    """A fixed subset of k of range(n), sorted: the first k of a permutation seeded by ``seed``."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def save_inputs(input_dir: Path, **arrays: np.ndarray) -> None:
    for name, a in arrays.items():
        np.save(Path(input_dir) / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)


@dataclass(frozen=True)
class IngestionJob:
    """One ingestion process of a track: its name (``course``, ``digit3``; shown in logs and messages),
    what it receives, and the extra job settings it runs with.

    ``write_inputs(input_dir)`` saves this job's arrays, and nothing else, into its own input folder.
    A scorer module that declares ``jobs(ctx) -> list[IngestionJob]`` is scored by
    ``score(ctx, outputs_by_job, meta_by_job)`` (both dicts keyed by job name); one without runs its
    ``write_inputs(ctx, input_dir)`` as a single job and is scored by ``score(ctx, output_dir, meta)``.
    """

    name: str
    write_inputs: Callable[[Path], None]
    extra: dict = field(default_factory=dict)
    label: str = ""  # how logs name the model (``digit 3``); the name if empty

    @property
    def title(self) -> str:
        return self.label or self.name


def jobs_of(module, ctx: ScoringContext, track: str) -> tuple[list[IngestionJob], bool]:
    """The ingestion jobs of a scorer module, and whether it declared them (``jobs(ctx)``) rather than
    being one job (``write_inputs(ctx, input_dir)``, named after the track)."""
    if callable(getattr(module, "jobs", None)):
        jobs = list(module.jobs(ctx))
        if not jobs or len({j.name for j in jobs}) != len(jobs):
            raise ValueError(f"{module.__name__}.jobs(): expected distinct job names, found {[j.name for j in jobs]}")
        return jobs, True
    return [IngestionJob(track, lambda d: module.write_inputs(ctx, d))], False
