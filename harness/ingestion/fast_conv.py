"""The harness's own CPU 2-D convolution and deconvolution, for every student model on the CPU.

Chainer 7.8.1 computes ``F.convolution_2d`` and ``F.deconvolution_2d`` on NumPy arrays with
``im2col`` and ``numpy.tensordot`` over non-contiguous views: every call allocates and page-faults
an ``im2col`` buffer as large as the layer's input times the kernel area (90 MB for a 3x3, 32->32
convolution of 100 MNIST-sized images), transposes it again inside ``tensordot``, and does the
gradient's ``col2im`` over a rolled view. :func:`install` replaces the CPU methods of the three
nodes that do that work with versions that

* build the ``im2col`` matrix a few images at a time (``CHUNK_BYTES``) into one reused,
  contiguous buffer laid out ``(C*kh*kw, images*outH*outW)``, so that one BLAS matrix product
  (multithreaded, no transposition copy) serves a whole chunk and the buffer stays in cache;
* compute the gradient with respect to the input (a deconvolution) of a stride-1 convolution as a
  convolution of the output gradient with the flipped kernel, and any other deconvolution as one
  product per chunk followed by ``kh*kw`` strided slice-adds (``col2im``).

What is patched (class attributes, restored by :func:`uninstall`):

* ``Convolution2DFunction.forward_cpu``: the convolution itself (``F.convolution_2d``,
  ``L.Convolution2D``, ``F.dilated_convolution_2d``, ``L.DilatedConvolution2D``), and through
  Chainer's unchanged ``backward`` also the gradient of a deconvolution with respect to its input;
* ``Convolution2DGradW.forward_cpu``: the gradient with respect to the kernel, of convolutions and
  deconvolutions alike;
* ``Deconvolution2DFunction.forward_cpu``: the deconvolution (``F.deconvolution_2d``,
  ``L.Deconvolution2D``), and the gradient of a convolution with respect to its input.

Chainer's ``backward`` methods, type checks, output sizes, ``retain_inputs`` and double
backpropagation are unchanged: only the arithmetic of ``forward_cpu`` is ours.

Covered: NumPy ``float32`` or ``float64`` inputs all of one dtype, any stride, padding, dilation,
groups, ``cover_all``, ``outsize``, with or without bias. Everything else runs Chainer's own code
unchanged (counted as a fallback in :func:`stats`): ``float16`` and mixed dtypes, iDeep arrays or
``chainer.config.use_ideep``, ``cudnn_fast=True`` (Chainer's own error), non-standard memory
layouts, outputs of size zero or less (Chainer's own error), and everything on CuPy or ChainerX.
Not touched at all: ``F.convolution_nd`` / ``L.ConvolutionND`` (including 2-D ones),
``F.depthwise_convolution_2d``, ``F.local_convolution_2d``.

Results agree with Chainer's to rounding (the sums are the same, in another order): well within
1e-5 of the largest magnitude for float32 (``tests/test_fast_conv.py``), not bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from harness.chainer_env import chainer  # noqa: F401  (shims first, then Chainer)
from harness.ingestion.patching import MethodPatches
from chainer.backends import intel64  # noqa: E402
from chainer.functions.connection import convolution_2d as _c2d  # noqa: E402
from chainer.functions.connection import deconvolution_2d as _d2d  # noqa: E402
from chainer.utils import conv as _conv  # noqa: E402

NAME = "harness-fast-conv"

# Bytes of im2col (or col2im) buffer filled per chunk of images: small enough to stay in the
# core's cache (2 MiB of L2 per core here), large enough that each matrix product is big. Measured
# on the 2-core machine (bench/bench_conv.py --ops --chunks ...): 0.5-1 MiB best with one worker
# per core; one buffer for the whole batch (Chainer's way) is 1.5-2x slower on 28x28x32 layers.
CHUNK_BYTES = 1 << 20

# ... but each chunk's product has at least this many pixel columns: a 3x3 image with 512 channels
# would otherwise make many thin products that each stream the whole kernel (measured 0.8x of
# Chainer on the DCGAN generator's first deconvolution before this floor).
MIN_PRODUCT_COLUMNS = 512

# Worker threads that fill and multiply chunks side by side (BLAS single-threaded, always):
# None = one per CPU this process may use (or the grader's --jobs share, HARNESS_CPU_THREADS), at
# most LANES. 1 = the caller's thread only.
# Measured on 2 cores: 1.2-1.4x faster than one thread feeding a 2-thread OpenBLAS, and far less
# hurt when another process takes a core (OpenBLAS's threads wait for each other at every call).
THREADS = None

# Chunks are dealt to LANES lanes in a fixed order (chunk i to lane i % LANES) and the kernel
# gradient sums each lane, then the lanes in order: results do not depend on the thread count.
LANES = 4

# Stride-1 deconvolutions (the input gradient of every stride-1 convolution) as a convolution with
# the flipped kernel rather than product + col2im (measured faster: bench/bench_conv.py --ops).
STRIDE1_DECONV_AS_CONV = True

# Convolutions (groups=1) of at least this many input channels build their im2col channels-last
# (contiguous runs of C values, then a (pixels, K) @ (K, O) product); fewer channels gather better
# channels-first (runs of a row). Measured: C=16 and more 20-40% faster channels-last, C<=8 slower.
NHWC_MIN_CHANNELS = 12

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_lock = threading.Lock()
_pool_state: dict[str, object] = {}


def _pair(v):
    return tuple(v) if hasattr(v, "__getitem__") else (v, v)


# --------------------------------------------------------------------------- chunks and threads


def _images_per_chunk(bytes_per_image: int, n: int, pixels_per_image: int) -> int:
    """Images per chunk: ``CHUNK_BYTES`` of buffer, but at least ``MIN_PRODUCT_COLUMNS`` pixels, so
    that small images with large kernels do not stream the weights once per tiny product."""
    step = max(CHUNK_BYTES // max(1, bytes_per_image), -(-MIN_PRODUCT_COLUMNS // max(1, pixels_per_image)))
    return max(1, min(n, step))


def _threads() -> int:
    if THREADS is not None:
        return max(1, min(int(THREADS), LANES))
    share = os.environ.get("HARNESS_CPU_THREADS", "")  # the grader's --jobs share of the cores
    if share.isdigit() and int(share) > 0:
        return max(1, min(int(share), LANES))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, LANES))


def _pool(workers: int):
    """A lazily made thread pool of ``workers - 1`` threads (None for one worker: the caller's thread)
    and a way to make BLAS single-threaded (None without threadpoolctl)."""
    with _lock:
        if _pool_state.get("pid") != os.getpid():  # new, or inherited by a fork without its threads
            _pool_state.clear()
            _pool_state["pid"] = os.getpid()
        if workers > 1 and _pool_state.get("workers", 1) < workers:
            old = _pool_state.get("pool")
            _pool_state["pool"] = ThreadPoolExecutor(workers - 1, thread_name_prefix="fast_conv")
            _pool_state["workers"] = workers
            if old is not None:
                old.shutdown(wait=False)
        if "blas" not in _pool_state:
            try:
                import threadpoolctl

                _pool_state["blas"] = threadpoolctl.ThreadpoolController().select(user_api="blas")
            except Exception:
                _pool_state["blas"] = None
        return _pool_state.get("pool"), _pool_state["blas"]


def _run_chunks(n: int, step: int, body) -> None:
    """``body(n0, m, lane)`` for every chunk of ``step`` images (the last may be smaller).

    Chunk i belongs to lane ``i % LANES``; a lane's chunks run in order on one thread, and lanes
    run side by side on up to ``THREADS`` threads. Bodies write disjoint outputs or per-lane sums.
    """
    starts = list(range(0, n, step))
    workers = min(_threads(), len(starts))

    def lanes_of(worker):
        for lane in range(worker, LANES, workers):
            for n0 in starts[lane::LANES]:
                body(n0, min(step, n - n0), lane)

    pool, blas = _pool(workers)
    # BLAS single-threaded whatever the number of workers: OpenBLAS's products differ in the last bits
    # with its thread count, and a model must train to the same bits alone or beside others (--jobs).
    with (blas.limit(limits=1) if blas is not None else contextlib.nullcontext()):
        if workers <= 1:
            for i, n0 in enumerate(starts):
                body(n0, min(step, n - n0), i % LANES)
            return
        others = [pool.submit(lanes_of, worker) for worker in range(1, workers)]
        try:
            lanes_of(0)  # this thread is worker 0
        finally:
            for f in others:
                f.result()  # waits, and re-raises a worker's error


class _Scratch:
    """One reusable buffer per lane, made on first use (each lane runs on a single thread)."""

    def __init__(self, size: int, dtype):
        self.size, self.dtype, self.bufs = size, dtype, [None] * LANES

    def __getitem__(self, lane: int):
        buf = self.bufs[lane]
        if buf is None:
            buf = self.bufs[lane] = np.empty(self.size, dtype=self.dtype)
        return buf


# --------------------------------------------------------------------------- the arithmetic


def _im2col_view(x, kh, kw, sy, sx, ph, pw, dy, dx, oh, ow):
    """A (C, kh, kw, N, oh, ow) view of ``x`` padded with zeros: col[c,i,j,n,y,x] = xpad[n,c,..]."""
    n, c, h, w = x.shape
    need_h = (kh - 1) * dy + (oh - 1) * sy + 1  # padded rows the windows reach
    need_w = (kw - 1) * dx + (ow - 1) * sx + 1
    if ph or pw or need_h > h or need_w > w:
        xp = np.zeros((n, c, max(need_h, 1), max(need_w, 1)), dtype=x.dtype)
        hh, ww = min(h, need_h - ph), min(w, need_w - pw)  # rows/cols of x inside the windows
        if hh > 0 and ww > 0:
            xp[:, :, ph:ph + hh, pw:pw + ww] = x[:, :, :hh, :ww]
    else:
        xp = x
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, (c, kh, kw, n, oh, ow), (s1, s2 * dy, s3 * dx, s0, s2 * sy, s3 * sx),
                      writeable=False)


def _im2col_view_nhwc(x, kh, kw, sy, sx, ph, pw, dy, dx, oh, ow):
    """A (N, oh, ow, kh, kw, C) view of a zero-padded channels-last copy of ``x``."""
    n, c, h, w = x.shape
    need_h = (kh - 1) * dy + (oh - 1) * sy + 1
    need_w = (kw - 1) * dx + (ow - 1) * sx + 1
    xp = np.zeros((n, max(need_h, 1), max(need_w, 1), c), dtype=x.dtype)
    hh, ww = min(h, need_h - ph), min(w, need_w - pw)
    if hh > 0 and ww > 0:
        xp[:, ph:ph + hh, pw:pw + ww, :] = x[:, :, :hh, :ww].transpose(0, 2, 3, 1)
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, (n, oh, ow, kh, kw, c), (s0, s1 * sy, s2 * sx, s1 * dy, s2 * dx, s3),
                      writeable=False)


def _conv2d_forward_nhwc(x, W, b, sy, sx, ph, pw, dy, dx, oh, ow):
    """groups=1, many channels: im2col rows are (kh, kw, C) runs of C contiguous values, and the
    product is (images*oh*ow, K) @ (K, O), the faster orientation for OpenBLAS when O is small."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    cols = _im2col_view_nhwc(x, kh, kw, sy, sx, ph, pw, dy, dx, oh, ow)
    k, p = c * kh * kw, oh * ow
    # (O, kh, kw, C): a copy that keeps O outermost (cheap), used transposed by BLAS
    wt = np.ascontiguousarray(W.transpose(0, 2, 3, 1), dtype=x.dtype).reshape(o, k).T
    y = np.empty((n, o, p), dtype=x.dtype)
    step = _images_per_chunk(k * p * x.itemsize, n, p)
    scratch = _Scratch(k * step * p, x.dtype)

    def body(n0, m, lane):
        col = scratch[lane][:k * m * p]
        np.copyto(col.reshape(m, oh, ow, kh, kw, c), cols[n0:n0 + m])
        yy = np.dot(col.reshape(m * p, k), wt)  # (m*p, o)
        if b is not None:
            yy += b
        y[n0:n0 + m] = yy.reshape(m, p, o).transpose(0, 2, 1)

    _run_chunks(n, step, body)
    return y.reshape(n, o, oh, ow)


def conv2d_forward(x, W, b=None, stride=1, pad=0, dilate=1, groups=1, cover_all=False):
    """``F.convolution_2d(x, W, b, ...)`` on NumPy arrays: (N, C, H, W) -> (N, O, oh, ow)."""
    (sy, sx), (ph, pw), (dy, dx) = _pair(stride), _pair(pad), _pair(dilate)
    n, c, h, w = x.shape
    o, cg, kh, kw = W.shape
    g = groups
    oh = _conv.get_conv_outsize(h, kh, sy, ph, cover_all=cover_all, d=dy)
    ow = _conv.get_conv_outsize(w, kw, sx, pw, cover_all=cover_all, d=dx)
    if g == 1 and c >= NHWC_MIN_CHANNELS:
        return _conv2d_forward_nhwc(x, W, b, sy, sx, ph, pw, dy, dx, oh, ow)
    cols = _im2col_view(x, kh, kw, sy, sx, ph, pw, dy, dx, oh, ow)
    k, p = c * kh * kw, oh * ow
    w3 = np.ascontiguousarray(W, dtype=x.dtype).reshape(g, o // g, cg * kh * kw)
    b3 = None if b is None else b.reshape(g, o // g, 1)
    y = np.empty((n, o, p), dtype=x.dtype)
    step = _images_per_chunk(k * p * x.itemsize, n, p)
    scratch = _Scratch(k * step * p, x.dtype)

    def body(n0, m, lane):
        col = scratch[lane][:k * m * p]
        np.copyto(col.reshape(c, kh, kw, m, oh, ow), cols[:, :, :, n0:n0 + m])
        yy = np.matmul(w3, col.reshape(g, cg * kh * kw, m * p))  # (g, o/g, m*p): one GEMM per group
        if b3 is not None:
            yy += b3
        y[n0:n0 + m] = yy.reshape(o, m, p).transpose(1, 0, 2)

    _run_chunks(n, step, body)
    return y.reshape(n, o, oh, ow)


def conv2d_grad_w(x, gy, ksize, stride=1, pad=0, dilate=1, groups=1, cover_all=False):
    """The kernel gradient of ``F.convolution_2d``: x (N, C, H, W), gy (N, O, oh, ow) -> (O, C/g, kh, kw)."""
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = _pair(ksize), _pair(stride), _pair(pad), _pair(dilate)
    n, c, h, w = x.shape
    _, o, oh, ow = gy.shape
    g = groups
    cg = c // g
    cols = _im2col_view(x, kh, kw, sy, sx, ph, pw, dy, dx, oh, ow)
    k, p = c * kh * kw, oh * ow
    acc = [None] * LANES  # one sum per lane
    step = _images_per_chunk((k + o) * p * x.itemsize, n, p)
    scratch = _Scratch(k * step * p, x.dtype)
    gscratch = _Scratch(o * step * p, x.dtype)

    def body(n0, m, lane):
        col = scratch[lane][:k * m * p]
        np.copyto(col.reshape(c, kh, kw, m, oh, ow), cols[:, :, :, n0:n0 + m])
        g2 = gscratch[lane][:o * m * p]
        np.copyto(g2.reshape(o, m, oh, ow), gy[n0:n0 + m].transpose(1, 0, 2, 3))
        part = np.matmul(g2.reshape(g, o // g, m * p), col.reshape(g, cg * kh * kw, m * p).transpose(0, 2, 1))
        if acc[lane] is None:
            acc[lane] = part
        else:
            acc[lane] += part

    _run_chunks(n, step, body)
    sums = [a for a in acc if a is not None]  # in lane order, whatever the thread count
    if not sums:  # no images
        return np.zeros((o, cg, kh, kw), dtype=x.dtype)
    total = sums[0]
    for a in sums[1:]:
        total += a
    return total.reshape(o, cg, kh, kw)


def deconv2d_forward(x, W, b=None, stride=1, pad=0, outsize=None, dilate=1, groups=1):
    """``F.deconvolution_2d(x, W, b, ...)`` on NumPy arrays: x (N, Cin, h, w), W (Cin, Cout/g, kh, kw)."""
    (sy, sx), (ph, pw), (dy, dx) = _pair(stride), _pair(pad), _pair(dilate)
    n, cin, h, w = x.shape
    _, cog, kh, kw = W.shape
    g = groups
    cig, cout = cin // g, cog * g
    if outsize is None:
        outh = _conv.get_deconv_outsize(h, kh, sy, ph, d=dy)
        outw = _conv.get_deconv_outsize(w, kw, sx, pw, d=dx)
    else:
        outh, outw = outsize
    qh, qw = dy * (kh - 1) - ph, dx * (kw - 1) - pw
    if (STRIDE1_DECONV_AS_CONV and sy == sx == 1 and qh >= 0 and qw >= 0
            and cin * outh * outw <= 1.5 * cout * h * w):
        # A stride-1 transposed convolution is the convolution with the flipped, transposed kernel:
        # cheaper than col2im unless it has many more input than output channels (its im2col is
        # cin*kh*kw per output pixel, col2im's product cout*kh*kw per input pixel plus kh*kw adds).
        wc = W.reshape(g, cig, cog, kh, kw).transpose(0, 2, 1, 3, 4).reshape(cout, cig, kh, kw)
        y = conv2d_forward(x, wc[:, :, ::-1, ::-1], b, 1, (qh, qw), (dy, dx), g)
        if y.shape[2:] == (outh, outw):
            return y
    # product per chunk, then col2im as kh*kw strided slice-adds into the padded image
    hp = max(outh + 2 * ph, (kh - 1) * dy + (h - 1) * sy + 1)
    wp = max(outw + 2 * pw, (kw - 1) * dx + (w - 1) * sx + 1)
    img = np.zeros((n, cout, hp, wp), dtype=x.dtype)
    # (g, cout/g*kh*kw, cin/g) as a transposed view: BLAS reads it as it is
    wt = np.ascontiguousarray(W, dtype=x.dtype).reshape(g, cig, cog * kh * kw).transpose(0, 2, 1)
    hw = h * w
    step = _images_per_chunk((cout * kh * kw + cin) * hw * x.itemsize, n, hw)
    scratch = _Scratch(cin * step * hw, x.dtype)

    def body(n0, m, lane):
        xb = scratch[lane][:cin * m * hw]
        np.copyto(xb.reshape(cin, m, h, w), x[n0:n0 + m].transpose(1, 0, 2, 3))
        gcol = np.matmul(wt, xb.reshape(g, cig, m * hw)).reshape(cout, kh, kw, m, h, w)
        im = img[n0:n0 + m].transpose(1, 0, 2, 3)  # (cout, m, hp, wp) view
        for i in range(kh):
            for j in range(kw):
                im[:, :, i * dy:i * dy + sy * (h - 1) + 1:sy, j * dx:j * dx + sx * (w - 1) + 1:sx] += gcol[:, i, j]

    _run_chunks(n, step, body)
    y = img[:, :, ph:ph + outh, pw:pw + outw]
    if b is not None:
        y += b.reshape(1, cout, 1, 1)
    return y


# --------------------------------------------------------------------------- the patched methods


def _covered(inputs, layouts) -> bool:
    """NumPy float32/float64 arrays of one dtype, standard layouts, iDeep not wanted."""
    dtype = inputs[0].dtype
    if dtype not in _DTYPES:
        return False
    for a in inputs:
        if type(a) is not np.ndarray or a.dtype != dtype:
            return False
    if layouts is not None and any(layout is not None for layout in layouts):
        return False
    if intel64.should_use_ideep(">=auto") and intel64.inputs_all_ready(inputs):
        return False
    return True



def _conv_forward_cpu(self, inputs):
    cls = _c2d.Convolution2DFunction
    if self.cudnn_fast or not _covered(inputs, self._input_layouts):
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    x, W = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) == 3 else None
    _, _, h, w = x.shape
    _, _, kh, kw = W.shape
    if (_conv.get_conv_outsize(h, kh, self.sy, self.ph, cover_all=self.cover_all, d=self.dy) <= 0
            or _conv.get_conv_outsize(w, kw, self.sx, self.pw, cover_all=self.cover_all, d=self.dx) <= 0):
        return _patches.fallback(cls, "forward_cpu", self, inputs)  # Chainer's own error
    self.retain_inputs((0, 1))  # as Chainer: only x and W
    _patches.served()
    y = conv2d_forward(x, W, b, (self.sy, self.sx), (self.ph, self.pw), (self.dy, self.dx),
                       self.groups, self.cover_all)
    return y,


def _grad_w_forward_cpu(self, inputs):
    cls = _c2d.Convolution2DGradW
    x, gy = inputs
    if (getattr(self, "_use_ideep", False) or np.dtype(self.W_dtype) != x.dtype
            or not _covered(inputs, None)):
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    cover_all = bool(self.cover_all)
    oh = _conv.get_conv_outsize(x.shape[2], self.kh, self.sy, self.ph, cover_all=cover_all, d=self.dy)
    ow = _conv.get_conv_outsize(x.shape[3], self.kw, self.sx, self.pw, cover_all=cover_all, d=self.dx)
    if gy.shape[2:] != (oh, ow) or oh <= 0 or ow <= 0:
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    self.retain_inputs((0, 1))
    _patches.served()
    gW = conv2d_grad_w(x, gy, (self.kh, self.kw), (self.sy, self.sx), (self.ph, self.pw),
                       (self.dy, self.dx), self.groups, cover_all)
    return gW,


def _deconv_forward_cpu(self, inputs):
    cls = _d2d.Deconvolution2DFunction
    if not _covered(inputs, self._input_layouts):
        return _patches.fallback(cls, "forward_cpu", self, inputs)
    x, W = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) == 3 else None
    self._calc_out_size(x.shape, W.shape)  # Chainer's: sets outh/outw, raises if not positive
    self.retain_inputs((0, 1))  # as Chainer: only x and W
    _patches.served()
    y = deconv2d_forward(x, W, b, (self.sy, self.sx), (self.ph, self.pw), (self.outh, self.outw),
                         (self.dy, self.dx), self.groups)
    return y,


_patches = MethodPatches(NAME, (
    (_c2d.Convolution2DFunction, "forward_cpu", _conv_forward_cpu),
    (_c2d.Convolution2DGradW, "forward_cpu", _grad_w_forward_cpu),
    (_d2d.Deconvolution2DFunction, "forward_cpu", _deconv_forward_cpu),
))
# This module's interface: install() / uninstall() / installed(), describe() for results,
# stats() / reset_stats() (calls served and handed back), enabled(on) for a block.
install, uninstall, installed = _patches.install, _patches.uninstall, _patches.installed
describe, stats, reset_stats, enabled = _patches.describe, _patches.stats, _patches.reset_stats, _patches.enabled
