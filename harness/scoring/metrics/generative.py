"""Metrics of the generate track: pure functions over arrays, float64.

Each metric takes plain NumPy arrays and returns Python floats (or a tuple of them); nothing here
imports student code. The suite that runs them on a submission's samples, with the reference classifier and the cached
real-data statistics, is :func:`harness.scoring.tracks.generate_suite.generative_metrics`; copy
detection is :mod:`harness.scoring.metrics.copy_detection`.

=================  ==========================================================================
key                metric
=================  ==========================================================================
classifier_score   :func:`classifier_score` of the reference classifier's p(y|x) (1..10)
fcd                :func:`frechet_distance` between Gaussian fits of sample and test features
kid_mean/kid_std   :func:`kid`, unbiased squared MMD, cubic kernel, 100 subsets of 1,000
precision ...      :func:`precision_recall_density_coverage`, k = 5, features
class_entropy      :func:`class_entropy` of the predicted-class histogram (nats, max ln 10)
classes_covered    :func:`classes_covered`, classes holding >= 2 % of the samples
copy_rate          :func:`~harness.scoring.metrics.copy_detection.copy_rate`: samples that copy
                   a training image despite shifts, noise, brightness or blends (calibrated so
                   that test images score about 0.001)
=================  ==========================================================================

References:
    Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (Inception Score).
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (FID); implementation after pytorch-fid's ``fid_score.py``.
    Binkowski et al., "Demystifying MMD GANs", ICLR 2018 (KID).
    Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020
    (density and coverage; precision and recall in the k-NN form of Kynkaanniemi et al. 2019).
"""

from __future__ import annotations


import numpy as np
from scipy import linalg

__all__ = [
    "classifier_score",
    "frechet_distance",
    "gaussian_statistics",
    "kid",
    "kid_within_terms",
    "precision_recall_density_coverage",
    "class_entropy",
    "classes_covered",
    "METRIC_KEYS",
]

#: The keys of :func:`generative_metrics`, in the spec's order.
METRIC_KEYS = (
    "classifier_score", "fcd", "kid_mean", "kid_std", "precision", "recall", "density",
    "coverage", "class_entropy", "classes_covered", "copy_rate",
)

# Settings of generative_metrics (the spec's values).
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 0
NEAREST_K = 5
MIN_CLASS_SHARE = 0.02
COPY_QUANTILE = 0.001


def _probabilities(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must have shape (N, K) with N, K >= 1, found {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("each row of probs must sum to 1 (pass softmax probabilities, not logits)")
    return p


def _features(x: np.ndarray, name: str, min_rows: int = 1) -> np.ndarray:
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < min_rows or f.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= {min_rows}, found {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} must be finite")
    return f


# ---------------------------------------------------------------------------------------------
# Classifier score (Inception Score with the reference classifier)
# ---------------------------------------------------------------------------------------------

def classifier_score(probs: np.ndarray) -> float:
    """Inception Score computed with a classifier: ``exp(E_x KL(p(y|x) || p(y)))``.

    ``p(y)`` is the marginal, the mean of ``p(y|x)`` over the samples (all samples in one split,
    unlike the original 10-split average). Terms with ``p(y|x) = 0`` contribute 0.

    Args:
        probs: (N, K) class probabilities per sample, rows summing to 1.

    Returns:
        float in ``[1, K]``: 1 when every sample gets the same distribution (or all are
        uniform), K when predictions are confident (one-hot) and the classes are balanced.

    References:
        Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
    """
    p = _probabilities(probs)
    py = p.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(py)), 0.0)
    kl = terms.sum(axis=1)
    return float(np.exp(max(kl.mean(), 0.0)))


# ---------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------

