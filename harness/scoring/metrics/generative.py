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

_DIST_CHUNK = 256  # rows per block of a distance matrix (256 x 10k float32 = 10 MB)

#: Bound on |float32 d^2 - exact d^2| relative to ``(|x| + |y|)^2``: one float32 dot product of
#: D + 2 terms (``[x, |x|^2, 1] . [-2y, 1, |y|^2]``), inputs rounded to float32, the threshold
#: rounded to float32: ``gamma_{D+2} + 3u`` with ``u = 2^-24`` (``gamma_n = n u / (1 - n u)``,
#: any summation order, FMA or not), times 2 for safety. Comparisons closer to a threshold than
#: this are redone in float64, so every count equals the all-float64 computation's.
def _f32_tol(d: int) -> float:
    u = 2.0 ** -24
    n = d + 2
    return 2.0 * (n * u / (1.0 - n * u) + 3.0 * u)


class _Points:
    """Rows centred on a reference mean (distances are translation-invariant; smaller norms give
    tighter float32 bounds): float64 rows and squared norms for exact rechecks, and the float32
    augmented rows whose products are squared distances."""

    def __init__(self, x: np.ndarray, centre: np.ndarray):
        self.x = x - centre
        self.sq = np.einsum("ij,ij->i", self.x, self.x)
        self.norm = np.sqrt(self.sq)
        n = len(x)
        self.left = np.empty((n, x.shape[1] + 2), dtype=np.float32)    # [x, |x|^2, 1]
        self.left[:, :-2], self.left[:, -2], self.left[:, -1] = self.x, self.sq, 1.0
        self.right_t = np.empty((x.shape[1] + 2, n), dtype=np.float32)  # [-2x, 1, |x|^2]^T
        self.right_t[:-2], self.right_t[-2], self.right_t[-1] = -2.0 * self.x.T, 1.0, self.sq

    def exact_sq(self, rows: np.ndarray, other: "_Points", cols: np.ndarray) -> np.ndarray:
        """Exact (float64) squared distances of the pairs (self[rows], other[cols]), clipped at 0."""
        d2 = self.sq[rows] + other.sq[cols] - 2.0 * np.einsum("ij,ij->i", self.x[rows], other.x[cols])
        return np.maximum(d2, 0.0)


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-D boolean mask, scanning 8 flags per 64-bit word first."""
    n_rows, n_cols = mask.shape
    if n_cols % 8 or not mask.flags.c_contiguous:
        return np.nonzero(mask)
    r, w = np.nonzero(mask.view(np.uint64))
    rr, bit = np.nonzero(mask.reshape(n_rows, n_cols // 8, 8)[r, w])
    return r[rr], w[rr] * 8 + bit


def _kth_smallest_per_row(rows: np.ndarray, values: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """The k-th smallest (1-based) of ``values`` grouped by ``rows`` (sorted ascending; every row
    holds at least k values), (n_rows,)."""
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pad = np.full((n_rows, counts.max()), np.inf, dtype=values.dtype)
    pad[rows, np.arange(len(rows)) - starts[rows]] = values
    return np.partition(pad, k - 1, axis=1)[:, k - 1]


def _kth_neighbour_sq(p: _Points, k: int) -> np.ndarray:
    """Squared distance from each row of ``p`` to its k-th nearest other row: float32 distance
    blocks select candidates that provably hold the k nearest (every pair within the float32
    bound of the (k+1)-th smallest float32 value, self included), then exact float64 distances
    of the candidates give the k-th (self excluded by index, as scikit-learn's ``kneighbors()``)."""
    n = len(p.x)
    tol = _f32_tol(p.x.shape[1])
    out = np.empty(n)
    probe = min(n, 1024)  # the (k+1)-th smallest of a column subset bounds the row's from above
    for lo in range(0, n, _DIST_CHUNK):
        hi = min(lo + _DIST_CHUNK, n)
        d = p.left[lo:hi] @ p.right_t                                        # (rows, n) float32
        m = np.float32(2.0 * tol * (p.norm[lo:hi].max() + p.norm.max()) ** 2)  # twice the bound
        first = np.partition(d[:, :probe], k, axis=1)[:, k]
        rows, cols = _nonzero(d <= (first + m)[:, None])
        v = _kth_smallest_per_row(rows, d[rows, cols], hi - lo, k + 1)       # the row's (k+1)-th, float32
        keep = (d[rows, cols] <= v[rows] + m) & (cols != rows + lo)
        rows, cols = rows[keep], cols[keep]
        out[lo:hi] = _kth_smallest_per_row(rows, p.exact_sq(rows + lo, p, cols), hi - lo, k)
    return out


def kth_neighbour_sq_distances(features: np.ndarray, k: int, centre_on: np.ndarray | None = None) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (itself excluded), float64 (N,).

    Exact: the same values as a brute-force float64 search (scikit-learn's
    ``NearestNeighbors(algorithm="brute").kneighbors()``, to rounding of the last bits), from
    float32 distance blocks that only pick candidates and float64 distances of the candidates.
    The rows are centred on their mean first, or on the mean of the rows ``centre_on`` (N', D); the
    last bits depend on it: ``centre_on=real`` gives the fakes' radii exactly as
    :func:`precision_recall_density_coverage` computes them.
    """
    f = _features(features, "features", min_rows=k + 1)
    centre = f if centre_on is None else _features(centre_on, "centre_on")
    if centre.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: {f.shape[1]} and {centre.shape[1]}")
    return _kth_neighbour_sq(_Points(f, centre.mean(axis=0)), k)


#: Ball membership is ``d^2 < r^2 (1 - _BALL_RTOL)``. Radii and distances come from different
#: float64 computations (rounding ~1e-15 of the norms), so a point exactly on a ball's boundary
#: (a real point that is another real point's k-th neighbour, when fakes equal reals) is
#: consistently outside, as with the reference code's strict ``<`` on a single distance matrix.
_BALL_RTOL = 1e-9


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                                      real_radii_sq: np.ndarray | None = None,
                                      fake_radii_sq: np.ndarray | None = None) -> dict[str, float]:
    """k-NN precision, recall, density and coverage of ``fake`` against ``real`` features.

    With ``B(x, r)`` the ball around ``x`` of radius ``r`` and ``NND_k(x)`` the distance from
    ``x`` to its k-th nearest neighbour within its own set:

    - precision = share of fakes inside some real ball ``B(r_i, NND_k(r_i))``;
    - recall    = share of reals inside some fake ball ``B(f_j, NND_k(f_j))``;
    - density   = ``1/(k M) sum_j sum_i 1[f_j in B(r_i, NND_k(r_i))]`` (about 1 for matching
      distributions, above 1 when fakes crowd dense real regions);
    - coverage  = share of reals whose ball holds at least one fake.

    Exact nearest neighbours (no approximate search) and exact counts: distances come in float32
    blocks (one GEMM of augmented rows each), and every comparison that lies within the float32
    error bound of its threshold is redone in float64, so the counts equal an all-float64
    computation's. Membership is strict, ``d^2 < NND_k^2 (1 - 1e-9)``: points on a boundary
    (ties, e.g. fakes equal to reals) are outside, as with the reference implementation's
    ``d < NND_k`` on a single distance matrix.

    Args:
        real: (N, D) real features; fake: (M, D) fake features (N, M > k).
        k: neighbourhood size.
        real_radii_sq: optional precomputed ``kth_neighbour_sq_distances(real, k)`` (N,),
            reused across calls for a fixed real set.
        fake_radii_sq: optional precomputed ``kth_neighbour_sq_distances(fake, k, centre_on=real)``
            (M,) (e.g. on another thread); the same result as without.

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
    centre = r.mean(axis=0)
    rp, fp = _Points(r, centre), _Points(f, centre)
    if real_radii_sq is None:
        real_radii_sq = _kth_neighbour_sq(rp, k)
    real_radii_sq = np.asarray(real_radii_sq, dtype=np.float64)
    if real_radii_sq.shape != (len(r),):
        raise ValueError(f"real_radii_sq must have shape ({len(r)},), found {real_radii_sq.shape}")
    if fake_radii_sq is None:
        fake_radii_sq = _kth_neighbour_sq(fp, k)
    fake_radii_sq = np.asarray(fake_radii_sq, dtype=np.float64)
    if fake_radii_sq.shape != (len(f),):
        raise ValueError(f"fake_radii_sq must have shape ({len(f)},), found {fake_radii_sq.shape}")
    real_balls = real_radii_sq * (1.0 - _BALL_RTOL)
    fake_balls = fake_radii_sq * (1.0 - _BALL_RTOL)

    tol = _f32_tol(r.shape[1])
    r_max = rp.norm.max()
    in_real_balls = np.zeros(len(f), dtype=np.int64)   # per fake: how many real balls hold it
    real_in_fake_ball = np.zeros(len(r), dtype=bool)   # per real: inside some fake ball
    real_ball_hit = np.zeros(len(r), dtype=bool)       # per real: its ball holds some fake
    for lo in range(0, len(f), _DIST_CHUNK):
        hi = min(lo + _DIST_CHUNK, len(f))
        d2 = fp.left[lo:hi] @ rp.right_t                                   # (fakes, reals) float32
        col_m = tol * (fp.norm[lo:hi].max() + rp.norm) ** 2                # per real: the bound
        row_m = tol * (fp.norm[lo:hi] + r_max) ** 2                        # per fake
        # precision, density, coverage: fake in a real ball (column thresholds)
        sure = d2 < (real_balls - col_m).astype(np.float32)
        n_sure = np.count_nonzero(sure, axis=1)
        in_real_balls[lo:hi] += n_sure
        real_ball_hit |= sure.any(axis=0)
        upper = (real_balls + col_m).astype(np.float32)
        unsure = np.flatnonzero(np.count_nonzero(d2 < upper, axis=1) > n_sure)
        if len(unsure):  # the few fakes with a distance near some real ball's radius: float64
            rows, cols = np.nonzero((d2[unsure] < upper) & ~sure[unsure])
            rows = unsure[rows]
            inside = fp.exact_sq(rows + lo, rp, cols) < real_balls[cols]
            np.add.at(in_real_balls, rows[inside] + lo, 1)
            real_ball_hit[cols[inside]] = True
        # recall: real in a fake ball (row thresholds); only reals not yet inside one are looked at
        fb = fake_balls[lo:hi]
        upper = (fb + row_m).astype(np.float32)[:, None]
        open_cols = np.flatnonzero((d2 < upper).any(axis=0) & ~real_in_fake_ball)
        if len(open_cols):
            sub = d2[:, open_cols]
            real_in_fake_ball[open_cols[(sub < (fb - row_m).astype(np.float32)[:, None]).any(axis=0)]] = True
            rows, c = np.nonzero(sub < upper)
            keep = ~real_in_fake_ball[open_cols[c]]
            rows, cols = rows[keep], open_cols[c[keep]]
            inside = fp.exact_sq(rows + lo, rp, cols) < fb[rows]
            real_in_fake_ball[cols[inside]] = True
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


# copy detection: harness.scoring.metrics.copy_detection; the suite: harness.scoring.tracks.generate_suite
