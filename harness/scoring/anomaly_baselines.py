"""Reference rows for the anomaly track, computed on the scoring side (no student code runs).

Two rows bracket the leaderboard:

- ``pca``: linear reconstruction. A ``sklearn.decomposition.PCA`` with ``PCA_COMPONENTS`` = 32
  components is fit on the training images the grading profile gives students (all 60,000, or
  the 10,000 of ``--quick``, for the course protocol; those of digit d for the one-class protocol)
  and an image's score is its per-pixel mean squared reconstruction error, exactly the default score of a student's autoencoder. The fit uses the
  ``covariance_eigh`` solver (the 784x784 covariance, deterministic, under a second for 60k
  images), so no subset is needed.
- ``random``: uniform random scores from a seeded generator: chance level, AUROC about 0.5.

``reference_rows(config)`` evaluates both on the same cases a submission is graded on.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.decomposition import PCA

from harness import data

from harness.scoring import corruptions
from harness.scoring.metrics.anomaly import anomaly_summary, course_protocol_metrics, oneclass_metrics

PCA_COMPONENTS = 32
DEFAULT_CORRUPTIONS = ("salt", "vbar")
DEFAULT_DIGITS = tuple(range(10))


def _flat(images: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch of images, found shape {a.shape}")
    a = a.reshape(a.shape[0], -1).astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite pixels")
    return a


def fit_pca(train_images: np.ndarray, n_components: int = PCA_COMPONENTS) -> PCA:
    """A PCA of the flattened ``train_images`` (covariance eigendecomposition, deterministic)."""
    x = _flat(train_images, "train_images")
    if not 1 <= n_components <= min(x.shape):
        raise ValueError(f"n_components: must lie in 1..{min(x.shape)} for {x.shape[0]} training images, "
                         f"found {n_components}")
    return PCA(n_components=n_components, svd_solver="covariance_eigh").fit(x)


def reconstruction_scores(pca: PCA, eval_images: np.ndarray) -> np.ndarray:
    """Per-image mean squared reconstruction error (float64 (N,)) of ``eval_images`` under ``pca``."""
    x = _flat(eval_images, "eval_images")
    residual = pca.inverse_transform(pca.transform(x)) - x
    return np.mean(np.square(residual, dtype=np.float64), axis=1)


def pca_scores(train_images: np.ndarray, eval_images: np.ndarray,
               n_components: int = PCA_COMPONENTS) -> np.ndarray:
    """Fit a PCA on ``train_images`` and score ``eval_images`` by mean squared reconstruction error.

    Images are any (N, ...) float arrays (flattened per image), typically (N, 1, 28, 28) in [0, 1].
    Returns float64 (N_eval,), higher = more anomalous.
    """
    return reconstruction_scores(fit_pca(train_images, n_components), eval_images)


def random_scores(n: int, seed: int | Sequence[int]) -> np.ndarray:
    """``n`` uniform scores in [0, 1) from ``numpy.random.default_rng(seed)``: the chance row."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, found {n!r}")
    return np.random.default_rng(seed).random(int(n))


def _seed_for(seed: int, label: str) -> list[int]:
    return [int(seed), zlib.crc32(label.encode("utf-8"))]


def _setting(config: Any, key: str, default):
    """``key`` from the ``anomaly`` section of ``config``, else from its top level, else ``default``."""
    if config is None:
        return default
    raw = getattr(config, "raw", config)  # a harness.competition.Competition holds its mapping in .raw
    if isinstance(raw, Mapping):
        section = raw.get("anomaly")
        if isinstance(section, Mapping) and key in section:
            return section[key]
        return raw.get(key, default)
    return getattr(config, key, default)


