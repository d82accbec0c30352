"""The generate track's metric suite: the reference classifier on the samples, every metric of
:mod:`harness.scoring.metrics.generative`, and the real-data statistics they compare against,
computed once per machine and kept in the data cache (an atomic npz write, :func:`harness.data.cached_arrays`)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from harness import data
from harness.scoring import reference_classifier as reference
from harness.scoring.reference_classifier.numpy_forward import BLOCK
from harness.scoring.metrics.copy_detection import CopyIndex, copy_rate, copy_thresholds
from harness.scoring.metrics.generative import (
    COPY_QUANTILE,
    KID_SEED,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    METRIC_KEYS,
    MIN_CLASS_SHARE,
    NEAREST_K,
    class_entropy,
    classes_covered,
    classifier_score,
    frechet_distance,
    gaussian_statistics,
    kid,
    kid_within_terms,
    kth_neighbour_sq_distances,
    precision_recall_density_coverage,
)

#: Images per part of the forward pass handed to the suite's threads: whole blocks of the NumPy pass
#: (``numpy_forward.BLOCK``), so the features are bitwise those of one call over all the samples.
_PART = 10 * BLOCK
_context: dict[str, object] = {}  # this process's real-data statistics (see _real_context)
_context_lock = threading.Lock()  # --jobs N: graders in threads score at once; the context is built once


def prepare_real_statistics() -> None:
    """Fill the disk caches :func:`generative_metrics` reads (a few tens of seconds, once per
    machine and reference classifier): test-set features and their Gaussian fit and k-NN radii,
    the KID terms of the test subsets, the copy index of the training images and the test
    images' copy scores (its thresholds)."""
    _real_context()
    _real_kid_within(KID_SUBSET_SIZE)


def _real_context() -> dict[str, object]:
    """Everything about the real data the suite reuses: computed once per process, cached on disk.
    Built whole under a lock, then published: a thread never sees half of it."""
    with _context_lock:
        if not _context:
            _context.update(_build_real_context())
    return _context


def _build_real_context() -> dict[str, object]:
    m = data.load_or_prepare()
    probs, feats = reference.test_features()
    mu, sigma = reference.test_feature_statistics()
    sha = f"{reference.REFERENCE_SHA256[:16]}-f{reference.FEATURES_VERSION}"
    radii = data.cached_arrays(
        f"reference-{sha}-test-knn{NEAREST_K}-v2.npz",
        lambda: {"radii_sq": kth_neighbour_sq_distances(feats, NEAREST_K)},
        {"radii_sq": (len(feats),)})["radii_sq"]
    return {"features": feats, "mu": mu, "sigma": sigma, "radii_sq": radii, "kid_within": {}, **_copy_context(m)}


COPY_CACHE_VERSION = "v2"  # bump when CopyIndex's settings or scores change (v2: projections as one GEMM)


def _copy_context(m) -> dict[str, object]:
    """The copy index of the 60k training images (its state cached on disk: a fresh process only
    wraps the arrays) and the two copy thresholds, from the test images' cached copy scores."""
    data_key = data.SHA256["train_x"][:8] + data.SHA256["test_x"][:8]
    train = m.train_x.reshape(-1, 28, 28)
    state = data.cached_arrays(f"copy-index-{data_key}-{COPY_CACHE_VERSION}.npz",
                               lambda: CopyIndex(train).state(), CopyIndex.state_shapes(len(train)))
    index = CopyIndex(train, state=state)

    def test_scores():
        single, pair = index.scores(m.test_x.reshape(-1, 28, 28))
        return {"single": single, "pair": pair}

    scores = data.cached_arrays(f"copy-test-scores-{data_key}-{COPY_CACHE_VERSION}.npz", test_scores,
                                {"single": (len(m.test_x),), "pair": (len(m.test_x),)})
    return {"copy_index": index, "copy_thresholds": copy_thresholds(scores["single"], scores["pair"], COPY_QUANTILE)}


