"""Seeded corruptions of clean test images: the anomalies of the anomaly track's *course* protocol.

Every corruption is a pure function ``fn(images, rng) -> corrupted copy`` over float32 images
(N, 1, 28, 28) in [0, 1]; it never modifies its input and always returns float32 in [0, 1].
Rows and columns are 0-based, as in NumPy indexing.

| kind       | what it does (per image)                                                          |
| ---------- | --------------------------------------------------------------------------------- |
| `salt`     | 8 distinct pixels (``SALT_PIXELS`` = round(1% of 784)), drawn from the rng,        |
|            | inverted: x -> 1 - x                                                              |
| `vbar`     | columns 15-16 set to 1 (a vertical bar just right of centre)                      |
| `hbar`     | rows 13-14 set to 1 (a horizontal bar through the centre)                         |
| `gaussian` | additive Gaussian noise, mean 0, standard deviation ``GAUSSIAN_SIGMA`` = 0.3,     |
|            | then clipped to [0, 1]                                                            |
| `patch`    | an 8x8 (``PATCH_SIZE``) block set to 0, centred on the image's centre of mass    |
|            | (the digit's centre) shifted by a seeded offset of -2..2 pixels on each axis       |
|            | (``PATCH_JITTER``), kept inside the image                                         |

``corrupt(images, kind, seed)`` draws the rng from ``numpy.random.SeedSequence([seed,
crc32(kind)])`` (PCG64): the same seed and kind give the same images on every run and platform,
different kinds get independent streams. NumPy reserves the right to change the streams of
``Generator`` methods between releases, which is one more reason the project pins ``numpy<2``.

``build_course_set`` turns clean images into the one array the ingestion process scores: clean
and corrupted copies shuffled together, so a submission cannot tell an anomaly by the file or the
position it arrives in; ``CourseSet.split`` maps the returned scores back to the protocol.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

IMAGE_SHAPE = (1, 28, 28)
SALT_FRACTION = 0.01
SALT_PIXELS = int(round(SALT_FRACTION * 28 * 28))  # 8 of 784 pixels (1.02%)
VBAR_COLUMNS = (15, 16)
HBAR_ROWS = (13, 14)
GAUSSIAN_SIGMA = 0.3
PATCH_SIZE = 8
PATCH_JITTER = 2

Corruption = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _checked(images: np.ndarray, name: str = "images") -> np.ndarray:
    """A float32 copy of ``images`` after checking shape (N, 1, 28, 28), finiteness and range."""
    a = np.asarray(images)
    if a.ndim != 4 or a.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{name}: expected shape (N, 1, 28, 28), found {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected float32 pixels in [0, 1], found dtype {a.dtype}")
    a = a.astype(np.float32, copy=True)
    if a.size:
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinite pixels")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name}: pixels must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")
    return a


def salt(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert (x -> 1 - x) ``SALT_PIXELS`` distinct, uniformly drawn pixels of each image."""
    out = _checked(images)
    n = out.shape[0]
    flat = out.reshape(n, -1)
    # The SALT_PIXELS smallest of 784 uniform keys: a uniform draw without replacement per image.
    keys = rng.random((n, flat.shape[1]))
    idx = np.argpartition(keys, SALT_PIXELS - 1, axis=1)[:, :SALT_PIXELS]
    rows = np.arange(n)[:, None]
    flat[rows, idx] = np.float32(1.0) - flat[rows, idx]
    return out


