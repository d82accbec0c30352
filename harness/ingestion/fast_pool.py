"""Chainer's CPU max pooling for non-overlapping windows, bit for bit, without ``im2col``.

Chainer 7.8.1 computes ``F.max_pooling_2d`` on NumPy arrays (``MaxPoolingND.forward_cpu``) by
padding the input, copying it into an ``im2col`` array ``(N, C, kh*kw, outH, outW)`` and taking
``max`` and ``argmax`` over the window axis (NumPy's ``argmax`` over a non-last axis copies the
array again and then runs one small search per output pixel); the gradient
(``MaxPoolingNDGrad.forward_cpu``) scatters ``gy`` into a zero ``(N*C*outH*outW*kh*kw,)`` array by
fancy indexing and adds it back with ``col2im``. On the course CNN (2x2 pooling of
(100, 32, 28, 28) float32) that is about a fifth of a training step once the convolutions are fast.

When the windows do not overlap (``ksize == stride``), there is no padding and the window divides
the input (so ``cover_all`` changes nothing), every input pixel lies in exactly one window, and
:func:`install` replaces those two methods with

* **forward**: the maximum by ``numpy.maximum`` over the ``kh`` rows and then the ``kw`` columns of
  each window (strided views of the input, no copy), and the index Chainer's ``argmax`` returns
  (the first maximum in row-major window order) as ``ne_0 * (1 + ne_1 * (1 + ...))`` with
  ``ne_j = x_j != max``, in ``uint8``;
* **gradient**: one scatter of ``0 + gy`` into a zero array at the flat positions of the indexes.

both a chunk of planes at a time (``CHUNK_BYTES`` of input, which stays in the core's cache across
the passes). The results are Chainer's bit for bit: the maximum is exact, the indexes follow
``argmax``'s tie-breaking, and the gradient is ``0 + gy`` where Chainer's ``col2im`` adds ``gy`` to
zero (so ``-0.0`` becomes ``0.0`` in both). Two cases where equal values differ in their bits are
handed to Chainer instead: an input holding ``-0.0`` (Chainer's maximum of a ``+0``/``-0`` tie
depends on NumPy's SIMD or scalar loop) and a window holding a NaN (its payload).

What is patched (class attributes of ``chainer.functions.pooling.max_pooling_nd``, restored by
:func:`uninstall`): ``MaxPoolingND.forward_cpu`` (``F.max_pooling_2d``, ``F.max_pooling_nd`` on
2-D planes, ``L.*`` users of them), which sets ``_in_shape``, ``_in_dtype`` and ``indexes`` as
Chainer does (``return_indices=True``, ``F.upsampling_2d`` and ``F.unpooling_2d`` users see the
same indexes), and ``MaxPoolingNDGrad.forward_cpu``, the input gradient. Double backpropagation
(``MaxPoolingNDWithIndexes``, a gather at the same indexes) stays Chainer's own code.

Covered: NumPy ``float32``/``float64`` 4-D inputs, ``ksize == stride`` (square or not), ``pad=0``,
height and width divisible by the window, ``cover_all`` either way, any batch and channel count,
any memory layout (copied to C order first). Everything else runs Chainer's own code unchanged,
counted as a fallback in :func:`stats`: overlapping or gapped windows (``stride != ksize``),
padding, remainders, 1-D and 3-D pooling, ``float16``, iDeep (``chainer.config.use_ideep``), the
two bit-level cases above, and everything on CuPy or ChainerX.
"""

from __future__ import annotations

import numpy as np

from harness.chainer_env import chainer  # the shims first, then Chainer
from harness.ingestion.patching import MethodPatches

_intel64 = chainer.backends.intel64
_mp = chainer.functions.pooling.max_pooling_nd
_conv = chainer.utils.conv

NAME = "harness-fast-pool"

