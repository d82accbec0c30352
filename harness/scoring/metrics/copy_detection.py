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


# ---------------------------------------------------------------------------------------------
# Copy detection that survives hiding: shifts, noise, brightness, blends
# ---------------------------------------------------------------------------------------------

_SIDE = 28
_MAX_CANON_SHIFT = 4      # canonical re-centring moves an image by at most this many pixels
_VERIFY_SHIFTS = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1))  # around the canonical frame
_YY, _XX = np.mgrid[0:_SIDE, 0:_SIDE].astype(np.float32)


def _images28(x: np.ndarray, name: str) -> np.ndarray:
    a = _pixels(x, name)
    if a.shape[1] != _SIDE * _SIDE:
        raise ValueError(f"{name} must hold 28x28 images (784 pixels), found {a.shape[1]} pixels")
    return a.reshape(-1, _SIDE, _SIDE)


def canonical_shifts(x: np.ndarray) -> np.ndarray:
    """int (N, 2): the integer shift that moves each image's ink centre to the frame's centre.

    The ink is ``max(x - 0.3 max(x), 0)``: independent of brightness scaling, and additive noise
    up to sigma 0.1 rarely reaches it. A shifted copy of an image gets the same canonical image
    (up to one pixel of rounding, which the verification's +-1 shifts absorb).
    """
    w = np.maximum(x - 0.3 * x.max(axis=(1, 2), keepdims=True), 0.0)
    mass = w.sum(axis=(1, 2)) + 1e-6
    cy = np.einsum("nij,ij->n", w, _YY) / mass
    cx = np.einsum("nij,ij->n", w, _XX) / mass
    centre = (_SIDE - 1) / 2.0
    return np.clip(np.rint(np.stack([centre - cy, centre - cx], axis=1)), -_MAX_CANON_SHIFT,
                   _MAX_CANON_SHIFT).astype(np.int64)


