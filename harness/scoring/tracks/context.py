"""What the scoring side knows while grading one track of one submission."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
        """The training images this profile uses: all 60k, or a fixed seeded subset for --quick."""
        n = len(self.mnist.train_x)
        if not self.quick:
            return np.arange(n)
        k = int(self.competition["quick"]["train_subset"])
        rng = np.random.default_rng(int(self.competition["split_seed"]))
        return np.sort(rng.permutation(n)[:k])


def save_inputs(input_dir: Path, **arrays: np.ndarray) -> None:
    for name, a in arrays.items():
        np.save(Path(input_dir) / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
