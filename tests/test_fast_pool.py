"""harness/ingestion/fast_pool.py computes Chainer's CPU max pooling bit for bit, only faster.

Every case runs the same input through stock Chainer and through the installed fast version and
compares the output, the ``indexes`` Chainer keeps on the node and the input gradient bit for bit
(inputs drawn from a few integers, half of them ReLU zeros, so that windows hold tied maxima and
the tie-breaking of ``argmax`` decides the indexes). Uncovered cases must run Chainer's own code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from harness.chainer_env import chainer
from harness.ingestion import fast_conv, fast_pool

F = chainer.functions
MP = chainer.functions.pooling.max_pooling_nd
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _stock_around():
    """Every test starts and ends with Chainer's own pooling (and convolution) in place."""
    fast_pool.uninstall()
    fast_conv.uninstall()
    fast_pool.reset_stats()
    yield
    fast_pool.uninstall()


def bits(a):
    """The array's bits, as unsigned integers of its item size (NaN-safe, tells -0.0 from 0.0)."""
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize]) if a.dtype.kind == "f" else a


def same_bits(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, what
    assert np.array_equal(bits(actual), bits(expected)), f"{what}: {np.sum(bits(actual) != bits(expected))} differ"


def run(x, gy, ksize, stride=None, pad=0, cover_all=True):
    """Forward F.max_pooling_2d and backward with gy: (y, indexes, gx)."""
    v = chainer.Variable(x.copy() if x.flags.c_contiguous else x)
    y = F.max_pooling_2d(v, ksize, stride=stride, pad=pad, cover_all=cover_all)
    y.grad = gy
    y.backward()
    return y.array, y.creator.indexes, v.grad


def both(x, gy, *args, **kwargs):
    """(stock, fast, stats of the fast run) for the same input and output gradient."""
    with fast_pool.enabled(False):
        stock = run(x, gy, *args, **kwargs)
    with fast_pool.enabled(True):
        fast_pool.reset_stats()
        fast = run(x, gy, *args, **kwargs)
        counts = fast_pool.stats()
    return stock, fast, counts


def check(stock, fast):
    for name, a, e in zip(("y", "indexes", "gx"), fast, stock):
        same_bits(a, e, name)


def tied_input(rng, shape, dtype):
    """Values from {0, 1, 2, 3} after a ReLU (about half zeros): many windows with tied maxima."""
    return np.maximum(rng.integers(-3, 4, shape), 0).astype(dtype)


def output_gradient(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        kh, kw = [(2, 2), (2, 2), (3, 3), (1, 1), (2, 3), (3, 1), (4, 4)][i % 7]
        cases.append({"n": int(rng.integers(1, 6)), "c": int(rng.choice([1, 3, 8])),
                      "h": kh * int(rng.integers(1, 8)), "w": kw * int(rng.integers(1, 8)), "k": (kh, kw),
                      "cover_all": bool(i % 3), "dtype": [np.float32, np.float64][(i // 7) % 2],
                      "data": ["tied", "normal"][(i // 14) % 2]})
    return cases


CASES = random_cases(28, seed=7)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{n}x{c}x{h}x{w}-k{k}-ca{cover_all}-{dt}-{data}".format(
    dt=np.dtype(c["dtype"]).name, **c).replace(" ", ""))
@pytest.mark.parametrize("chunk", [None, 1, 40])
def test_covered_pooling_matches_chainer_bit_for_bit(case, chunk, monkeypatch):
    if chunk is not None:  # one plane per chunk / a few planes and a remainder
        monkeypatch.setattr(fast_pool, "CHUNK_BYTES", chunk * case["h"] * case["w"] * np.dtype(case["dtype"]).itemsize)
    rng = np.random.default_rng(1)
    dt, (kh, kw) = case["dtype"], case["k"]
    shape = (case["n"], case["c"], case["h"], case["w"])
    x = tied_input(rng, shape, dt) if case["data"] == "tied" else rng.standard_normal(shape).astype(dt)
    gy = output_gradient(rng, shape[:2] + (case["h"] // kh, case["w"] // kw), dt)
    stock, fast, counts = both(x, gy, case["k"], cover_all=case["cover_all"])
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}  # forward and gradient both served here


def test_ties_are_broken_as_argmax_does():
    """Every window order of tied maxima: the index is the first one in row-major order."""
    for kh, kw in [(2, 2), (3, 3), (2, 3)]:
        k = kh * kw
        # all 2**k patterns of which window positions hold the maximum (1) and which a 0
        patterns = (np.arange(2 ** k)[:, None] >> np.arange(k)) & 1
        # window i: rows 0..kh-1, columns i*kw..(i+1)*kw-1
        x = patterns.reshape(-1, kh, kw).transpose(1, 0, 2).reshape(1, 1, kh, -1).astype(np.float32)
        gy = output_gradient(np.random.default_rng(2), (1, 1, 1, 2 ** k), np.float32)
        stock, fast, counts = both(x, gy, (kh, kw))
        check(stock, fast)
        assert counts == {"fast": 2, "fallback": 0}
        assert np.array_equal(fast[1].ravel(), patterns.argmax(axis=1))  # the first 1 (or 0: all 0)


def test_course_cnn_shape_and_noncontiguous_arrays():
    """The course CNN's pooling (100 x 32 x 28 x 28, ReLU outputs) and strided inputs and gradients."""
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((100, 32, 28, 28)), 0).astype(np.float32)
    gy = output_gradient(rng, (100, 32, 14, 14), np.float32)
    stock, fast, counts = both(x, gy, 2)
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}
    # a channels-last input (transposed view) and a strided output gradient
    xt = tied_input(rng, (4, 12, 10, 6), np.float64).transpose(0, 3, 1, 2)
    gyt = output_gradient(rng, (8, 6, 5, 6), np.float64)[::2].transpose(0, 3, 1, 2)
    assert not xt.flags.c_contiguous and not gyt.flags.c_contiguous
    stock, fast, counts = both(xt, gyt, 2)
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}


def test_large_window_and_special_gradients():
    """A window of more than 256 positions (indexes beyond uint8) and output gradients holding
    -0.0, infinities and NaN (Chainer's col2im adds them to zero: -0.0 becomes 0.0)."""
    rng = np.random.default_rng(4)
    x = tied_input(rng, (2, 2, 34, 51), np.float64)
    x[0, 0, 16, 15] = x[0, 0, 16, 16] = 5  # a tie at window positions 287 and 288
    stock, fast, counts = both(x, output_gradient(rng, (2, 2, 2, 3), np.float64), 17)
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}
    assert fast[1][0, 0, 0, 0] == 16 * 17 + 15
    x = tied_input(rng, (3, 4, 8, 8), np.float32)
    gy = output_gradient(rng, (3, 4, 4, 4), np.float32)
    gy.ravel()[::5] = -0.0
    gy.ravel()[1::7] = np.inf
    gy.ravel()[2::11] = -np.inf
    gy.ravel()[3::13] = np.nan
    stock, fast, counts = both(x, gy, 2)
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}
    assert not np.signbit(fast[2][fast[2] == 0]).any()


def test_infinities_in_the_input_are_covered():
    rng = np.random.default_rng(5)
    x = tied_input(rng, (3, 4, 8, 8), np.float32) - 1
    x.ravel()[::9] = np.inf
    x.ravel()[1::4] = -np.inf
    stock, fast, counts = both(x, output_gradient(rng, (3, 4, 4, 4), np.float32), 2)
    check(stock, fast)
    assert counts == {"fast": 2, "fallback": 0}


@pytest.mark.parametrize("special", ["negative-zero", "nan"])
def test_negative_zero_and_nan_inputs_run_chainers_code(special):
    """Equal values with different bits (-0.0 beside 0.0, NaN payloads): Chainer's own bits."""
    rng = np.random.default_rng(6)
    x = tied_input(rng, (3, 4, 8, 8), np.float32)
    if special == "negative-zero":
        x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    else:
        x.ravel()[::17] = np.nan
    gy = output_gradient(rng, (3, 4, 4, 4), np.float32)
    stock, fast, counts = both(x, gy, 2)
    check(stock, fast)
    # the forward falls back; the gradient (a scatter at Chainer's own indexes) is still served here
    assert counts == {"fast": 1, "fallback": 1}


UNCOVERED = [
    {"shape": (2, 3, 8, 8), "ksize": 3, "stride": 2, "pad": 0, "cover_all": True, "dtype": np.float32},   # overlapping
    {"shape": (2, 3, 8, 8), "ksize": 2, "stride": 1, "pad": 0, "cover_all": False, "dtype": np.float64},  # overlapping
    {"shape": (2, 3, 9, 9), "ksize": 2, "stride": 3, "pad": 0, "cover_all": True, "dtype": np.float32},   # gaps
    {"shape": (2, 3, 8, 8), "ksize": 2, "stride": 2, "pad": 1, "cover_all": True, "dtype": np.float32},   # padding
    {"shape": (2, 3, 8, 8), "ksize": 2, "stride": 2, "pad": 1, "cover_all": False, "dtype": np.float64},
    {"shape": (2, 3, 7, 7), "ksize": 2, "stride": 2, "pad": 0, "cover_all": True, "dtype": np.float32},   # remainder
    {"shape": (2, 3, 7, 8), "ksize": 2, "stride": 2, "pad": 0, "cover_all": False, "dtype": np.float64},
    {"shape": (2, 3, 8, 9), "ksize": 3, "stride": 3, "pad": 0, "cover_all": True, "dtype": np.float32},
    {"shape": (2, 3, 8, 8), "ksize": 2, "stride": 2, "pad": 0, "cover_all": True, "dtype": np.float16},   # float16
]


@pytest.mark.parametrize("case", UNCOVERED, ids=lambda c: "{shape}-k{ksize}-s{stride}-p{pad}-ca{cover_all}-{dt}".format(
    dt=np.dtype(c["dtype"]).name, **c).replace(" ", ""))
def test_uncovered_cases_run_chainers_code(case):
    rng = np.random.default_rng(7)
    x = tied_input(rng, case["shape"], case["dtype"])
    with fast_pool.enabled(False):
        y = F.max_pooling_2d(x, case["ksize"], case["stride"], case["pad"], case["cover_all"])
    gy = output_gradient(rng, y.shape, case["dtype"])
    stock, fast, counts = both(x, gy, case["ksize"], case["stride"], case["pad"], case["cover_all"])
    check(stock, fast)
    assert counts == {"fast": 0, "fallback": 2}


def test_double_backprop_matches_chainer():
    """Grad of grad: the gradient w.r.t. gy of sum(gx * w) (MaxPoolingNDWithIndexes, Chainer's own)."""
    rng = np.random.default_rng(8)
    x0 = tied_input(rng, (2, 3, 6, 6), np.float64)
    gy0 = output_gradient(rng, (2, 3, 2, 2), np.float64)
    w = output_gradient(rng, x0.shape, np.float64)
    results = []
    for on in (False, True):
        with fast_pool.enabled(on):
            fast_pool.reset_stats()
            x, gy = chainer.Variable(x0.copy()), chainer.Variable(gy0.copy())
            y = F.max_pooling_2d(x, 3)
            gx, = chainer.grad([y], [x], grad_outputs=[gy], enable_double_backprop=True)
            F.sum(gx * w).backward()
            results.append((gx.array, gy.grad, fast_pool.stats()))
    (gx_s, ggy_s, _), (gx_f, ggy_f, counts) = results
    same_bits(gx_f, gx_s, "gx")
    same_bits(ggy_f, ggy_s, "ggy")
    assert counts == {"fast": 2, "fallback": 0}


def test_return_indices_and_upsampling():
    rng = np.random.default_rng(9)
    x = tied_input(rng, (2, 3, 8, 8), np.float32)
    outs = []
    for on in (False, True):
        with fast_pool.enabled(on):
            y, indexes = F.max_pooling_2d(x, 2, return_indices=True)
            up = F.upsampling_2d(y, indexes, ksize=2, outsize=(8, 8))
            outs.append((y.array, indexes, up.array))
    for name, a, e in zip(("y", "indexes", "upsampled"), outs[1], outs[0]):
        same_bits(a, e, name)


def test_install_and_uninstall_are_idempotent_and_restore_chainers_methods():
    originals = {cls: cls.__dict__["forward_cpu"] for cls in (MP.MaxPoolingND, MP.MaxPoolingNDGrad)}
    assert not fast_pool.installed() and fast_pool.describe() == "chainer"
    assert fast_pool.install() is True
    assert fast_pool.install() is False
    assert fast_pool.installed() and fast_pool.describe() == "harness-fast-pool"
    for cls, fn in originals.items():
        assert cls.__dict__["forward_cpu"] is not fn
    assert MP.MaxPoolingNDWithIndexes.forward_cpu.__module__ == MP.__name__  # left as Chainer's
    assert fast_pool.uninstall() is True
    assert fast_pool.uninstall() is False
    for cls, fn in originals.items():
        assert cls.__dict__["forward_cpu"] is fn
    with fast_pool.enabled(True):
        assert fast_pool.installed()
    assert not fast_pool.installed()


def _course_cnn():
    spec = importlib.util.spec_from_file_location("course_cnn_classifier", ROOT / "baselines" / "course-cnn" / "classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CourseCNN()


def test_course_cnn_gradients_are_identical():
    """The course CNN's loss and every parameter gradient, with and without fast_pool (stock
    convolutions both times, so that only the pooling differs)."""
    model = _course_cnn()
    rng = np.random.default_rng(10)
    x = rng.random((16, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, 16).astype(np.int32)
    runs = []
    for on in (False, True):
        with fast_pool.enabled(on):
            fast_pool.reset_stats()
            model.cleargrads()
            loss = F.softmax_cross_entropy(model(x), t)
            loss.backward()
            runs.append((loss.array, {name: p.grad.copy() for name, p in model.namedparams()}, fast_pool.stats()))
    (loss_s, grads_s, _), (loss_f, grads_f, counts) = runs
    same_bits(loss_f, loss_s, "loss")
    assert grads_f.keys() == grads_s.keys()
    for name in grads_s:
        same_bits(grads_f[name], grads_s[name], name)
    assert counts == {"fast": 2, "fallback": 0}
