"""The competition's configuration (``competition.yaml``): seeds, split, budgets, profiles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness import tracks

TRACKS = tracks.names()  # the built-in tracks; tracks.names() also lists ones registered later
PACKAGED = Path(__file__).with_name("competition.yaml")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Competition:
    path: Path
    raw: dict[str, Any]

    def __getitem__(self, key):
        return self.raw[key]

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])

    def public_mask(self, n_test: int = 10000) -> np.ndarray:
        """Boolean (n_test,): True for the public half of the test set (fixed by ``split_seed``)."""
        rng = np.random.default_rng(int(self.raw["split_seed"]))
        order = rng.permutation(n_test)
        mask = np.zeros(n_test, dtype=bool)
        mask[order[: int(round(n_test * float(self.raw["public_fraction"])))]] = True
        return mask


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """``--config`` > ``$HARNESS_CONFIG`` > ``./competition.yaml`` > the packaged default."""
    if explicit:
        return Path(explicit)
    if os.environ.get("HARNESS_CONFIG"):
        return Path(os.environ["HARNESS_CONFIG"])
    local = Path("competition.yaml")
    return local if local.is_file() else PACKAGED


def _merge(base: dict, override: dict, where: str) -> dict:
    out = dict(base)
    for key, value in override.items():
        per_track = set(base) & set(TRACKS) and key in tracks.names()  # a track folder's own entry
        if key not in base and not per_track:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(base))})")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def load(explicit: str | os.PathLike | None = None) -> Competition:
    """Load the configuration; a course file overrides the packaged defaults key by key."""
    with open(PACKAGED) as f:
        defaults = yaml.safe_load(f)
    path = config_path(explicit)
    if path.resolve() == PACKAGED.resolve():
        return Competition(path, defaults)
    try:
        with open(path) as f:
            override = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(override, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for folder in override.get("tracks") or []:  # track folders, relative to this file
        try:
            tracks.load_folder(path.parent / str(folder))
        except (ValueError, OSError, SyntaxError, ImportError) as exc:
            raise ConfigError(f"{path}: tracks: {exc}") from exc
    return Competition(path, _merge(defaults, override, str(path)))
