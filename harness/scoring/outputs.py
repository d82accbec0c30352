"""Reading what crosses back from the ingestion process: untrusted files, validated before scoring.

Each file is opened without following links, must be a regular file under a size cap, is loaded
with ``allow_pickle=False`` and checked for dtype, exact shape, finite values and range.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

MAX_ARRAY_BYTES = 512 << 20
MAX_JSON_BYTES = 1 << 20


class InvalidOutput(ValueError):
    """The ingestion process returned something unusable (status INVALID_OUTPUT)."""


def read_bytes(folder: Path, name: str, max_bytes: int) -> bytes:
    """Bytes of ``folder/name`` if it is a regular file (not a link, FIFO or device) within ``max_bytes``."""
    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidOutput(f"{name}: missing (the submission stopped before writing it)")
    except OSError as exc:
        raise InvalidOutput(f"{name}: cannot be opened safely ({exc.strerror}; links are refused)")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidOutput(f"{name}: not a regular file")
        if st.st_size > max_bytes:
            raise InvalidOutput(f"{name}: {st.st_size} bytes, more than the {max_bytes} allowed")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidOutput(f"{name}: more than the {max_bytes} bytes allowed")
    return data


def read_array(folder: Path, name: str, shape: tuple, dtype=np.float32, lo: float | None = None,
               hi: float | None = None, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Load ``folder/name`` as a validated array of exactly ``shape`` and ``dtype``, finite, in [lo, hi]."""
    data = read_bytes(folder, name, max_bytes)
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InvalidOutput(f"{name}: not a plain .npy array ({exc})")
    except Exception as exc:
        raise InvalidOutput(f"{name}: unreadable ({type(exc).__name__}: {exc})")
    if not isinstance(a, np.ndarray):
        raise InvalidOutput(f"{name}: expected one .npy array, found {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise InvalidOutput(f"{name}: dtype {a.dtype}, expected {np.dtype(dtype)}")
    if a.shape != tuple(shape):
        raise InvalidOutput(f"{name}: shape {a.shape}, expected {tuple(shape)}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            raise InvalidOutput(f"{name}: {int(bad.sum())} NaN or infinite values (first at index "
                                f"{tuple(int(i) for i in np.argwhere(bad)[0])})")
    if lo is not None and a.size and a.min() < lo:
        raise InvalidOutput(f"{name}: minimum {a.min():.4g} is below {lo}")
    if hi is not None and a.size and a.max() > hi:
        raise InvalidOutput(f"{name}: maximum {a.max():.4g} is above {hi}")
    return a


def read_json(folder: Path, name: str, max_bytes: int = MAX_JSON_BYTES) -> dict:
    data = read_bytes(folder, name, max_bytes)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOutput(f"{name}: not valid JSON ({exc})")
    if not isinstance(value, dict):
        raise InvalidOutput(f"{name}: expected a JSON object")
    return value


def count_npz_params(folder: Path, name: str, max_bytes: int = MAX_ARRAY_BYTES) -> int:
    """Number of scalars in the arrays of ``folder/name`` (an .npz), from the .npy headers alone.

    Only each member's header is read, so a compressed member that would inflate to gigabytes
    costs nothing here.
    """
    data = read_bytes(folder, name, max_bytes)
    try:
        total = 0
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)(f)
                    total += int(np.prod(header[0], dtype=np.int64))
        return total
    except Exception as exc:
        raise InvalidOutput(f"{name}: unreadable parameter file ({type(exc).__name__}: {exc})")