def _shift(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Circular shift of each image by its own (dy, dx) (MNIST's 4-pixel empty border: no ink wraps)."""
    out = np.empty_like(x)
    keys = shifts[:, 0] * 16 + shifts[:, 1]
    for key in np.unique(keys):
        sel = np.flatnonzero(keys == key)
        out[sel] = np.roll(x[sel], (int(shifts[sel[0], 0]), int(shifts[sel[0], 1])), axis=(1, 2))
    return out


def _blur(x: np.ndarray) -> np.ndarray:
    """Denoise: a 3x3 binomial blur ([1,2,1]/4 separable, shrinks pixel noise 2.7-fold), then
    everything below a fifth of the image's maximum is set to 0 (the clipped noise that blur
    leaves on the background; relative, so brightness scaling does not move it)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    h = p[:, :, :-2] + 2.0 * p[:, :, 1:-1] + p[:, :, 2:]
    b = (h[:, :-2] + 2.0 * h[:, 1:-1] + h[:, 2:]) * np.float32(1.0 / 16.0)
    floor = np.float32(0.2) * b.max(axis=(1, 2), keepdims=True)
    return np.maximum(b - floor, 0.0)


def _standardise(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 784) zero-mean unit-norm rows (Pearson correlation = dot product)."""
    z = x.reshape(len(x), -1).astype(np.float32)
    z = z - z.mean(axis=1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-6)
    return z


def _unit(flat: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 10 (a typical digit's): the candidate search ignores brightness."""
    return flat * (10.0 / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)).astype(np.float32)


class CopyIndex:
    """Finds, for each sample, the training images it may hide and scores how close it is to them.

    1. Canonical frame: every image is re-centred on its ink (:func:`canonical_shifts`), so a
       copy shifted by up to 2 (or 4) pixels lands on its original.
    2. Candidates: the ``n_candidates`` nearest training images in a principal subspace of the
       canonical pixels (``n_components`` axes), by exact brute-force k-NN (scikit-learn).
    3. Two scores per sample, both 0 for an exact copy and both calibrated on the test set:
       - ``single`` = 1 - max Pearson correlation between the blurred sample and a blurred
         candidate at 9 shifts (+-1 px around the canonical frame): insensitive to brightness
         scaling (correlation), to additive noise (blur) and to shifts;
       - ``pair`` = min over pairs of candidates of the relative least-squares residual
         ``||s - a t1 - b t2||^2 / ||s||^2``: a blend ``a t1 + (1-a) t2`` of two training images
         scores 0 once both lie among the candidates (the nearest images of a blend are nearly
         always its two parents).
    The index is built from arrays only (no I/O); :meth:`state` / ``state=`` let a caller cache
    the costly part (the subspace and the projected training images).
    """

    def __init__(self, train: np.ndarray, n_components: int = 40, n_candidates: int = 16,
                 n_verify: int = 3, n_peel: int = 2, n_residual: int = 4, state: dict | None = None):
        from sklearn.neighbors import NearestNeighbors

        self.train = _images28(train, "train images")
        self.n_candidates = int(min(n_candidates, len(self.train)))
        self.n_verify = int(min(n_verify, self.n_candidates))
        self.n_peel = int(min(n_peel, self.n_candidates))
        self.n_residual = int(min(n_residual, len(self.train)))
        if state is not None:
            self.shifts = np.asarray(state["shifts"], dtype=np.int64)
            self.basis = np.asarray(state["basis"], dtype=np.float32)
            self.mean = np.asarray(state["mean"], dtype=np.float32)
            proj = np.asarray(state["projected"], dtype=np.float32)
            if self.shifts.shape != (len(self.train), 2) or proj.shape != (len(self.train), self.basis.shape[1]):
                raise ValueError("CopyIndex state does not match the training images; rebuild it")
        else:
            self.shifts = canonical_shifts(self.train)
            canon = _unit(_shift(self.train, self.shifts).reshape(len(self.train), -1))
            sub = canon[:: max(1, len(canon) // 10000)]
            self.mean = sub.mean(axis=0)
            sub = sub - self.mean
            cov = (sub.T @ sub).astype(np.float64)
            basis = np.random.default_rng(0).standard_normal((cov.shape[0], min(n_components, cov.shape[0])))
            for _ in range(4):
                basis, _ = np.linalg.qr(cov @ basis)
            self.basis = np.ascontiguousarray(basis, dtype=np.float32)
            proj = (canon - self.mean) @ self.basis
        self.projected = np.ascontiguousarray(proj, dtype=np.float32)
        self._nn = NearestNeighbors(n_neighbors=self.n_candidates, algorithm="brute").fit(self.projected)
        # the same subspace, training images as given (for blends, which are not re-centred)
        raw = (_unit(self.train.reshape(len(self.train), -1)) - self.mean) @ self.basis
        self._nn_raw = NearestNeighbors(n_neighbors=self.n_candidates, algorithm="brute").fit(raw)

    def state(self) -> dict[str, np.ndarray]:
        return {"shifts": self.shifts, "basis": self.basis, "mean": self.mean, "projected": self.projected}

    def _canonical_train(self, rows: np.ndarray) -> np.ndarray:
        return _shift(self.train[rows], self.shifts[rows])

    def scores(self, samples: np.ndarray, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(single (N,), pair (N,)) float64 copy scores; lower = more like a copy (0 = exact)."""
        x = _images28(samples, "samples")
        single = np.empty(len(x))
        pair = np.empty(len(x))
        for i in range(0, len(x), chunk):
            single[i:i + chunk], pair[i:i + chunk] = self._scores(x[i:i + chunk])
        return single, pair

    def _scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, k = len(x), self.n_candidates
        canon = _shift(x, canonical_shifts(x))
        flat = canon.reshape(n, -1)
        _, cand = self._nn.kneighbors((_unit(flat) - self.mean) @ self.basis)
        # single: blurred Pearson correlation at +-1 px with the first n_verify candidates
        zs = _standardise(_blur(canon))
        best = np.full(n, -1.0)
        for j in range(self.n_verify):
            t = _blur(self._canonical_train(cand[:, j]))
            for dy, dx in _VERIFY_SHIFTS:
                zt = _standardise(np.roll(t, (dy, dx), axis=(1, 2)))
                np.maximum(best, np.einsum("nd,nd->n", zs, zt), out=best)
        single = 1.0 - best
        # pair: least squares over two candidates, in the pixels as given (a blend of two
        # training images is not re-centred: its ink centre is a mix of its parents')
        flat = x.reshape(n, -1)
        _, cand = self._nn_raw.kneighbors((_unit(flat) - self.mean) @ self.basis)
        t = self.train[cand.reshape(-1)].reshape(n, k, -1)
        gram = np.matmul(t, t.transpose(0, 2, 1)).astype(np.float64)            # (n, k, k)
        c = np.einsum("nkd,nd->nk", t, flat).astype(np.float64)                 # (n, k)
        s_sq = np.einsum("nd,nd->n", flat, flat).astype(np.float64)
        iu, ju = np.triu_indices(k, 1)
        gii, gjj, gij = gram[:, iu, iu], gram[:, ju, ju], gram[:, iu, ju]
        ci, cj = c[:, iu], c[:, ju]
        det = gii * gjj - gij * gij
        ok = det > 1e-6 * gii * gjj
        explained = np.where(ok, (gjj * ci * ci - 2.0 * gij * ci * cj + gii * cj * cj) / np.where(ok, det, 1.0), 0.0)
        best_explained = explained.max(axis=1)
        # A lopsided blend (70/30) has its major parent first but its minor parent far down the
        # list: peel the first candidates off (the largest scale that keeps the residual
        # non-negative on their ink) and look the residual up as a second query.
        rows = np.arange(n)
        for j in range(self.n_peel):
            t1 = t[:, j]
            ink = t1 > 0.5
            ratio = np.where(ink, flat / np.where(ink, t1, 1.0), np.inf).min(axis=1)
            ratio = np.where(np.isfinite(ratio), np.clip(ratio, 0.0, 1.0), 0.0)
            resid = np.maximum(flat - ratio[:, None] * t1, 0.0)
            _, rc = self._nn_raw.kneighbors((_unit(resid) - self.mean) @ self.basis, n_neighbors=self.n_residual)
            g11 = gram[:, j, j]
            c1 = c[:, j]
            for m in range(self.n_residual):
                u = self.train[rc[:, m]].reshape(n, -1)
                g22 = np.einsum("nd,nd->n", u, u).astype(np.float64)
                g12 = np.einsum("nd,nd->n", u, t1).astype(np.float64)
                c2 = np.einsum("nd,nd->n", u, flat).astype(np.float64)
                d = g11 * g22 - g12 * g12
                good = d > 1e-6 * g11 * g22
                e = np.where(good, (g22 * c1 * c1 - 2.0 * g12 * c1 * c2 + g11 * c2 * c2) / np.where(good, d, 1.0), 0.0)
                np.maximum(best_explained, e, out=best_explained)
        del rows
        pair = np.clip(1.0 - best_explained / np.maximum(s_sq, 1e-12), 0.0, None)
        return single, pair


def copy_thresholds(test_single: np.ndarray, test_pair: np.ndarray, quantile: float = 0.001) -> tuple[float, float]:
    """The two score thresholds: each lets ``quantile / 2`` of held-out test images through, so
    that real test images score about ``quantile`` in all."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), found {quantile}")
    return float(np.quantile(test_single, quantile / 2)), float(np.quantile(test_pair, quantile / 2))


def robust_copy_rate(samples: np.ndarray, index: CopyIndex, thresholds: tuple[float, float]) -> float:
    """Share of samples that are (hidden) copies: a score strictly below its threshold."""
    single, pair = index.scores(samples)
    return float(((single < thresholds[0]) | (pair < thresholds[1])).mean())


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