def _real_kid_within(m: int) -> np.ndarray:
    """The test features' within-set KID terms for subsets of ``m`` (cached on disk for m = 1000)."""
    ctx = _real_context()
    cache = ctx["kid_within"]
    if m not in cache:
        def compute():
            return {"terms": kid_within_terms(ctx["features"], m, KID_SUBSETS, KID_SEED, stream=1)}

        if m == KID_SUBSET_SIZE:
            name = f"reference-{reference.REFERENCE_SHA256[:16]}-f{reference.FEATURES_VERSION}-test-kid-m{m}-n{KID_SUBSETS}-s{KID_SEED}-v1.npz"
            cache[m] = data.cached_arrays(name, compute, {"terms": (KID_SUBSETS,)})["terms"]
        else:
            cache[m] = compute()["terms"]
    return cache[m]


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - the suite then runs with the BLAS's own threads
        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def generative_metrics(samples: np.ndarray) -> dict[str, float]:
    """Score generated digits with the reference classifier: the generate track's metrics.

    Real data is the canonical 10k test set (all of it, no subsampling): its features, their
    Gaussian fit and their k-NN radii are computed once and cached (``data.cache_dir()``), as are
    the copy index of the training images and the test images' copy scores behind its thresholds.

    Args:
        samples: float32 (N, 1, 28, 28) in [0, 1] (the spec's N is 10,000; N >= 6 works, but
            the feature metrics are biased for small N: compare runs of equal N).

    Returns:
        dict with exactly the keys of :data:`METRIC_KEYS`: ``classifier_score``, ``fcd``,
        ``kid_mean``, ``kid_std``, ``precision``, ``recall``, ``density``, ``coverage``,
        ``class_entropy``, ``classes_covered`` (int), ``copy_rate``.
    """

    x = np.asarray(samples)
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28) or len(x) <= NEAREST_K:
        raise ValueError(f"samples must have shape (N, 1, 28, 28) with N > {NEAREST_K}, found {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite")

    ctx = _real_context()
    real = ctx["features"]
    # Two threads on two cores (NumPy and BLAS release the GIL), one BLAS thread each (BLAS threads of
    # their own only spin against each other). First copy detection on one thread while the forward
    # pass runs in parts of PART images on the other, which the first joins when it is done; then KID
    # and the fakes' k-NN radii beside precision/recall/density/coverage and fcd. Each metric is
    # computed exactly as alone (the forward pass is bitwise the same in any parts of whole blocks,
    # the radii are those prdc computes itself), so the results do not depend on the timing.
    with _one_blas_thread(), ThreadPoolExecutor(2, thread_name_prefix="generate-suite") as pool:
        copy_future = pool.submit(copy_rate, x, ctx["copy_index"], ctx["copy_thresholds"])
        parts = [pool.submit(reference.predict, x[i:i + _PART]) for i in range(0, len(x), _PART)]
        probs = np.concatenate([p.result()[0] for p in parts])
        feats = np.concatenate([p.result()[1] for p in parts])
        kid_future = pool.submit(kid, feats, real, KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED,
                                 b_within=_real_kid_within(min(KID_SUBSET_SIZE, len(feats))))
        radii_future = pool.submit(kth_neighbour_sq_distances, feats, NEAREST_K, real)
        mu, sigma = gaussian_statistics(feats)
        fcd = frechet_distance(mu, sigma, ctx["mu"], ctx["sigma"])
        prdc = precision_recall_density_coverage(real, feats, NEAREST_K, real_radii_sq=ctx["radii_sq"],
                                                 fake_radii_sq=radii_future.result())
        kid_mean, kid_std = kid_future.result()
        copied = copy_future.result()
    result = {
        "classifier_score": classifier_score(probs),
        "fcd": fcd,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": prdc["precision"],
        "recall": prdc["recall"],
        "density": prdc["density"],
        "coverage": prdc["coverage"],
        "class_entropy": class_entropy(probs),
        "classes_covered": classes_covered(probs, MIN_CLASS_SHARE),
        "copy_rate": copied,
    }
    assert tuple(result) == METRIC_KEYS
    return result
