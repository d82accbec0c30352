"""Reading what crosses back from the ingestion process: untrusted files, validated before scoring.

Each file is opened without following links, must be a regular file under a size cap, is loaded
with ``allow_pickle=False`` and checked for dtype, exact shape, finite values and range.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np

MAX_ARRAY_BYTES = 512 << 20
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32             # the harness's own files nest 3 deep
MAX_NPZ_MEMBERS = 10_000        # a Chainer model has tens of parameter arrays
MAX_INFLATE_RATIO = 1100        # deflate cannot inflate more than ~1032:1; a claim beyond it is false


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


def json_depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_json(folder: Path, name: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """``folder/name`` as a JSON object of at most ``max_bytes``, nested at most ``max_depth`` deep.
    Deeper nesting than the parser can recurse (8,000 '[') is refused too, as InvalidOutput."""
    data = read_bytes(folder, name, max_bytes)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOutput(f"{name}: not valid JSON ({str(exc)[:200]})")
    except RecursionError:
        raise InvalidOutput(f"{name}: JSON nested too deeply (more than the {max_depth} levels allowed)")
    if not isinstance(value, dict):
        raise InvalidOutput(f"{name}: expected a JSON object")
    depth = json_depth(value)
    if depth > max_depth:
        raise InvalidOutput(f"{name}: JSON nested {depth} deep, more than the {max_depth} levels allowed")
    return value


def zip_member_count(data: bytes, name: str) -> int:
    """The member count a zip archive declares in its end-of-central-directory record (zip64 too),
    read from the last bytes alone, before any member is listed."""
    tail = data[-(0xFFFF + 22):]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise InvalidOutput(f"{name}: not a zip archive (.npz) (no end-of-central-directory record)")
    count = struct.unpack_from("<H", tail, at + 10)[0]
    if count == 0xFFFF:  # zip64: the real count is in the zip64 record the locator points to
        start = len(data) - len(tail) + at
        loc = data[start - 20:start]
        if len(loc) == 20 and loc[:4] == b"PK\x06\x07":
            offset = struct.unpack_from("<Q", loc, 8)[0]
            rec = data[offset:offset + 56]
            if len(rec) == 56 and rec[:4] == b"PK\x06\x06":
                count = struct.unpack_from("<Q", rec, 32)[0]
    return int(count)


def count_npz_params(folder: Path, name: str, max_bytes: int = MAX_ARRAY_BYTES,
                     max_members: int = MAX_NPZ_MEMBERS) -> int:
    """Number of scalars in the arrays of ``folder/name`` (an .npz), from the .npy headers alone.

    Bounded before anything is listed or opened: the file's size, then the member count declared in
    the end-of-central-directory record (an archive listing millions of members is refused in
    milliseconds). Each member's header must agree with the bytes stored for it: non-negative
    dimensions, a size the member's (uncompressed) length holds exactly, and no more bytes than the
    archive could inflate to. So params cannot be negative or absurd, whoever rewrote the file.
    Only each member's header is read, so a compressed member that would inflate to gigabytes
    costs nothing here.
    """
    data = read_bytes(folder, name, max_bytes)
    members = zip_member_count(data, name)
    if members > max_members:
        raise InvalidOutput(f"{name}: the archive lists {members:,} members, more than the {max_members:,} "
                            f"allowed (a model's parameters are tens of arrays)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:
        raise InvalidOutput(f"{name}: not a readable .npz archive ({type(exc).__name__}: {str(exc)[:200]})")
    infos = zf.infolist()
    if len(infos) > max_members:
        raise InvalidOutput(f"{name}: the archive lists {len(infos):,} members, more than the "
                            f"{max_members:,} allowed")
    declared = sum(i.file_size for i in infos)
    if declared > MAX_INFLATE_RATIO * len(data) + (64 << 10) * len(infos):
        raise InvalidOutput(f"{name}: its members claim {declared:,} bytes, more than {len(data):,} "
                            f"bytes of archive can hold")
    total = 0
    for info in infos:
        member = info.filename[:100]
        try:
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)(f)
                header_len = f.tell()
        except Exception as exc:
            raise InvalidOutput(f"{name}: member '{member}' is not a .npy array "
                                f"({type(exc).__name__}: {str(exc)[:200]})")
        shape, _, dtype = header
        if dtype.kind not in "biufc" or dtype.itemsize == 0:
            raise InvalidOutput(f"{name}: member '{member}' has dtype {str(dtype)[:40]}, expected numbers")
        if any(d < 0 for d in shape):
            raise InvalidOutput(f"{name}: member '{member}' declares shape {str(shape)[:100]}, with a negative "
                                f"dimension; save real arrays (chainer.serializers.save_npz or numpy.savez)")
        count = 1
        for d in shape:
            count *= int(d)  # Python ints: no overflow
        if count * dtype.itemsize + header_len != info.file_size:
            raise InvalidOutput(f"{name}: member '{member}' declares shape {str(shape)[:100]} of {dtype}, "
                                f"{count * dtype.itemsize:,} bytes, but stores {info.file_size - header_len:,}")
        total += count
    return total
