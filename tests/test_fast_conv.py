"""harness/ingestion/fast_conv.py computes Chainer's CPU convolutions as Chainer does, only faster.

Every case runs the same inputs through stock Chainer and through the installed fast version and
compares outputs and gradients (gx, gW, gb): within 1e-5 of the largest magnitude for float32,
1e-12 for float64. Uncovered cases (float16, mixed dtypes) must run Chainer's own code.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from harness.chainer_env import chainer
from harness.ingestion import fast_conv

F = chainer.functions
L = chainer.links
C2D = chainer.functions.connection.convolution_2d
D2D = chainer.functions.connection.deconvolution_2d

RTOL = {np.float32: 1e-5, np.float64: 1e-12, np.float16: 0.0}


@pytest.fixture(autouse=True)
def _stock_after():
    """Every test starts and ends with Chainer's own methods in place."""
    fast_conv.uninstall()
    fast_conv.reset_stats()
    yield
    fast_conv.uninstall()


def close(actual, expected, dtype, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, what
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    err = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max(initial=0.0))
    assert err <= RTOL[dtype] * scale, f"{what}: max error {err:.3g} over max |value| {scale:.3g}"


def run(fn, arrays, with_bias, gy_seed=1):
    """Forward fn(x, W[, b]) and backward with a fixed random gy: (y, gx, gW, gb)."""
    vs = [chainer.Variable(a.copy()) for a in arrays]
    y = fn(*vs)
    gy = np.random.default_rng(gy_seed).standard_normal(y.shape).astype(y.dtype)
    y.grad = gy
    y.backward()
    return [y.array] + [v.grad for v in vs] + ([] if with_bias else [None])


# The code paths the tuning knobs select: each random case runs through all of them.
MODES = {
    "default": {},
    # channels-last im2col for every groups=1 convolution, one image per chunk, two threads
    "nhwc-chunk1": dict(NHWC_MIN_CHANNELS=1, CHUNK_BYTES=1, MIN_PRODUCT_COLUMNS=1, THREADS=2),
    # channels-first im2col, col2im for every deconvolution, a few images per chunk (and a
    # remainder), three threads for four lanes
    "nchw-col2im-chunk": dict(NHWC_MIN_CHANNELS=10**9, STRIDE1_DECONV_AS_CONV=False, CHUNK_BYTES=3000,
                              MIN_PRODUCT_COLUMNS=1, THREADS=3),
}


def both(fn, arrays, with_bias, monkeypatch=None, mode="default"):
    with fast_conv.enabled(False):
        stock = run(fn, arrays, with_bias)
    with fast_conv.enabled(True):
        if monkeypatch is not None:
            for name, value in MODES[mode].items():
                monkeypatch.setattr(fast_conv, name, value)
        fast_conv.reset_stats()
        fast = run(fn, arrays, with_bias)
        counts = fast_conv.stats()
        if monkeypatch is not None:
            monkeypatch.undo()
    return stock, fast, counts


def random_conv_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        g = int(rng.choice([1, 1, 2, 3]))
        c, o = g * int(rng.choice([1, 2, 3, 13])), g * int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sy, sx = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        dy, dx = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
        h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        cover_all = bool(rng.random() < 0.25)
        outh = chainer.utils.conv.get_conv_outsize(h, kh, sy, ph, cover_all=cover_all, d=dy)
        outw = chainer.utils.conv.get_conv_outsize(w, kw, sx, pw, cover_all=cover_all, d=dx)
        if outh <= 0 or outw <= 0:
            continue
        dtype = [np.float32, np.float64][len(cases) % 2]
        cases.append(dict(n=int(rng.integers(1, 5)), c=c, o=o, h=h, w=w, k=(kh, kw), s=(sy, sx),
                          p=(ph, pw), d=(dy, dx), g=g, cover_all=cover_all, bias=bool(rng.random() < 0.7),
                          dtype=dtype))
    return cases


