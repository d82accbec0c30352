"""harness/ingestion/fast_adam.py updates Adam's state and parameters bit for bit as Chainer does.

Each case trains two copies of one real Chainer model on the same batches, one with Chainer's own
``AdamRule.update_core_cpu`` and one with the harness's, and requires every parameter, ``m`` and ``v``
to be identical (not close: equal bits) after every step. Cases the harness does not cover must
run Chainer's own method.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from harness.chainer_env import chainer
from harness.ingestion import fast_adam

F = chainer.functions
L = chainer.links


@pytest.fixture(autouse=True)
def _stock_after():
    fast_adam.uninstall()
    yield
    fast_adam.uninstall()


class MLP(chainer.Chain):
    def __init__(self, dtype=np.float32):
        super().__init__()
        init = chainer.initializers.LeCunNormal(dtype=dtype)
        with self.init_scope():
            self.l1 = L.Linear(784, 100, initialW=init, initial_bias=chainer.initializers.Zero(dtype))
            self.l2 = L.Linear(100, 10, initialW=init, initial_bias=chainer.initializers.Zero(dtype))

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


class ConvBN(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.c = L.Convolution2D(1, 4, 3)
            self.bn = L.BatchNormalization(4)
            self.fc = L.Linear(None, 10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.c(x.reshape(-1, 1, 28, 28)))))


def _train(model, optimizer, batches, installed: bool):
    (fast_adam.install if installed else fast_adam.uninstall)()
    optimizer.setup(model)
    states = []
    for x, t in batches:
        model.cleargrads()
        F.softmax_cross_entropy(model(x), t).backward()
        optimizer.update()
        states.append({name: (p.array.copy(), *(p.update_rule.state[k].copy() for k in ("m", "v")))
                       for name, p in model.namedparams()})
    return states


def _batches(dtype, steps=12, n=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0, 1, (n, 784)).astype(dtype), rng.integers(0, 10, n).astype(np.int32))
            for _ in range(steps)]


def _same_bits(stock, fast):
    assert len(stock) == len(fast)
    for step, (a, b) in enumerate(zip(stock, fast)):
        assert a.keys() == b.keys()
        for name in a:
            for what, x, y in zip(("param", "m", "v"), a[name], b[name]):
                assert x.dtype == y.dtype, (step, name, what)
                assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), \
                    f"step {step}, {name}: {what} differs (max |diff| {np.abs(x - y).max()})"


@pytest.mark.parametrize("make_optimizer", [
    lambda: chainer.optimizers.Adam(),                                   # Chainer's example, the course
    lambda: chainer.optimizers.Adam(alpha=0.0002, beta1=0.5),            # the DCGAN example's settings
    lambda: chainer.optimizers.Adam(alpha=0.001, eps=1e-6),
    lambda: chainer.optimizers.AdamW(alpha=0.001, weight_decay_rate=0.01),
    lambda: chainer.optimizers.Adam(alpha=1e-3, weight_decay_rate=1e-4, eta=0.5),
], ids=["default", "dcgan", "eps", "adamw", "eta"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_as_chainer(make_optimizer, dtype):
    model = MLP(dtype)
    twin = copy.deepcopy(model)
    batches = _batches(dtype)
    _same_bits(_train(model, make_optimizer(), batches, installed=False),
               _train(twin, make_optimizer(), batches, installed=True))


def test_same_bits_with_batch_normalisation_and_convolution():
    model = ConvBN()
    model(np.zeros((1, 784), np.float32))  # materialise the lazy Linear
    twin = copy.deepcopy(model)
    batches = _batches(np.float32, steps=6)
    _same_bits(_train(model, chainer.optimizers.Adam(), batches, installed=False),
               _train(twin, chainer.optimizers.Adam(), batches, installed=True))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float16 logits overflow
@pytest.mark.parametrize("make_optimizer,dtype", [
    (lambda: chainer.optimizers.Adam(amsgrad=True), np.float32),
    (lambda: chainer.optimizers.AMSBound(), np.float32),
    (lambda: chainer.optimizers.Adam(alpha=np.float64(0.001)), np.float32),  # NEP 50 would differ
    (lambda: chainer.optimizers.Adam(), np.float16),
], ids=["amsgrad", "amsbound", "numpy-hyperparameter", "float16"])
def test_uncovered_cases_run_chainers_own_code(make_optimizer, dtype):
    model = MLP(dtype)
    twin = copy.deepcopy(model)
    batches = _batches(dtype, steps=3)
    stock = _train(model, make_optimizer(), batches, installed=False)
    fast_adam.reset_stats()
    fast = _train(twin, make_optimizer(), batches, installed=True)
    assert fast_adam.stats() == {"fast": 0, "fallback": 3 * 4}  # every parameter, every step: Chainer's
    _same_bits(stock, fast)


def test_covered_case_does_not_fall_back():
    fast_adam.install()
    fast_adam.reset_stats()
    model = MLP()
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    x, t = _batches(np.float32, steps=1)[0]
    F.softmax_cross_entropy(model(x), t).backward()
    optimizer.update()
    assert fast_adam.stats() == {"fast": 4, "fallback": 0}


def test_install_is_idempotent_and_reversible():
    stock = chainer.optimizers.adam.AdamRule.update_core_cpu
    assert fast_adam.install() is True
    assert fast_adam.install() is False
    assert chainer.optimizers.adam.AdamRule.update_core_cpu is fast_adam.update_core_cpu
    assert fast_adam.uninstall() is True
    assert fast_adam.uninstall() is False
    assert chainer.optimizers.adam.AdamRule.update_core_cpu is stock


def test_enabled_switches_for_a_block_and_restores():
    stock = chainer.optimizers.adam.AdamRule.update_core_cpu
    with fast_adam.enabled():
        assert fast_adam.installed()
        with fast_adam.enabled(False):
            assert chainer.optimizers.adam.AdamRule.update_core_cpu is stock
        assert fast_adam.installed()
    assert not fast_adam.installed()