def vbar(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Set columns 15-16 to 1 (white vertical bar); ``rng`` is unused."""
    out = _checked(images)
    out[:, :, :, VBAR_COLUMNS[0]:VBAR_COLUMNS[1] + 1] = 1.0
    return out


def hbar(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Set rows 13-14 to 1 (white horizontal bar); ``rng`` is unused."""
    out = _checked(images)
    out[:, :, HBAR_ROWS[0]:HBAR_ROWS[1] + 1, :] = 1.0
    return out


def gaussian(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise with sigma = ``GAUSSIAN_SIGMA`` (0.3) and clip to [0, 1]."""
    out = _checked(images)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(GAUSSIAN_SIGMA)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def patch_origins(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Top-left (row, col) of each image's patch, int (N, 2): see ``patch``."""
    a = np.asarray(images, dtype=np.float64).reshape(-1, 28, 28)
    n = a.shape[0]
    mass = a.sum(axis=(1, 2))
    grid = np.arange(28, dtype=np.float64)
    safe = np.where(mass > 0, mass, 1.0)
    centre = np.stack([(a.sum(axis=2) @ grid) / safe, (a.sum(axis=1) @ grid) / safe], axis=1)
    centre[mass <= 0] = 13.5  # a blank image: the image centre
    jitter = rng.integers(-PATCH_JITTER, PATCH_JITTER + 1, size=(n, 2))
    origin = np.floor(centre + 0.5).astype(np.int64) - PATCH_SIZE // 2 + jitter
    return np.clip(origin, 0, 28 - PATCH_SIZE)


def patch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blank (set to 0) a ``PATCH_SIZE`` x ``PATCH_SIZE`` block over the digit's centre.

    The block is centred on the image's centre of mass (intensity-weighted; the image centre for a
    blank image), shifted by a seeded offset drawn uniformly from -``PATCH_JITTER``..``PATCH_JITTER``
    on each axis, and clipped to lie inside the image. A digit with no ink under the block (a wide
    "0", say) is left unchanged: that case is an anomaly no detector can find.
    """
    out = _checked(images)
    origin = patch_origins(out, rng)
    offsets = np.arange(PATCH_SIZE)
    r = origin[:, 0, None, None] + offsets[None, :, None]
    c = origin[:, 1, None, None] + offsets[None, None, :]
    out[np.arange(out.shape[0])[:, None, None], 0, r, c] = 0.0
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "salt": salt,
    "vbar": vbar,
    "hbar": hbar,
    "gaussian": gaussian,
    "patch": patch,
}


def check_seed(seed: int) -> int:
    """``seed`` as an int; ValueError unless it is a non-negative integer."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, found {seed!r}")
    return int(seed)


def rng_for(kind: str, seed: int) -> np.random.Generator:
    """The generator for ``kind`` under ``seed``: PCG64 from SeedSequence([seed, crc32(kind)])."""
    return np.random.default_rng(np.random.SeedSequence([check_seed(seed), zlib.crc32(kind.encode("utf-8"))]))


def check_kind(kind: str) -> Corruption:
    """The corruption named ``kind``; ValueError naming it and the known kinds otherwise."""
    try:
        return CORRUPTIONS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}") from None


def corrupt(images: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """A corrupted float32 copy of ``images`` (N, 1, 28, 28) in [0, 1], reproducible from ``seed``."""
    fn = check_kind(kind)
    return fn(images, rng_for(kind, seed))


@dataclass(frozen=True)
class CourseSet:
    """The course protocol's evaluation set, shuffled.

    ``images[i]`` is test image ``source_index[i]``, clean when ``source_kind[i] == -1``, else
    corrupted by ``kinds[source_kind[i]]``. Only ``images`` goes to the ingestion process.
    """

    images: np.ndarray
    kinds: tuple[str, ...]
    source_kind: np.ndarray
    source_index: np.ndarray

    def split(self, scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores for ``images`` (M,) -> (clean scores (N,), {kind: scores (N,)}), in test order."""
        s = np.asarray(scores)
        if s.shape != self.source_kind.shape:
            raise ValueError(f"scores: expected shape {self.source_kind.shape}, found {s.shape}")
        n = int(self.source_index.max()) + 1 if self.source_index.size else 0

        def pick(k: int) -> np.ndarray:
            sel = self.source_kind == k
            out = np.empty(n, dtype=s.dtype)
            out[self.source_index[sel]] = s[sel]
            return out

        return pick(-1), {kind: pick(i) for i, kind in enumerate(self.kinds)}


def build_course_set(images: np.ndarray, kinds: Sequence[str], seed: int) -> CourseSet:
    """Clean ``images`` and one corrupted copy per kind, shuffled together by a seeded permutation.

    The corrupted copies are exactly ``corrupt(images, kind, seed)``; the permutation comes from
    ``SeedSequence([seed, crc32("course-set")])``.
    """
    kinds = tuple(kinds)
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds: listed twice in {list(kinds)}")
    for kind in kinds:
        check_kind(kind)
    clean = _checked(images)
    n = clean.shape[0]
    parts = [clean] + [corrupt(clean, kind, seed) for kind in kinds]
    source_kind = np.repeat(np.arange(-1, len(kinds)), n)
    source_index = np.tile(np.arange(n), len(kinds) + 1)
    order = rng_for("course-set", seed).permutation(source_kind.size)
    stacked = np.concatenate(parts)[order]
    return CourseSet(stacked, kinds, source_kind[order], source_index[order])