def conv_arrays(case, seed=0):
    rng = np.random.default_rng(seed)
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(dt)
    W = rng.standard_normal((case["o"], case["c"] // case["g"]) + case["k"]).astype(dt)
    b = rng.standard_normal(case["o"]).astype(dt)
    return [x, W, b] if case["bias"] else [x, W]


CONV_CASES = random_conv_cases(40, seed=13)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "{n}x{c}x{h}x{w}-o{o}-k{k}-s{s}-p{p}-d{d}-g{g}-ca{cover_all}-b{bias}-{dt}".format(
    dt=np.dtype(c["dtype"]).name, **c).replace(" ", ""))
@pytest.mark.parametrize("mode", MODES)
def test_convolution_2d_matches_chainer(case, mode, monkeypatch):
    def fn(x, W, b=None):
        return F.convolution_2d(x, W, b, stride=case["s"], pad=case["p"], cover_all=case["cover_all"],
                                dilate=case["d"], groups=case["g"])

    stock, fast, counts = both(fn, conv_arrays(case), case["bias"], monkeypatch, mode)
    for name, a, e in zip(("y", "gx", "gW", "gb"), fast, stock):
        if e is not None:
            close(a, e, case["dtype"], name)
    # forward, gW, and gx (a deconvolution): all three served here
    assert counts == {"fast": 3, "fallback": 0}


def random_deconv_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        g = int(rng.choice([1, 1, 2, 3]))
        cin, cout = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sy, sx = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        dy, dx = int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2]))
        h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        outh = chainer.utils.conv.get_deconv_outsize(h, kh, sy, ph, d=dy)
        outw = chainer.utils.conv.get_deconv_outsize(w, kw, sx, pw, d=dx)
        if outh <= 0 or outw <= 0:
            continue
        outsize = None
        if rng.random() < 0.4:  # an explicit outsize: anything from natural size up to stride-1 more
            outsize = (outh + int(rng.integers(0, sy)), outw + int(rng.integers(0, sx)))
        dtype = [np.float32, np.float64][len(cases) % 2]
        cases.append(dict(n=int(rng.integers(1, 5)), cin=cin, cout=cout, h=h, w=w, k=(kh, kw), s=(sy, sx),
                          p=(ph, pw), d=(dy, dx), g=g, outsize=outsize, bias=bool(rng.random() < 0.7),
                          dtype=dtype))
    return cases


DECONV_CASES = random_deconv_cases(40, seed=31)


@pytest.mark.parametrize("case", DECONV_CASES, ids=lambda c: "{n}x{cin}x{h}x{w}-o{cout}-k{k}-s{s}-p{p}-d{d}-g{g}-out{outsize}-b{bias}-{dt}".format(
    dt=np.dtype(c["dtype"]).name, **c).replace(" ", ""))
@pytest.mark.parametrize("mode", MODES)
def test_deconvolution_2d_matches_chainer(case, mode, monkeypatch):
    rng = np.random.default_rng(0)
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["cin"], case["h"], case["w"])).astype(dt)
    W = rng.standard_normal((case["cin"], case["cout"] // case["g"]) + case["k"]).astype(dt)
    b = rng.standard_normal(case["cout"]).astype(dt)
    arrays = [x, W, b] if case["bias"] else [x, W]

    def fn(x, W, b=None):
        return F.deconvolution_2d(x, W, b, stride=case["s"], pad=case["p"], outsize=case["outsize"],
                                  dilate=case["d"], groups=case["g"])

    stock, fast, counts = both(fn, arrays, case["bias"], monkeypatch, mode)
    for name, a, e in zip(("y", "gx", "gW", "gb"), fast, stock):
        if e is not None:
            close(a, e, dt, name)
    assert counts == {"fast": 3, "fallback": 0}


def test_course_cnn_layer_shapes_match_chainer():
    """The shapes that dominate the course CNN (MNIST-sized, 32 channels), many chunks and threads."""
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(5)
        x = rng.random((30, 32, 28, 28)).astype(dt)
        W = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(dt)
        b = rng.standard_normal(32).astype(dt)

        def fn(x, W, b):
            return F.convolution_2d(x, W, b, pad=1)

        stock, fast, counts = both(fn, [x, W, b], True)
        for name, a, e in zip(("y", "gx", "gW", "gb"), fast, stock):
            close(a, e, dt, name)
        assert counts == {"fast": 3, "fallback": 0}


def test_input_without_gradient_and_noncontiguous_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 9, 4)).astype(np.float32).transpose(0, 1, 3, 2)  # not contiguous
    W = rng.standard_normal((4, 5, 3, 2)).astype(np.float32)
    outs = {}
    for on in (False, True):
        with fast_conv.enabled(on):
            w = chainer.Variable(W.copy())
            y = F.convolution_2d(x, w, stride=(2, 1), pad=(1, 0))  # x is a plain array: no gx
            F.sum(y * y).backward()
            outs[on] = (y.array, w.grad)
    close(outs[True][0], outs[False][0], np.float32, "y")
    close(outs[True][1], outs[False][1], np.float32, "gW")