def read_config(config: Any = None) -> dict[str, Any]:
    """The settings ``reference_rows`` uses, with defaults, checked.

    ``config`` is a ``harness.competition.Competition``, the mapping of a whole ``competition.yaml``
    (a key is looked up in its ``anomaly:`` section, then at the top level, where ``seed`` lives),
    the ``anomaly:`` section alone, or an object with these attributes; other keys are ignored:
    ``corruptions`` (list of kinds, default salt, vbar), ``oneclass_digits`` (default 0..9; empty
    skips the protocol), ``seed`` (default 0), ``pca_components`` (default 32).
    """
    kinds = list(_setting(config, "corruptions", DEFAULT_CORRUPTIONS) or [])
    for kind in kinds:
        corruptions.check_kind(kind)
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"corruptions: a kind is listed twice in {kinds}")
    digits = list(_setting(config, "oneclass_digits", DEFAULT_DIGITS) or [])
    for d in digits:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 9:
            raise ValueError(f"oneclass_digits: {d!r} is not a digit 0..9")
    if len(set(digits)) != len(digits):
        raise ValueError(f"oneclass_digits: a digit is listed twice in {digits}")
    if not kinds and not digits:
        raise ValueError("corruptions and oneclass_digits are both empty: no anomaly case to score")
    seed = corruptions.check_seed(_setting(config, "seed", 0))
    components = _setting(config, "pca_components", PCA_COMPONENTS)
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ValueError(f"pca_components: expected a positive integer, found {components!r}")
    return {"corruptions": kinds, "oneclass_digits": sorted(int(d) for d in digits), "seed": seed,
            "pca_components": int(components)}


def reference_rows(config: Any = None, *, mnist: data.Mnist | None = None, limit: int | None = None,
                   train_indices: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """The ``pca`` and ``random`` reference rows' anomaly metrics under ``config`` (see ``read_config``).

    Course protocol: the clean test images against ``corruptions.corrupt(test, kind, seed)`` for
    each configured kind, exactly the images a submission scores. One-class protocol: per digit,
    a PCA fit on that digit's training images scores the test set. ``limit`` keeps only the first
    ``limit`` test images (quick runs, tests). ``train_indices`` picks the training images the PCA
    is fit on (the ones the grading profile gives students: 10k under ``--quick``); all 60k if None,
    per digit the ones of that digit among them. Each row is the metrics dict of a graded submission:
    ``auroc_<kind>``, ``auprc_<kind>``, ``auroc_digit<d>``, ``auroc_oneclass_mean``, ``auroc``.
    """
    cfg = read_config(config)
    m = data.load_or_prepare() if mnist is None else mnist
    test_x, test_y = m.test_x, m.test_y
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 2:
            raise ValueError(f"limit: expected an integer >= 2, found {limit!r}")
        test_x, test_y = test_x[:limit], test_y[:limit]
    test = data.to_images(test_x)
    train_x, train_y = m.train_x, m.train_y
    if train_indices is not None:
        train_x, train_y = train_x[train_indices], train_y[train_indices]
    n, seed, k = test.shape[0], cfg["seed"], cfg["pca_components"]
    pca_row: dict[str, float] = {}
    random_row: dict[str, float] = {}

    if cfg["corruptions"]:
        pca = fit_pca(data.to_images(train_x), k)
        corrupted = {kind: corruptions.corrupt(test, kind, seed) for kind in cfg["corruptions"]}
        pca_row.update(course_protocol_metrics(
            reconstruction_scores(pca, test),
            {kind: reconstruction_scores(pca, images) for kind, images in corrupted.items()}))
        random_row.update(course_protocol_metrics(
            random_scores(n, _seed_for(seed, "random/clean")),
            {kind: random_scores(n, _seed_for(seed, f"random/{kind}")) for kind in cfg["corruptions"]}))

    if cfg["oneclass_digits"]:
        pca_by_digit = {d: pca_scores(data.to_images(train_x[train_y == d]), test, k)
                        for d in cfg["oneclass_digits"]}
        pca_row.update(oneclass_metrics(pca_by_digit, test_y))
        random_row.update(oneclass_metrics(
            {d: random_scores(n, _seed_for(seed, f"random/digit{d}")) for d in cfg["oneclass_digits"]}, test_y))

    return {"pca": anomaly_summary(pca_row), "random": anomaly_summary(random_row)}
