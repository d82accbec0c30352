"""The reference classifier of the generate track: integrity-checked loading and inference.

Scoring side only: this module never imports student code. The weights file
``reference_classifier.npz`` is produced by ``scripts/train_reference_classifier.py`` (trained on
the 60,000 training images only) and is refused unless its SHA-256 equals
:data:`REFERENCE_SHA256`. It is read with ``numpy.load(allow_pickle=False)`` and
``chainer.serializers.NpzDeserializer``; never with ``chainer.serializers.load_npz``.

Public functions:

- :func:`load_reference` -> the :class:`ReferenceClassifier` (checked, loaded once per process);
- :func:`predict` ``(N,1,28,28) float32 -> (probs (N,10), features (N,128))`` in float64, in
  evaluation mode, by the plain-NumPy forward pass of :mod:`.numpy_forward` (im2col + one GEMM
  per layer in fixed blocks: bitwise the same features whatever the batch size or order);
  ``probs`` is the classifier's own softmax (no temperature);
- :func:`predict_chainer`: the same through Chainer's network (the check of the NumPy pass);
- :func:`test_features` / :func:`test_feature_statistics`: the 10k test set through the network,
  computed once and cached in ``data.cache_dir()`` keyed by the weights' SHA-256.

The classifier: conv5x5(32)-BN-ReLU-pool, conv5x5(64)-BN-ReLU-pool, fc128-BN-ReLU (the
features), fc10; 99.46 % test accuracy (``harness/scoring/reference_classifier/model.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness import data
from harness.scoring.reference_classifier.numpy_forward import FEATURE_SIZE, NumpyReference

if TYPE_CHECKING:
    import chainer

    from harness.scoring.reference_classifier.model import ReferenceClassifier

__all__ = [
    "REFERENCE_SHA256",
    "WEIGHTS_PATH",
    "FEATURE_SIZE",
    "ReferenceClassifier",
    "ReferenceIntegrityError",
    "load_reference",
    "predict",
    "predict_chainer",
    "test_features",
    "test_feature_statistics",
    "save_params_npz",
]

#: SHA-256 of the shipped ``reference_classifier.npz`` (printed by the training script).
REFERENCE_SHA256 = "17d95c5d09a1d781afb4df70d6c61e80d6246b798ed92a79b620fc77b5e74726"
WEIGHTS_PATH = Path(__file__).resolve().parent / "reference_classifier.npz"
#: Bump when the cached test-set arrays change meaning (layout, preprocessing).
#: v2: features from the NumPy forward pass (was Chainer's, batch-dependent in the last bits).
#: v3: the NumPy pass with pooled-window GEMMs (same features up to float32 rounding).
_CACHE_VERSION = 3
FEATURES_VERSION = _CACHE_VERSION  #: part of every cache key derived from the test features
_PREDICT_BATCH = 100  # predict_chainer's batch
_PREDICT_THREADS = min(4, os.cpu_count() or 1)


def __getattr__(name: str):
    # Chainer (about 0.4 s to import) is needed only to train, load into Chainer or check against
    # Chainer; scoring runs the NumPy pass, so the network class is imported on first use.
    if name == "ReferenceClassifier":
        from harness.scoring.reference_classifier.model import ReferenceClassifier

        return ReferenceClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _chainer():
    from harness.chainer_env import chainer

    return chainer


class ReferenceIntegrityError(RuntimeError):
    """The reference weights are missing or are not the file the harness was released with."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_params_npz(model: "chainer.Link", path: str | os.PathLike) -> str:
    """Write ``model``'s parameters and persistent values as a byte-reproducible compressed npz.

    The keys are those of ``chainer.serializers.save_npz`` (so ``NpzDeserializer`` reads it),
    but zip entries carry a fixed timestamp and a sorted order, so the same weights always give
    the same file and the same SHA-256 (``numpy.savez_compressed`` stamps the current time).
    Returns the SHA-256 of the written file.
    """
    ser = _chainer().serializers.DictionarySerializer()
    ser.save(model)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(ser.target):
            value = np.asarray(ser.target[key])
            if value.dtype.kind == "f":
                value = value.astype(np.float32)
            buf = io.BytesIO()
            # copy(order="C"), not ascontiguousarray: that turns 0-d scalars (BN's counter N)
            # into shape (1,), which Chainer then reads back with a NumPy deprecation warning.
            np.lib.format.write_array(buf, value.copy(order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)
    return sha256_file(path)


_model_cache: dict[tuple[str, str], "ReferenceClassifier"] = {}


def load_reference(path: str | os.PathLike | None = None, sha256: str | None = None) -> "ReferenceClassifier":
    """Load the reference classifier after checking the file's SHA-256.

    Args:
        path: the weights file; default the shipped ``reference_classifier.npz``.
        sha256: the expected SHA-256; default :data:`REFERENCE_SHA256` (the check is never
            skipped: the training script passes the hash of the file it just wrote).

    Raises:
        ReferenceIntegrityError: the file is missing, differs from the expected SHA-256, or does
            not hold the reference architecture's parameters.
    """
    path = Path(path) if path is not None else WEIGHTS_PATH
    sha256 = sha256 or REFERENCE_SHA256
    blob = _checked_weights(path, sha256)
    key = (str(path), sha256)
    if key in _model_cache:
        return _model_cache[key]
    from harness.scoring.reference_classifier.model import ReferenceClassifier

    chainer = _chainer()
    model = ReferenceClassifier()
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            chainer.serializers.NpzDeserializer(npz, strict=True).load(model)
    except Exception as exc:
        raise ReferenceIntegrityError(f"{path}: not a reference classifier weights file ({type(exc).__name__}: {exc})") from exc
    _model_cache[key] = model
    return model


def _checked_weights(path: Path, sha256: str) -> bytes:
    """The weights file's bytes, after checking them against ``sha256`` (hash and parse the same bytes)."""
    if not path.is_file():
        raise ReferenceIntegrityError(
            f"{path}: reference classifier weights are missing; reinstall the harness or run "
            f"`python scripts/train_reference_classifier.py`"
        )
    blob = path.read_bytes()
    found = hashlib.sha256(blob).hexdigest()
    if found != sha256:
        raise ReferenceIntegrityError(
            f"{path}: SHA-256 {found} does not match the reference classifier this harness "
            f"was released with ({sha256}); the file was modified or replaced. Restore it from "
            f"the repository (git checkout -- {path.name}) or reinstall the harness"
        )
    return blob


_numpy_cache: dict[int, NumpyReference] = {}


def _numpy_reference(model: "ReferenceClassifier | None" = None) -> NumpyReference:
    """The NumPy forward pass of ``model`` (default: the checked shipped weights, read straight from
    the npz, whose keys are the model's parameter paths: no Chainer needed to score), built once."""
    if model is None:
        if None not in _numpy_cache:
            blob = _checked_weights(WEIGHTS_PATH, REFERENCE_SHA256)
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                _numpy_cache[None] = NumpyReference({k: npz[k] for k in npz.files})
        return _numpy_cache[None]
    found = _numpy_cache.get(id(model))
    if found is None or found.source is not model:
        ser = _chainer().serializers.DictionarySerializer()
        ser.save(model)
        found = NumpyReference({k: np.asarray(v) for k, v in ser.target.items()})
        found.source = model
        _numpy_cache[id(model)] = found
    return found


def _as_images(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"images must have shape (N, 1, 28, 28), found {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _softmax64(logits: np.ndarray) -> np.ndarray:
    """The classifier's own softmax (no temperature), in float64, row-wise."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_raw(images: np.ndarray, model: "ReferenceClassifier | None" = None,
                batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass in evaluation mode, plain NumPy: (logits (N,10) float32, features (N,128) float32).

    ``batch_size`` is accepted for compatibility and ignored: the pass always runs in blocks of
    :data:`numpy_forward.BLOCK` images, so the result is bitwise independent of it and of order.
    """
    return _numpy_reference(model).forward(_as_images(images))


def predict_chainer(images: np.ndarray, model: "ReferenceClassifier | None" = None,
                    batch_size: int = _PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The same forward pass through Chainer's network: (logits, features) float32.

    Slower (Chainer's CPU convolution) and dependent on ``batch_size`` in the last bits; kept as
    the check of :func:`predict_raw` (features within 2e-5, identical predicted classes).
    """
    chainer = _chainer()
    x = _as_images(images)
    model = model if model is not None else load_reference()
    n = len(x)
    logits = np.empty((n, 10), dtype=np.float32)
    feats = np.empty((n, FEATURE_SIZE), dtype=np.float32)

    def run(i: int) -> None:
        # Chainer's configuration is thread-local: set it in the thread that computes.
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            h, y = model.features_and_logits(x[i:i + batch_size])
        feats[i:i + batch_size] = h.array
        logits[i:i + batch_size] = y.array

    starts = range(0, n, batch_size)
    threads = min(_PREDICT_THREADS, len(starts))
    if threads <= 1:
        for i in starts:
            run(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, starts))
    return logits, feats


def predict(images: np.ndarray, model: "ReferenceClassifier | None" = None,
            batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and penultimate features of the reference classifier.

    Args:
        images: float32 (N, 1, 28, 28), pixels in [0, 1] (as ``data.to_images``).
        model: a loaded classifier; default :func:`load_reference`.
        batch_size: ignored (the result never depends on it; see :func:`predict_raw`).

    Returns:
        probs: float64 (N, 10), the classifier's own ``softmax(logits)`` (rows sum to 1).
        features: float64 (N, 128), the post-ReLU penultimate activations.
    """
    logits, feats = predict_raw(images, model, batch_size)
    return _softmax64(logits), feats.astype(np.float64)


def _test_cache_path(sha: str) -> Path:
    return data.cache_dir() / f"reference-{sha[:16]}-v{_CACHE_VERSION}-test.npz"


_test_cache: dict[str, dict[str, np.ndarray]] = {}


def _test_arrays() -> dict[str, np.ndarray]:
    """logits, features (float32) of the 10k test images, and their mu/sigma (float64); cached."""
    sha = REFERENCE_SHA256
    if sha in _test_cache:
        return _test_cache[sha]
    def compute() -> dict[str, np.ndarray]:
        m = data.load_or_prepare()
        logits, feats = predict_raw(data.to_images(m.test_x), load_reference())
        f64 = feats.astype(np.float64)
        return {"logits": logits, "features": feats, "mu": f64.mean(axis=0), "sigma": np.cov(f64, rowvar=False)}

    arrays = data.cached_arrays(_test_cache_path(sha).name, compute,
                                {"logits": (10000, 10), "features": (10000, FEATURE_SIZE),
                                 "mu": (FEATURE_SIZE,), "sigma": (FEATURE_SIZE, FEATURE_SIZE)})
    _test_cache[sha] = arrays
    return arrays


def test_features() -> tuple[np.ndarray, np.ndarray]:
    """(probs (10000,10), features (10000,128)) of the canonical test images, float64, cached."""
    a = _test_arrays()
    return _softmax64(a["logits"]), a["features"].astype(np.float64)


def test_feature_statistics() -> tuple[np.ndarray, np.ndarray]:
    """(mu (128,), sigma (128,128)) float64 of the test-set features, the ``fcd`` reference.

    Computed once per weights file and cached in ``data.cache_dir()`` (keyed by its SHA-256).
    """
    a = _test_arrays()
    return a["mu"].copy(), a["sigma"].copy()


# pytest would collect the module-level test_* names when imported into a test module.
test_features.__test__ = False  # type: ignore[attr-defined]
test_feature_statistics.__test__ = False  # type: ignore[attr-defined]