@pytest.mark.parametrize("deconv", [False, True])
def test_empty_batch(deconv):
    x = np.zeros((0, 3, 5, 5), np.float32)
    W = np.ones((3, 4, 3, 3) if deconv else (4, 3, 3, 3), np.float32)

    def fn(x, W):
        return F.deconvolution_2d(x, W, stride=2) if deconv else F.convolution_2d(x, W, pad=1)

    stock, fast, counts = both(fn, [x, W], False)
    assert counts == {"fast": 3, "fallback": 0}
    for name, a, e in zip(("y", "gx", "gW"), fast, stock):
        close(a, e, np.float32, name)


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    """Chunks are dealt to lanes in a fixed order and lane sums added in order: bit-identical results."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((23, 16, 11, 9)).astype(np.float32)
    W = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 16 * 9 * 99 * 4 * 2)  # 2 images a chunk: 12 chunks
    monkeypatch.setattr(fast_conv, "MIN_PRODUCT_COLUMNS", 1)
    results = []
    fast_conv.install()
    for threads in (1, 2, 3, 4):
        monkeypatch.setattr(fast_conv, "THREADS", threads)
        fast_conv.reset_stats()
        results.append(run(lambda x, W, b: F.convolution_2d(x, W, b, pad=1, stride=(1, 2)), [x, W, b], True))
        assert fast_conv.stats() == {"fast": 3, "fallback": 0}
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


def test_course_cnn_layer_trains_to_the_same_bits_with_any_worker_count(monkeypatch):
    """A course-CNN-sized layer (large enough for OpenBLAS to split its products across threads):
    one worker (a --jobs share of one core) and two give bit-identical outputs and gradients, because
    BLAS runs single-threaded inside the chunks in both cases (OpenBLAS's own thread count changes
    the last bits)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 32, 28, 28)).astype(np.float32)
    W = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    fast_conv.install()
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(fast_conv, "THREADS", threads)
        results.append(run(lambda x, W, b: F.convolution_2d(x, W, b, pad=1), [x, W, b], True))
    for a, e in zip(results[1], results[0]):
        np.testing.assert_array_equal(a, e)


def test_a_failing_worker_raises_in_the_caller(monkeypatch):
    monkeypatch.setattr(fast_conv, "THREADS", 2)
    seen = []

    def body(n0, m, lane):
        seen.append(n0)
        if lane == 1:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fast_conv._run_chunks(8, 2, body)
    # lanes 0 and 2 (chunks 0, 4) ran here, lane 1 (chunk 2) failed on the worker, which then
    # skipped lane 3 (chunk 6); the caller waited for it before raising
    assert sorted(seen) == [0, 2, 4]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_threads_work_in_a_forked_child(monkeypatch):
    """A fork keeps the pool object but not its threads: the child must make its own."""
    monkeypatch.setattr(fast_conv, "THREADS", 2)
    x = np.ones((4, 1, 5, 5), np.float32)
    W = np.ones((2, 1, 3, 3), np.float32)
    expected = fast_conv.conv2d_forward(x, W, pad=1)  # makes the pool here
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(fast_conv, "MIN_PRODUCT_COLUMNS", 1)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the threaded computation finishes and agrees
        code = 1
        try:
            signal.alarm(20)
            code = 0 if np.array_equal(fast_conv.conv2d_forward(x, W, pad=1), expected) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def double_backward(on):
    """Second-order gradients through the patched nodes (Chainer's backward calls them again)."""
    rng = np.random.default_rng(4)
    x, W, b = (chainer.Variable(a) for a in (rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 3)),
                                               rng.standard_normal(6)))
    gy = chainer.Variable(rng.standard_normal((2, 6, 3, 5)))
    ggx, ggW = rng.standard_normal(x.shape), rng.standard_normal(W.shape)
    with fast_conv.enabled(on):
        y = F.convolution_2d(x, W, b, stride=(2, 1), pad=1, groups=2)
        gx, gW = chainer.grad([y], [x, W], grad_outputs=[gy], enable_double_backprop=True)
        loss = F.sum(gx * ggx) + F.sum(gW * ggW) + F.sum(y * y)
        return [g.array for g in chainer.grad([loss], [x, W, gy])]


