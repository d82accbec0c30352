"""Copy detection for the generate track: is a sample a (hidden) copy of a training image?

A memoriser hides copies by shifting them (up to 2 px), adding noise (sigma up to 0.1), scaling
their brightness (x0.8-1.2) or blending two training images; :class:`CopyIndex` scores each
sample against the training images it may hide, and :func:`copy_rate` counts the samples whose
score lies below thresholds calibrated on held-out test images (:func:`copy_thresholds`).
Pure functions and an in-memory index over arrays; no I/O (the suite caches the index's state
and the test scores on disk)."""

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
    rows, cols = w.sum(axis=2), w.sum(axis=1)          # (N, 28) marginals: two small products, not two 784-d
    mass = rows.sum(axis=1) + 1e-6
    cy = rows @ _YY[:, 0] / mass
    cx = cols @ _XX[0] / mass
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
    z /= np.maximum(np.sqrt(np.einsum("nd,nd->n", z, z))[:, None], 1e-6)
    return z


def _unit_scale(flat: np.ndarray) -> np.ndarray:
    """(N, 1) float32: the factor that scales each row to norm 10 (a typical digit's)."""
    return (10.0 / np.maximum(np.sqrt(np.einsum("nd,nd->n", flat, flat)), 1e-6))[:, None].astype(np.float32)