# Bytes of input (forward) or of input gradient (backward) handled per chunk of planes: small
# enough to stay in a core's cache across the passes, large enough that each NumPy call is long.
# Measured on the 2-core machine (course-CNN shapes): 0.25-1 MiB best; the whole batch at once is
# about 15-20% slower, 128 KiB chunks 10% slower.
CHUNK_BYTES = 1 << 19

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT_OF = {np.dtype(np.float32): np.dtype(np.int32), np.dtype(np.float64): np.dtype(np.int64)}


# --------------------------------------------------------------------------- the arithmetic


def _planes_per_chunk(plane_bytes: int, planes: int) -> int:
    return max(1, min(planes, CHUNK_BYTES // max(1, plane_bytes)))


def pool_forward(x, kh: int, kw: int):
    """Max pooling of (N, C, H, W) ``x`` by non-overlapping (kh, kw) windows (H % kh == W % kw == 0).

    Returns ``(y, indexes)`` as Chainer computes them (``indexes``: ``intp``, the first maximum in
    row-major window order), or None where equal values may differ in their bits (``-0.0`` in the
    input, NaN in a window): the caller then runs Chainer's own code.
    """
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    k = kh * kw
    planes = n * c
    x3 = x.reshape(planes, h, w)
    y = np.empty((planes, oh, ow), dtype=x.dtype)
    indexes = np.empty((planes, oh, ow), dtype=np.intp)
    ints = _INT_OF[x.dtype]
    negative_zero = np.iinfo(ints).min  # the bits of -0.0 read as a signed integer: the smallest one
    acc_dtype = np.uint8 if k <= 256 else np.intp
    step = _planes_per_chunk(h * w * x.itemsize, planes)
    for p0 in range(0, planes, step):
        xc, yc = x3[p0:p0 + step], y[p0:p0 + step]
        if k == 1:
            yc[...] = xc
            indexes[p0:p0 + step] = 0
            continue
        if xc.view(ints).min() == negative_zero:
            return None
        # the maximum: over the kh rows of each window (contiguous runs), then over the kw columns
        rows = xc if kh == 1 else np.maximum(xc[:, 0::kh], xc[:, 1::kh])
        for a in range(2, kh):
            np.maximum(rows, xc[:, a::kh], out=rows)
        if kw == 1:
            yc[...] = rows
        else:
            np.maximum(rows[:, :, 0::kw], rows[:, :, 1::kw], out=yc)
            for b in range(2, kw):
                np.maximum(yc, rows[:, :, b::kw], out=yc)
        if np.isnan(yc).any():
            return None
        # first j (row-major in the window) with x_j == max: ne_0 * (1 + ne_1 * (1 + ... ne_{k-2}))
        acc = None
        for j in range(k - 2, -1, -1):
            ne = np.not_equal(xc[:, j // kw::kh, j % kw::kw], yc)
            if acc is None:
                acc = ne.view(np.uint8) if acc_dtype is np.uint8 else ne.astype(acc_dtype)
            else:
                acc += 1
                acc *= ne.view(np.uint8) if acc_dtype is np.uint8 else ne
        indexes[p0:p0 + step] = acc
    return y.reshape(n, c, oh, ow), indexes.reshape(n, c, oh, ow)


def pool_backward(gy, indexes, kh: int, kw: int, h: int, w: int):
    """The input gradient (N, C, h, w) of :func:`pool_forward`: ``0 + gy`` at each window's index,
    zero elsewhere (bit for bit Chainer's ``col2im`` of the scattered ``gy``)."""
    n, c, oh, ow = gy.shape
    planes = n * c
    gy2 = gy.reshape(planes, oh * ow)
    idx2 = indexes.reshape(planes, oh * ow)
    gx = np.zeros((planes, h * w), dtype=gy.dtype)
    zero = gy.dtype.type(0)
    step = _planes_per_chunk(h * w * gy.itemsize, planes)
    # flat offset of window position j = a*kw + b from the window's corner, and of each window's
    # corner in a chunk of planes
    offsets = np.array([a * w + b for a in range(kh) for b in range(kw)], dtype=np.intp)
    corners = (np.arange(oh, dtype=np.intp)[:, None] * (kh * w) + np.arange(ow, dtype=np.intp) * kw).ravel()
    corners = (np.arange(step, dtype=np.intp)[:, None] * (h * w) + corners).ravel()
    for p0 in range(0, planes, step):
        m = min(step, planes - p0)
        pos = offsets.take(idx2[p0:p0 + m], mode="clip").ravel()
        pos += corners[:m * oh * ow]
        gx[p0:p0 + m].ravel()[pos] = (gy2[p0:p0 + m] + zero).ravel()  # 0 + gy as col2im: -0.0 -> 0.0
    return gx.reshape(n, c, h, w)


# --------------------------------------------------------------------------- the patched methods


def _window(func, shape):
    """(kh, kw) when ``func`` pools ``shape`` by non-overlapping windows that divide it, else None."""
    if func.ndim != 2 or len(shape) != 4:
        return None
    (kh, kw), (sy, sx), (ph, pw) = tuple(func.ksize), tuple(func.stride), tuple(func.pad)
    h, w = shape[2:]
    if (kh, kw) != (sy, sx) or ph or pw or kh < 1 or kw < 1 or h < kh or w < kw or h % kh or w % kw:
        return None
    # Chainer's own output size (cover_all or not) must be the number of windows
    if (_conv.get_conv_outsize(h, kh, sy, ph, cover_all=func.cover_all) != h // kh
            or _conv.get_conv_outsize(w, kw, sx, pw, cover_all=func.cover_all) != w // kw):
        return None
    return kh, kw


def _ideep(arrays) -> bool:
    return bool(_intel64.should_use_ideep(">=auto") and _intel64.inputs_all_ready(arrays))


def _max_pool_forward_cpu(self, inputs):
    cls = _mp.MaxPoolingND
    x = inputs[0]
    window = _window(self, x.shape)
    if window is None or type(x) is not np.ndarray or x.dtype not in _DTYPES or _ideep(inputs):
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    result = pool_forward(x, *window)
    if result is None:  # -0.0 or NaN: Chainer's own bits
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    y, indexes = result
    _patches.served()
    self._in_shape = x.shape  # as Chainer's forward_cpu (no retained inputs there)
    self._in_dtype = x.dtype
    self.indexes = indexes
    return y,


def _max_pool_grad_forward_cpu(self, inputs):
    cls = _mp.MaxPoolingNDGrad
    func, gy = self.func, inputs[0]
    in_shape = getattr(func, "_in_shape", None)
    indexes = getattr(func, "indexes", None)
    window = _window(func, in_shape) if in_shape is not None else None
    if (window is None or type(gy) is not np.ndarray or gy.dtype not in _DTYPES
            or gy.dtype != func._in_dtype or type(indexes) is not np.ndarray or indexes.dtype.kind not in "iu"
            or gy.shape != tuple(in_shape[:2]) + (in_shape[2] // window[0], in_shape[3] // window[1])
            or indexes.shape != gy.shape or _ideep(inputs)):
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    _patches.served()
    return pool_backward(gy, indexes, window[0], window[1], in_shape[2], in_shape[3]),


_patches = MethodPatches(NAME, (
    (_mp.MaxPoolingND, "forward_cpu", _max_pool_forward_cpu),
    (_mp.MaxPoolingNDGrad, "forward_cpu", _max_pool_grad_forward_cpu),
))
# This module's interface: install() / uninstall() / installed(), describe() for results,
# stats() / reset_stats() (calls served and handed back), enabled(on) for a block.
install, uninstall, installed = _patches.install, _patches.uninstall, _patches.installed
describe, stats, reset_stats, enabled = _patches.describe, _patches.stats, _patches.reset_stats, _patches.enabled