def test_double_backward_matches_chainer():
    stock = double_backward(False)
    fast_conv.reset_stats()
    fast = double_backward(True)
    assert fast_conv.stats()["fallback"] == 0 and fast_conv.stats()["fast"] >= 5
    for name, a, e in zip(("ggx", "ggW", "ggy"), fast, stock):
        close(a, e, np.float64, name)


@pytest.mark.parametrize("dtypes", [(np.float16, np.float16), (np.float32, np.float64)])
def test_uncovered_dtypes_run_chainers_own_code(dtypes):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 7)).astype(dtypes[0])
    W = rng.standard_normal((4, 3, 3, 3)).astype(dtypes[1])

    def fn(x, W):
        return F.convolution_2d(x, W, pad=1)

    stock, fast, counts = both(fn, [x, W], False)
    assert counts["fast"] == 0 and counts["fallback"] >= 2
    for name, a, e in zip(("y", "gx", "gW"), fast, stock):
        np.testing.assert_array_equal(a, e, err_msg=name)  # the very same code ran


def test_ideep_wanted_falls_back(monkeypatch):
    monkeypatch.setattr(fast_conv.intel64, "should_use_ideep", lambda level: True)
    monkeypatch.setattr(fast_conv.intel64, "inputs_all_ready", lambda inputs, *a, **k: True)
    x = np.ones((1, 1, 4, 4), np.float32)
    assert not fast_conv._covered((x,), None)


def test_install_is_idempotent_and_uninstall_restores():
    stock = {(cls, name): cls.__dict__[name] for cls, name, _ in fast_conv._patches.patches}
    assert fast_conv.describe() == "chainer" and not fast_conv.installed()
    assert fast_conv.install() is True
    assert fast_conv.install() is False
    assert fast_conv.describe() == "harness-fast-conv"
    assert C2D.Convolution2DFunction.forward_cpu is fast_conv._conv_forward_cpu
    assert C2D.Convolution2DGradW.forward_cpu is fast_conv._grad_w_forward_cpu
    assert D2D.Deconvolution2DFunction.forward_cpu is fast_conv._deconv_forward_cpu
    assert fast_conv.uninstall() is True
    assert fast_conv.uninstall() is False
    assert fast_conv.describe() == "chainer"
    for (cls, name), fn in stock.items():
        assert cls.__dict__[name] is fn
    with fast_conv.enabled():
        assert fast_conv.installed()
    assert not fast_conv.installed()


class TinyNet(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.c1 = L.Convolution2D(1, 4, 3, pad=1)
            self.c2 = L.Convolution2D(4, 8, 3, stride=2, pad=1)
            self.d1 = L.Deconvolution2D(8, 4, 4, stride=2, pad=1)
            self.c3 = L.Convolution2D(4, 1, 3, pad=1)

    def forward(self, x):
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h))
        h = F.relu(self.d1(h))
        return self.c3(h)


def train_losses(steps=6):
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 12, 12)).astype(np.float32)
    np.random.seed(0)  # Chainer's initializers draw from numpy.random
    model = TinyNet()
    opt = chainer.optimizers.Adam(alpha=0.01)
    opt.setup(model)
    losses = []
    for _ in range(steps):
        loss = F.mean_squared_error(model(x), x)
        model.cleargrads()
        loss.backward()
        opt.update()
        losses.append(float(loss.array))
    return losses


def test_training_a_tiny_cnn_gives_the_same_losses():
    with fast_conv.enabled(False):
        stock = train_losses()
    with fast_conv.enabled(True):
        fast_conv.reset_stats()
        fast = train_losses()
        counts = fast_conv.stats()
    assert counts["fallback"] == 0 and counts["fast"] > 0
    assert stock[-1] < stock[0]  # it learns
    np.testing.assert_allclose(fast, stock, rtol=1e-4)
