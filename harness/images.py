"""Image files the harness writes (scoring side): sample grids of the generate track."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def grid_array(images: np.ndarray, ncols: int = 10, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one uint8 (H, W) array.

    Args:
        images: float (N, 1, 28, 28) or (N, 28, 28) in [0, 1] (values outside are clipped,
            NaN is drawn black), N >= 1.
        ncols: images per row (the last row is filled with ``pad_value``).
        padding: pixels between images and around the border.
        pad_value: grey level (0..255) of the padding; white by default so that MNIST's black
            backgrounds stay apart.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"images must have one channel, found shape {x.shape}")
        x = x[:, 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images must have shape (N, 1, H, W) or (N, H, W) with N >= 1, found {np.shape(images)}")
    if ncols < 1:
        raise ValueError("ncols must be >= 1")
    n, h, w = x.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    pixels = np.rint(np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    out = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y0, x0 = padding + r * (h + padding), padding + c * (w + padding)
        out[y0:y0 + h, x0:x0 + w] = pixels[i]
    return out


def save_grid(images: np.ndarray, path: str | os.PathLike, ncols: int = 10, scale: int = 1) -> Path:
    """Write ``images`` as a PNG grid (grey levels, ``ncols`` per row) to ``path``; returns the path.

    Used for the 100-sample grid of every graded GAN run (10 x 10). ``scale`` > 1 enlarges each
    pixel (nearest neighbour) for viewing. The file is written atomically.
    """
    from PIL import Image

    if scale < 1:
        raise ValueError("scale must be >= 1")
    grid = grid_array(images, ncols)
    if scale > 1:
        grid = np.kron(grid, np.ones((scale, scale), np.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(grid).save(tmp, format="PNG")  # 2-D uint8 is mode "L"
    os.replace(tmp, path)
    return path