def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, float64 (N >= 2)."""
    f = _features(features, "features", min_rows=2)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((sigma1 sigma2)^(1/2))`` as ``tr((s1^(1/2) sigma2 s1^(1/2))^(1/2))``: symmetric, real.

    Both are PSD, so ``s1^(1/2) sigma2 s1^(1/2)`` is symmetric PSD and is similar to
    ``sigma1 sigma2``; its eigenvalues (clipped at 0 against rounding) give the trace exactly.
    """
    w, v = linalg.eigh(sigma1)
    s1_half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = s1_half @ sigma2 @ s1_half
    ev = linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet (2-Wasserstein) distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    The trace of the root is ``tr((s1^(1/2) sigma2 s1^(1/2))^(1/2))``: ``s1^(1/2) sigma2 s1^(1/2)``
    is symmetric PSD and similar to ``sigma1 sigma2``, so two symmetric eigendecompositions give
    the trace of the principal root exactly, real by construction (eigenvalues clipped at 0
    against rounding), even when the product is singular. pytorch-fid takes
    ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` instead (with an ``eps * I`` retry and an
    imaginary-part check); where that root is the principal one both agree to rounding
    (``1e-6`` of ``tr(sigma1) + tr(sigma2)``, the tolerance this function used to check them
    against each other), and ``sqrtm`` costs 0.04-1.7 s on 128 features against about 10 ms.
    The result is clipped at 0: always a finite, non-negative real number.

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) symmetric positive semi-definite covariances.
        eps: unused (kept for callers of the sqrtm version; the eigendecompositions need no offset).

    Returns:
        float, the squared Frechet distance (the quantity reported as FID).

    References:
        Dowson & Landau, "The Frechet distance between multivariate normal distributions", 1982.
        Heusel et al., NeurIPS 2017; pytorch-fid ``fid_score.calculate_frechet_distance``.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes differ: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {sigma1.shape}, sigma2 {sigma2.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite")

    diff = mu1 - mu2
    tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


# ---------------------------------------------------------------------------------------------
# Kernel Inception Distance
# ---------------------------------------------------------------------------------------------

def _cubic_kernel_sum(x: np.ndarray, y: np.ndarray, within: bool) -> float:
    """``sum_{i,j} (x_i.y_j / d + 1)^3`` (``i != j`` when ``within``), float32 blocks, float64 sum."""
    k = x @ y.T
    k *= np.float32(1.0 / x.shape[1])
    k += np.float32(1.0)
    k3 = k * k
    k3 *= k
    total = float(k3.sum(dtype=np.float64))
    if within:
        total -= float(np.trace(k3, dtype=np.float64))
    return total


def _kid_subsets(n: int, m: int, n_subsets: int, seed: int, stream: int):
    """The row indices of each subset of one set: stream 0 for the first set, 1 for the second.

    Each set has its own random stream, so the subsets of a fixed set (the real data) do not
    depend on the other set and their within-set terms can be computed once (``kid_within_terms``).
    """
    rng = np.random.default_rng([seed, stream])
    for _ in range(n_subsets):
        yield rng.choice(n, m, replace=False)


def kid_within_terms(features: np.ndarray, m: int, n_subsets: int = 100, seed: int = 0, stream: int = 1) -> np.ndarray:
    """Within-set terms ``1/(m(m-1)) sum_{i!=j} k(x_i, x_j)`` of each KID subset, float64 (n_subsets,).

    Depends only on ``features`` and the settings, so it can be cached for the real set and passed
    to :func:`kid` as ``b_within`` (``stream=1``: the second set).
    """
    f = _features(features, "features", min_rows=2).astype(np.float32)
    if not 2 <= m <= len(f):
        raise ValueError(f"subset size m must lie in 2..{len(f)}, found {m}")
    return np.array([_cubic_kernel_sum(f[idx], f[idx], within=True) / (m * (m - 1))
                     for idx in _kid_subsets(len(f), m, n_subsets, seed, stream)])


def kid(feat_a: np.ndarray, feat_b: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0, *, b_within: np.ndarray | None = None) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased squared MMD with a cubic polynomial kernel.

    ``k(x, y) = (x.y / d + 1)^3``. For each of ``n_subsets`` subsets, ``m`` rows are drawn
    without replacement from each set (``m = min(subset_size, len(a), len(b))``) and

    ``MMD^2_u = 1/(m(m-1)) sum_{i!=j} [k(a_i,a_j) + k(b_i,b_j)] - 2/m^2 sum_{i,j} k(a_i,b_j)``.

    The unbiased estimate can be slightly negative when the sets come from one distribution.
    Kernel matrices are computed in float32 (twice the speed; relative rounding ~1e-7 of the
    kernel values, far below the subset-to-subset spread) and summed in float64.

    Args:
        feat_a: (N_a, D) features; feat_b: (N_b, D) features (N >= 2).
        n_subsets: number of random subsets.
        subset_size: rows drawn from each set per subset.
        seed: seed of the subset draws (one ``numpy.random.default_rng`` stream per set).
        b_within: optional ``kid_within_terms(feat_b, m, n_subsets, seed)``, precomputed.

    Returns:
        (mean, std) of the subset estimates (std with ddof=0, as torch-fidelity).

    References:
        Binkowski et al., "Demystifying MMD GANs", ICLR 2018; the subset scheme of
        clean-fid's ``kernel_distance`` and torch-fidelity's ``kid``.
    """
    a = _features(feat_a, "feat_a", min_rows=2).astype(np.float32)
    b = _features(feat_b, "feat_b", min_rows=2).astype(np.float32)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    if n_subsets < 1 or subset_size < 2:
        raise ValueError("n_subsets must be >= 1 and subset_size >= 2")
    m = min(subset_size, len(a), len(b))
    if b_within is None:
        b_within = kid_within_terms(b, m, n_subsets, seed, stream=1)
    b_within = np.asarray(b_within, dtype=np.float64)
    if b_within.shape != (n_subsets,):
        raise ValueError(f"b_within must have shape ({n_subsets},), found {b_within.shape}")
    mmds = np.empty(n_subsets)
    subsets = zip(_kid_subsets(len(a), m, n_subsets, seed, 0), _kid_subsets(len(b), m, n_subsets, seed, 1))
    for s, (ia, ib) in enumerate(subsets):
        x, y = a[ia], b[ib]
        a_within = _cubic_kernel_sum(x, x, within=True) / (m * (m - 1))
        mmds[s] = a_within + b_within[s] - 2.0 * _cubic_kernel_sum(x, y, within=False) / (m * m)
    return float(mmds.mean()), float(mmds.std())


# ---------------------------------------------------------------------------------------------
# Precision, recall, density, coverage
# ---------------------------------------------------------------------------------------------

_DIST_CHUNK = 256  # rows per block of a distance matrix (256 x 10k float64 = 20 MB)


def _sq_distances(x: np.ndarray, x_sq: np.ndarray, y_t: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)), clipped at 0.

    ``y_t`` is ``y`` transposed (D, M); ``x_sq``, ``y_sq`` the squared row norms.
    """
    d2 = x @ y_t
    d2 *= -2.0
    d2 += x_sq[:, None]
    d2 += y_sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def kth_neighbour_sq_distances(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (itself excluded), float64 (N,).

    Exact brute-force search in float64 (scikit-learn's ``NearestNeighbors(algorithm="brute")``,
    whose blocked, multithreaded k-NN reduction is about twice as fast as NumPy blocks).
    """
    from sklearn.neighbors import NearestNeighbors

    f = _features(features, "features", min_rows=k + 1)
    dist, _ = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(f).kneighbors()
    return dist[:, k - 1] ** 2


#: Ball membership is ``d^2 < r^2 (1 - _BALL_RTOL)``. Radii and distances come from different
#: float64 computations (rounding ~1e-15 of the norms), so a point exactly on a ball's boundary
#: (a real point that is another real point's k-th neighbour, when fakes equal reals) is
#: consistently outside, as with the reference code's strict ``<`` on a single distance matrix.
_BALL_RTOL = 1e-9


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                                      real_radii_sq: np.ndarray | None = None) -> dict[str, float]:
    """k-NN precision, recall, density and coverage of ``fake`` against ``real`` features.

    With ``B(x, r)`` the ball around ``x`` of radius ``r`` and ``NND_k(x)`` the distance from
    ``x`` to its k-th nearest neighbour within its own set:

    - precision = share of fakes inside some real ball ``B(r_i, NND_k(r_i))``;
    - recall    = share of reals inside some fake ball ``B(f_j, NND_k(f_j))``;
    - density   = ``1/(k M) sum_j sum_i 1[f_j in B(r_i, NND_k(r_i))]`` (about 1 for matching
      distributions, above 1 when fakes crowd dense real regions);
    - coverage  = share of reals whose ball holds at least one fake.

    Exact nearest neighbours (no approximate search), float64 throughout, distances in blocks.
    Membership is strict, ``d^2 < NND_k^2 (1 - 1e-9)``: points on a boundary (ties, e.g. fakes
    equal to reals) are outside, as with the reference implementation's ``d < NND_k`` on a
    single distance matrix.

    Args:
        real: (N, D) real features; fake: (M, D) fake features (N, M > k).
        k: neighbourhood size.
        real_radii_sq: optional precomputed ``kth_neighbour_sq_distances(real, k)`` (N,),
            reused across calls for a fixed real set.

    Returns:
        dict with float ``precision``, ``recall``, ``density``, ``coverage``.

    References:
        Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020
        (github.com/clovaai/generative-evaluation-prdc); Kynkaanniemi et al., "Improved
        Precision and Recall Metric for Assessing Generative Models", NeurIPS 2019.
    """
    r = _features(real, "real", min_rows=k + 1)
    f = _features(fake, "fake", min_rows=k + 1)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: {r.shape[1]} and {f.shape[1]}")
    if real_radii_sq is None:
        real_radii_sq = kth_neighbour_sq_distances(r, k)
    real_radii_sq = np.asarray(real_radii_sq, dtype=np.float64)
    if real_radii_sq.shape != (len(r),):
        raise ValueError(f"real_radii_sq must have shape ({len(r)},), found {real_radii_sq.shape}")
    real_balls = real_radii_sq * (1.0 - _BALL_RTOL)
    fake_balls = kth_neighbour_sq_distances(f, k) * (1.0 - _BALL_RTOL)

    r_t, r_sq = np.ascontiguousarray(r.T), np.einsum("ij,ij->i", r, r)
    f_sq = np.einsum("ij,ij->i", f, f)
    in_real_balls = np.zeros(len(f), dtype=np.int64)   # per fake: how many real balls hold it
    real_in_fake_ball = np.zeros(len(r), dtype=bool)   # per real: inside some fake ball
    real_ball_hit = np.zeros(len(r), dtype=bool)       # per real: its ball holds some fake
    for j in range(0, len(f), _DIST_CHUNK):
        d2 = _sq_distances(f[j:j + _DIST_CHUNK], f_sq[j:j + _DIST_CHUNK], r_t, r_sq)  # (fakes, reals)
        inside = d2 < real_balls[None, :]
        in_real_balls[j:j + _DIST_CHUNK] = np.count_nonzero(inside, axis=1)
        real_ball_hit |= inside.any(axis=0)
        real_in_fake_ball |= (d2 < fake_balls[j:j + _DIST_CHUNK, None]).any(axis=0)
    return {
        "precision": float((in_real_balls > 0).mean()),
        "recall": float(real_in_fake_ball.mean()),
        "density": float(in_real_balls.sum() / (k * len(f))),
        "coverage": float(real_ball_hit.mean()),
    }


# ---------------------------------------------------------------------------------------------
# Class histogram
# ---------------------------------------------------------------------------------------------

def _class_shares(probs: np.ndarray) -> np.ndarray:
    p = _probabilities(probs)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    return counts / counts.sum()


def class_entropy(probs: np.ndarray) -> float:
    """Entropy (nats) of the histogram of predicted classes ``argmax_y p(y|x)``.

    Args:
        probs: (N, K) class probabilities.

    Returns:
        float in ``[0, ln K]``: ``ln 10 = 2.3026`` for perfectly balanced digits, 0 when every
        sample is predicted as the same digit (mode collapse).
    """
    shares = _class_shares(probs)
    nz = shares[shares > 0]
    return float(max(-(nz * np.log(nz)).sum(), 0.0)) + 0.0  # + 0.0: never -0.0


def classes_covered(probs: np.ndarray, min_share: float = 0.02) -> int:
    """Number of classes predicted for at least ``min_share`` of the samples (0..K).

    Args:
        probs: (N, K) class probabilities.
        min_share: the share of samples a class must hold to count (default 2 %).
    """
    return int((_class_shares(probs) >= min_share).sum())


# ---------------------------------------------------------------------------------------------
# Copy detection in pixel space
# ---------------------------------------------------------------------------------------------













# ---------------------------------------------------------------------------------------------
# The whole suite, with the reference classifier and cached real-data statistics
# ---------------------------------------------------------------------------------------------



_context: dict[str, object] = {}