def _unit(flat: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 10 (a typical digit's): the candidate search ignores brightness."""
    return flat * _unit_scale(flat)


def _kmeans(x: np.ndarray, n_clusters: int, iters: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (C, d) and labels (N,) of a few Lloyd iterations in float32 (a coarse quantiser:
    a poor clustering only costs recall, never a false copy)."""
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), n_clusters, replace=False)].copy()
    for _ in range(iters):
        labels = (c * c).sum(axis=1)[None, :] - 2.0 * (x @ c.T)
        labels = labels.argmin(axis=1)
        counts = np.bincount(labels, minlength=n_clusters)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
    labels = ((c * c).sum(axis=1)[None, :] - 2.0 * (x @ c.T)).argmin(axis=1)
    return c, labels


class _InvertedLists:
    """Approximate k-nearest-neighbour search (an IVF index): each query is compared only with the
    training vectors of its ``nprobe`` nearest clusters, one small float32 GEMM per cluster. A copy
    lies next to its original, in the original's cluster: the search finds it; what it may miss are
    far neighbours, which never make a copy."""

    def __init__(self, vectors: np.ndarray, centroids: np.ndarray, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        self.ids = order
        self.vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
        self.sq = (self.vectors * self.vectors).sum(axis=1)
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.c_sq = (self.centroids * self.centroids).sum(axis=1)
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=len(centroids)))])

    def search(self, q: np.ndarray, k: int, nprobe: int) -> np.ndarray:
        """int (N, k): training ids of (approximately) the k nearest vectors, nearest first."""
        n, n_c = len(q), len(self.centroids)
        nprobe = min(nprobe, n_c)
        cd = self.c_sq[None, :] - 2.0 * (q @ self.centroids.T)
        probes = np.argpartition(cd, nprobe - 1, axis=1)[:, :nprobe] if nprobe < n_c else \
            np.broadcast_to(np.arange(n_c), (n, n_c))
        flat_c = probes.ravel()
        flat_q = np.repeat(np.arange(n), nprobe)
        flat_slot = np.tile(np.arange(nprobe), n)
        order = np.argsort(flat_c, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(flat_c, minlength=n_c))])
        res_d = np.full((n, nprobe * k), np.inf, dtype=np.float32)
        res_i = np.zeros((n, nprobe * k), dtype=np.int64)
        for c in np.flatnonzero(np.diff(starts)):
            lo, hi = self.bounds[c], self.bounds[c + 1]
            if hi == lo:
                continue
            sel = order[starts[c]:starts[c + 1]]
            qs, slots = flat_q[sel], flat_slot[sel]
            d = self.sq[None, lo:hi] - 2.0 * (q[qs] @ self.vectors[lo:hi].T)
            kk = min(k, hi - lo)
            part = np.argpartition(d, kk - 1, axis=1)[:, :kk] if hi - lo > kk else \
                np.broadcast_to(np.arange(kk), (len(qs), kk))
            cols = slots[:, None] * k + np.arange(kk)[None, :]
            res_d[qs[:, None], cols] = np.take_along_axis(d, part, axis=1)
            res_i[qs[:, None], cols] = self.ids[lo + part]
        top = np.argsort(res_d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(res_i, top, axis=1)


class CopyIndex:
    """Finds, for each sample, the training images it may hide and scores how close it is to them.

    1. Canonical frame: every image is re-centred on its ink (:func:`canonical_shifts`), so a
       copy shifted by up to 2 (or 4) pixels lands on its original.
    2. Candidates: the nearest training images in a principal subspace (``n_components`` axes)
       of brightness-normalised images, by an inverted-list index (``n_clusters`` k-means cells,
       ``nprobe`` cells searched per query): the canonical frame for single copies, the frame
       as given for blends (a blend's ink centre is a mix of its parents').
    3. Two scores per sample, both 0 for an exact copy and both calibrated on the test set:
       - ``single`` = 1 - max Pearson correlation between the blurred sample and a blurred
         candidate at 9 shifts (+-1 px around the canonical frame): insensitive to brightness
         scaling (correlation), to additive noise (blur) and to shifts;
       - ``pair`` = min over pairs of candidates of the relative least-squares residual
         ``||s - a t1 - b t2||^2 / ||s||^2``: a blend ``a t1 + (1-a) t2`` scores 0 once both
         parents lie among the candidates. A parent's ink lies inside the blend's ink, so the
         candidates whose ink the sample contains best are peeled off (subtracted at the largest
         scale that keeps the rest non-negative) and the rest looked up as a second query: the
         other parent of a lopsided (70/30) or even (50/50) blend.
    The index is built from arrays only (no I/O); :meth:`state` / ``state=`` let a caller cache
    the costly part (subspace, projections, clusters) on disk.
    """

    STATE_KEYS = ("shifts", "basis", "mean", "canon_centroids", "canon_labels", "canon_projected",
                  "raw_centroids", "raw_labels", "raw_projected")

    def __init__(self, train: np.ndarray, n_components: int = 32, n_clusters: int = 256, nprobe: int = 4,
                 n_candidates: int = 16, n_verify: int = 3, n_peel: int = 2, n_residual: int = 4,
                 state: dict | None = None):
        self.train = _images28(train, "train images")
        n = len(self.train)
        self.flat_train = self.train.reshape(n, -1)
        # uint8 pixels (when given), a quarter of the bytes for the random row gathers of the checks
        given = np.asarray(train)
        self._train_u8 = np.ascontiguousarray(given.reshape(n, -1)) if given.dtype == np.uint8 else None
        self.n_candidates = int(min(n_candidates, n))
        self.n_verify = int(min(n_verify, self.n_candidates))
        self.n_peel = int(min(n_peel, self.n_candidates))
        self.n_residual = int(min(n_residual, n))
        self.nprobe = int(nprobe)
        if state is None:
            state = self._build(n_components, min(n_clusters, n))
        expected = self.state_shapes(n, *np.shape(state["canon_centroids"]))
        found = {k: np.shape(state[k]) if k in state else None for k in self.STATE_KEYS}
        if found != expected:
            raise ValueError(f"CopyIndex state does not match {n} training images (expected shapes {expected}, "
                             f"found {found}); rebuild it")
        self._state = {k: np.asarray(state[k]) for k in self.STATE_KEYS}
        self.shifts = self._state["shifts"].astype(np.int64)
        self.basis = self._state["basis"].astype(np.float32)
        self.mean = self._state["mean"].astype(np.float32)
        self._canon = _InvertedLists(self._state["canon_projected"], self._state["canon_centroids"],
                                     self._state["canon_labels"].astype(np.int64))
        self._raw = _InvertedLists(self._state["raw_projected"], self._state["raw_centroids"],
                                   self._state["raw_labels"].astype(np.int64))

    @classmethod
    def state_shapes(cls, n_train: int, n_clusters: int = 256, n_components: int = 32) -> dict[str, tuple]:
        """The shape of each array of :meth:`state` (for a disk cache that checks them)."""
        return {"shifts": (n_train, 2), "basis": (784, n_components), "mean": (784,),
                "canon_centroids": (n_clusters, n_components), "canon_labels": (n_train,),
                "canon_projected": (n_train, n_components), "raw_centroids": (n_clusters, n_components),
                "raw_labels": (n_train,), "raw_projected": (n_train, n_components)}

    def _build(self, n_components: int, n_clusters: int) -> dict[str, np.ndarray]:
        shifts = canonical_shifts(self.train)
        canon = _unit(_shift(self.train, shifts).reshape(len(self.train), -1))
        sub = canon[:: max(1, len(canon) // 10000)]
        mean = sub.mean(axis=0)
        sub = sub - mean
        cov = (sub.T @ sub).astype(np.float64)
        basis = np.random.default_rng(0).standard_normal((cov.shape[0], min(n_components, cov.shape[0])))
        for _ in range(4):
            basis, _ = np.linalg.qr(cov @ basis)
        self.basis, self.mean = np.ascontiguousarray(basis, dtype=np.float32), mean.astype(np.float32)
        canon_p = self._project(canon, unit=False)
        raw_p = self._project(self.flat_train)
        cc, cl = _kmeans(canon_p, n_clusters)
        rc, rl = _kmeans(raw_p, n_clusters, seed=1)
        return {"shifts": shifts, "basis": self.basis, "mean": self.mean, "canon_centroids": cc,
                "canon_labels": cl, "canon_projected": canon_p, "raw_centroids": rc, "raw_labels": rl,
                "raw_projected": raw_p}

    def _project(self, flat: np.ndarray, unit: bool = True) -> np.ndarray:
        """``(unit(flat) - mean) @ basis`` as ``scale * (flat @ basis) - mean @ basis``: one GEMM on
        the rows as given, no (N, 784) temporaries."""
        p = flat @ self.basis
        if unit:
            p *= _unit_scale(flat)
        p -= self.mean @ self.basis
        return np.ascontiguousarray(p, dtype=np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return dict(self._state)

    def scores(self, samples: np.ndarray, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(single (N,), pair (N,)) float64 copy scores; lower = more like a copy (0 = exact).

        Each index search runs once over all samples (its cost is per cluster, not per sample);
        the checks on the candidates run in chunks of ``chunk`` samples (bounded memory). A
        sample's scores do not depend on the other samples."""
        x = _images28(samples, "samples")
        return self._single_scores(x, chunk), self._pair_scores(x.reshape(len(x), -1), chunk)

    def copied(self, samples: np.ndarray, thresholds: tuple[float, float], chunk: int = 1000) -> np.ndarray:
        """bool (N,): ``single < thresholds[0] or pair < thresholds[1]`` (the same flags as
        :meth:`scores`), with the pair score computed only for samples the single score has not
        flagged already: a memoriser's plain, shifted, noisy or rescaled copies skip it."""
        x = _images28(samples, "samples")
        out = self._single_scores(x, chunk) < thresholds[0]
        rest = np.flatnonzero(~out)
        if len(rest):
            out[rest] = self._pair_scores(x[rest].reshape(len(rest), -1), chunk) < thresholds[1]
        return out

    def _single_scores(self, x: np.ndarray, chunk: int) -> np.ndarray:
        n = len(x)
        canon = _shift(x, canonical_shifts(x))
        cand = self._canon.search(self._project(canon.reshape(n, -1)), self.n_verify, self.nprobe)
        single = np.empty(n)
        for i in range(0, n, chunk):
            single[i:i + chunk] = self._single(canon[i:i + chunk], cand[i:i + chunk])
        return single

    def _pair_scores(self, flat: np.ndarray, chunk: int) -> np.ndarray:
        n = len(flat)
        raw_cand = self._raw.search(self._project(flat), self.n_candidates, self.nprobe)
        best = np.empty(n)
        resid = np.empty((n, self.n_peel, flat.shape[1]), dtype=np.float32)
        peeled = np.empty((n, self.n_peel), dtype=np.int64)
        buffers = self._gather_buffers(min(n, chunk) * self.n_candidates)
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            best[sl], peeled[sl], resid[sl] = self._pair(flat[sl], raw_cand[sl], buffers)
        # the other parent of a blend: the rest of the sample once a parent is peeled off
        rc = self._raw.search(self._project(resid.reshape(n * self.n_peel, -1)), self.n_residual, self.nprobe)
        rc = rc.reshape(n, self.n_peel, self.n_residual)
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            best[sl] = np.maximum(best[sl], self._peeled_pairs(flat[sl], peeled[sl], rc[sl]))
        s_sq = np.einsum("nd,nd->n", flat, flat).astype(np.float64)
        return np.clip(1.0 - best / np.maximum(s_sq, 1e-12), 0.0, None)

    def _single(self, canon: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """1 - the best Pearson correlation of the blurred canonical sample with a blurred candidate at +-1 px."""
        n = len(canon)
        zs = _standardise(_blur(canon)).reshape(n, _SIDE, _SIDE)
        rolled = [np.roll(zs, (dy, dx), axis=(1, 2)).reshape(n, -1) for dy, dx in _VERIFY_SHIFTS]
        best = np.full(n, -1.0, dtype=np.float32)
        for j in range(self.n_verify):
            rows = cand[:, j]
            zt = _standardise(_blur(_shift(self.train[rows], self.shifts[rows])))
            for r in rolled:
                np.maximum(best, np.einsum("nd,nd->n", r, zt), out=best)
        return 1.0 - best.astype(np.float64)

    def _gather_buffers(self, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Reused buffers for :meth:`_gather` (a fresh (n*16, 784) array per chunk cost more in page
        faults than the gather itself)."""
        u8 = None if self._train_u8 is None else np.empty((rows, self.flat_train.shape[1]), dtype=np.uint8)
        return np.empty((rows, self.flat_train.shape[1]), dtype=np.float32), u8

    def _gather(self, ids: np.ndarray, buffers) -> np.ndarray:
        """``flat_train[ids]`` into the reused buffers; from the uint8 pixels when there are some
        (then converted exactly as :func:`_pixels` does: bitwise the same values)."""
        out, u8 = buffers[0][:len(ids)], None if buffers[1] is None else buffers[1][:len(ids)]
        if u8 is None:
            return np.take(self.flat_train, ids, axis=0, out=out)
        np.take(self._train_u8, ids, axis=0, out=u8)
        np.copyto(out, u8)
        out /= np.float32(255.0)
        return out

    def _pair(self, flat: np.ndarray, cand: np.ndarray, buffers):
        """The best two-candidate fit (explained ``||s||^2``), the candidates to peel and what is left after peeling each."""
        n, k = len(flat), cand.shape[1]
        t = self._gather(cand.reshape(-1), buffers).reshape(n, k, -1)
        gram = np.matmul(t, t.transpose(0, 2, 1)).astype(np.float64)            # (n, k, k)
        c = np.einsum("nkd,nd->nk", t, flat).astype(np.float64)                 # (n, k)
        iu, ju = np.triu_indices(k, 1)
        best = _explained(gram[:, iu, iu], gram[:, ju, ju], gram[:, iu, ju], c[:, iu], c[:, ju]).max(axis=1)
        # peel the candidates whose ink the sample contains best (a parent's ink is inside the blend's)
        support = (flat > 0.05).astype(np.float32)
        contained = np.einsum("nkd,nd->nk", t, support) / np.maximum(t.sum(axis=2), 1e-6)
        peel = np.argsort(-contained, axis=1, kind="stable")[:, :self.n_peel]
        rows = np.arange(n)
        resid = np.empty((n, self.n_peel, flat.shape[1]), dtype=np.float32)
        for p in range(self.n_peel):
            t1 = t[rows, peel[:, p]]
            on = t1 > 0.5
            ratio = np.where(on, flat / np.where(on, t1, 1.0), np.inf).min(axis=1)
            ratio = np.where(np.isfinite(ratio), np.clip(ratio, 0.0, 1.0), 0.0)
            resid[:, p] = np.maximum(flat - ratio[:, None] * t1, 0.0)
        return best, cand[rows[:, None], peel], resid

    def _peeled_pairs(self, flat: np.ndarray, peeled: np.ndarray, rc: np.ndarray) -> np.ndarray:
        best = np.zeros(len(flat))
        for p in range(peeled.shape[1]):
            t1 = self.flat_train[peeled[:, p]]
            g11 = np.einsum("nd,nd->n", t1, t1).astype(np.float64)
            c1 = np.einsum("nd,nd->n", t1, flat).astype(np.float64)
            for m in range(rc.shape[2]):
                u = self.flat_train[rc[:, p, m]]
                e = _explained(g11, np.einsum("nd,nd->n", u, u).astype(np.float64),
                               np.einsum("nd,nd->n", u, t1).astype(np.float64), c1,
                               np.einsum("nd,nd->n", u, flat).astype(np.float64))
                np.maximum(best, e, out=best)
        return best


def _explained(gii, gjj, gij, ci, cj):
    """The part of ``||s||^2`` that the least-squares fit ``a t_i + b t_j`` explains (0 when the
    two are (nearly) collinear: the single score covers that case)."""
    det = gii * gjj - gij * gij
    ok = det > 1e-6 * gii * gjj
    return np.where(ok, (gjj * ci * ci - 2.0 * gij * ci * cj + gii * cj * cj) / np.where(ok, det, 1.0), 0.0)


def copy_thresholds(test_single: np.ndarray, test_pair: np.ndarray, quantile: float = 0.001) -> tuple[float, float]:
    """The two score thresholds: each lets ``quantile / 2`` of held-out test images through, so
    that real test images score about ``quantile`` in all."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), found {quantile}")
    return float(np.quantile(test_single, quantile / 2)), float(np.quantile(test_pair, quantile / 2))


def copy_rate(samples: np.ndarray, index: CopyIndex, thresholds: tuple[float, float]) -> float:
    """Share of samples that are (hidden) copies of a training image: a ``single`` or ``pair``
    score strictly below its threshold (:func:`copy_thresholds`). A memoriser scores near 1,
    new digits near 0, held-out test images about the calibration quantile (0.001)."""
    return float(index.copied(samples, thresholds).mean())
