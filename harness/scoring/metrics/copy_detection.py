"""Copy detection for the generate track: is a sample a (hidden) copy of a training image?
Pure functions and an in-memory index over arrays; no I/O."""

from __future__ import annotations

import numpy as np


def _pixels(x: np.ndarray, name: str) -> np.ndarray:
    """(N, ...) images -> (N, P) float32; uint8 arrays are read as x / 255 (the [0, 1] scale)."""
    a = np.asarray(x)
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of images, found shape {a.shape}")
    a = a.reshape(len(a), -1)
    if a.dtype == np.uint8:
        out = a.astype(np.float32)
        out /= np.float32(255.0)  # in place: the same values as data.to_images
        return out
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def _row_sq(x: np.ndarray) -> np.ndarray:
    """Squared row norms as float64 (N,), summed in float32 blocks (no float64 copy of x)."""
    out = np.empty(len(x))
    for i in range(0, len(x), 8192):
        out[i:i + 8192] = np.einsum("ij,ij->i", x[i:i + 8192], x[i:i + 8192])
    return out


class PixelIndex:
    """Exact Euclidean range queries against a fixed set of images (the training set).

    ``any_within(q, radius)`` answers "is some reference image closer than ``radius``?" exactly,
    without the full (N x 60,000 x 784) product, by two lower bounds of ``||x - y||``:

    - the norms: ``| ||x|| - ||y|| | <= ||x - y||``; reference images are sorted by norm, and a
      block of queries (sorted by norm too) is only compared with the slice of reference images
      whose norms lie within ``radius`` of the block's (about a third of MNIST);
    - a projection: each image ``x`` is mapped to ``[P x, ||x - P^T P x||]`` with ``P`` the top
      ``n_components`` principal axes; distances between mapped images are lower bounds of the
      true distances (Pythagoras and the reverse triangle inequality).

    Only pairs whose bounds are below the radius get an exact check, in float64.
    """

    def __init__(self, reference: np.ndarray, n_components: int = 48, pca_rows: int = 10000):
        ref = _pixels(reference, "reference")
        self.dim = ref.shape[1]
        c = int(min(n_components, self.dim, len(ref)))
        # Principal subspace by subspace iteration on the covariance of a subsample (a full
        # eigendecomposition of 784 x 784 costs seconds on two cores). Any orthonormal basis
        # keeps the search exact; a good one only prunes more.
        sub = ref[:: max(1, len(ref) // pca_rows)]
        sub = sub - sub.mean(axis=0)
        cov = (sub.T @ sub).astype(np.float64)
        basis = np.random.default_rng(0).standard_normal((self.dim, c))
        for _ in range(4):
            basis, _ = np.linalg.qr(cov @ basis)
        self.basis = np.ascontiguousarray(basis, dtype=np.float32)  # (P, c), orthonormal columns
        ref_sq = _row_sq(ref)
        self.order = np.argsort(ref_sq, kind="stable")  # reference rows sorted by norm
        self.reference = ref[self.order]
        self.ref_sq = ref_sq[self.order]
        self.ref_norm = np.sqrt(self.ref_sq)
        self._ref_mapped = self._augment_reference(self._map(self.reference, self.ref_sq))

    def _map(self, x: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
        proj = x @ self.basis
        p_sq = _row_sq(proj)
        resid = np.sqrt(np.clip(x_sq - p_sq, 0.0, None))
        return np.concatenate([proj, resid[:, None].astype(np.float32)], axis=1)

    @staticmethod
    def _augment_reference(y: np.ndarray) -> np.ndarray:
        # Rows [-2 y, 1, ||y||^2] (transposed) so that [x, ||x||^2, 1] . (.) = ||x - y||^2.
        y_sq = _row_sq(y)
        return np.ascontiguousarray(np.concatenate(
            [-2.0 * y, np.ones((len(y), 1), np.float32), y_sq[:, None].astype(np.float32)], axis=1).T)

    @staticmethod
    def _augment_query(x: np.ndarray) -> np.ndarray:
        x_sq = _row_sq(x)
        return np.concatenate([x, x_sq[:, None].astype(np.float32), np.ones((len(x), 1), np.float32)], axis=1)

    def _exact_sq(self, q: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Exact squared distances between ``q[rows]`` and reference rows ``cols`` (sorted order)."""
        out = np.empty(len(rows))
        for i in range(0, len(rows), 4096):
            diff = q[rows[i:i + 4096]].astype(np.float64) - self.reference[cols[i:i + 4096]]
            out[i:i + 4096] = np.einsum("ij,ij->i", diff, diff)
        return out

    def _row_within_exact(self, qrow: np.ndarray, lo: int, hi: int, radius_sq: float, slack: float) -> bool:
        """One query against reference rows lo..hi (the fallback when the bound prunes little)."""
        ref = self.reference[lo:hi]
        d2 = (float(qrow.astype(np.float64) @ qrow) + self.ref_sq[lo:hi]) - 2.0 * (ref @ qrow)
        cols = np.flatnonzero(d2 < radius_sq + slack) + lo
        if len(cols) == 0:
            return False
        return bool((self._exact_sq(qrow[None, :], np.zeros(len(cols), np.int64), cols) < radius_sq).any())

    def any_within(self, queries: np.ndarray, radius: float, chunk: int = 256, max_candidates: int = 256) -> np.ndarray:
        """bool (N,): whether some reference image lies at Euclidean distance < ``radius``."""
        q = _pixels(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} pixels, the reference images {self.dim}")
        radius = float(radius)
        radius_sq = radius * radius
        q_sq = _row_sq(q)
        q_order = np.argsort(q_sq, kind="stable")
        q, q_sq = q[q_order], q_sq[q_order]
        q_norm = np.sqrt(q_sq)
        mapped = self._augment_query(self._map(q, q_sq))
        # float32 rounding of the bound: |error| <~ 1e-6 (||x||^2 + ||y||^2); keep a wide margin.
        slack = 1e-4 * (float(q_sq.max()) + float(self.ref_sq.max())) + 1e-6
        # float32 norms are accurate to ~5e-5 relative (784 terms); the margin is 20 times that.
        margin = radius + 1e-3 * (1.0 + float(max(self.ref_norm.max(), q_norm.max())))
        found = np.zeros(len(q), dtype=bool)
        for i in range(0, len(q), chunk):
            qb = q[i:i + chunk]
            lo = int(np.searchsorted(self.ref_norm, q_norm[i] - margin, side="left"))
            hi = int(np.searchsorted(self.ref_norm, q_norm[i:i + chunk][-1] + margin, side="right"))
            if hi <= lo:
                continue
            lb = mapped[i:i + chunk] @ self._ref_mapped[:, lo:hi]  # (block, slice) squared lower bounds
            best = lb.argmin(axis=1)
            rows = np.flatnonzero(lb[np.arange(len(lb)), best] < radius_sq + slack)
            if len(rows) == 0:
                continue
            # The pair with the smallest bound is nearly always the answer (a copy): check it first.
            hit = self._exact_sq(qb, rows, best[rows] + lo) < radius_sq
            found[i + rows[hit]] = True
            for r in rows[~hit]:
                cols = np.flatnonzero(lb[r] < radius_sq + slack)
                if len(cols) > max_candidates:
                    found[i + r] = self._row_within_exact(qb[r], lo, hi, radius_sq, slack)
                else:
                    found[i + r] = bool((self._exact_sq(qb, np.full(len(cols), r), cols + lo) < radius_sq).any())
        out = np.empty(len(q), dtype=bool)
        out[q_order] = found
        return out


def nearest_neighbour_distances(queries: np.ndarray, reference: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Exact Euclidean distance (float64 (N,)) from each query image to its nearest reference image.

    Blocked float32 products find the candidates; every distance within the float32 rounding
    margin of the row minimum is then recomputed in float64, so the result is exact.
    """
    q = _pixels(queries, "queries")
    ref = _pixels(reference, "reference")
    if q.shape[1] != ref.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} pixels, the reference images {ref.shape[1]}")
    ref_sq = _row_sq(ref)
    ref_sq32 = ref_sq.astype(np.float32)
    out = np.empty(len(q))
    for i in range(0, len(q), chunk):
        block = q[i:i + chunk]
        b_sq = _row_sq(block)
        d2 = block @ ref.T
        d2 *= np.float32(-2.0)
        d2 += ref_sq32[None, :]
        d2 += b_sq[:, None].astype(np.float32)
        slack = 1e-4 * (b_sq[:, None] + ref_sq.max()) + 1e-6
        row_min = d2.min(axis=1, keepdims=True)
        rows, cols = np.nonzero(d2 <= row_min + slack)
        diff = block[rows].astype(np.float64) - ref[cols]
        exact = np.einsum("ij,ij->i", diff, diff)
        best = np.full(len(block), np.inf)
        np.minimum.at(best, rows, exact)
        out[i:i + chunk] = np.sqrt(best)
    return out


def copy_threshold(train_pixels: np.ndarray, test_pixels: np.ndarray, quantile: float = 0.001) -> float:
    """The copy radius: the ``quantile`` of test-to-train nearest-neighbour pixel distances.

    Held-out real digits are this close to a training image only ``quantile`` of the time, so a
    sample closer than that is a (near-)copy rather than a new digit. Cost: a full
    (N_test x N_train) distance pass; :func:`generative_metrics` caches it on disk.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], found {quantile}")
    return float(np.quantile(nearest_neighbour_distances(test_pixels, train_pixels), quantile))


def copy_rate(samples_pixels: np.ndarray, train_pixels: np.ndarray | None, test_pixels: np.ndarray | None,
              quantile: float = 0.001, *, threshold: float | None = None,
              index: PixelIndex | None = None) -> float:
    """Share of samples whose nearest training image (pixel L2) is nearer than the copy radius.

    The radius is :func:`copy_threshold` ``(train, test, quantile)``: the ``quantile`` (0.1 %) of
    test-to-train nearest distances. A generator that returns (lightly perturbed) training
    images scores near 1; one that makes new digits scores near 0 (held-out test images score
    about ``quantile`` by construction).

    Args:
        samples_pixels: (N, 1, 28, 28) or (N, 784) images in [0, 1] (uint8 is read as x / 255).
        train_pixels: (N_train, ...) training images, same scale (may be None with ``index``).
        test_pixels: (N_test, ...) held-out images (may be None with ``threshold``).
        quantile: the share of test images the radius lets through.
        threshold: a precomputed radius (skips the test-to-train pass).
        index: a :class:`PixelIndex` of ``train_pixels`` (reused across calls).

    Returns:
        float in [0, 1].
    """
    if index is None:
        if train_pixels is None:
            raise ValueError("copy_rate needs train_pixels or an index")
        index = PixelIndex(train_pixels)
    if threshold is None:
        if test_pixels is None or train_pixels is None:
            raise ValueError("copy_rate needs train_pixels and test_pixels, or a threshold")
        threshold = copy_threshold(train_pixels, test_pixels, quantile)
    return float(index.any_within(samples_pixels, threshold).mean())
