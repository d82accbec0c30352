"""Chainer's Adam update on the CPU, without the temporaries: bit for bit the same parameters.

Chainer 7.8.1's ``AdamRule.update_core_cpu`` writes ``m``, ``v`` and the parameter through
expressions (``grad - m``, ``(1 - beta1) * (...)``, ``grad * grad - v``, ``numpy.sqrt(v) + eps``,
``alpha_t / (...)``, ``step * m``, ``-eta * (...)``) that each allocate and page-fault an array as
large as the parameter: about ten per parameter per step. For Chainer's example MLP 784-1000-1000-10
(batch 100, 2-core CPU) the update took 7.1-7.5 ms of a 13.5-14.2 ms step; here 4.1 ms (a step
10.6-11.0 ms). :func:`install` replaces it with the same operations, in the same
order and the same dtypes, written into one reused scratch buffer (``out=``): every intermediate
value is rounded exactly as Chainer rounds it, so ``m``, ``v`` and the parameters are identical bit
for bit (``tests/test_fast_adam.py`` checks this over many steps). Only the allocations go.

Covered: NumPy ``float32`` and ``float64`` parameters (AdamW's ``weight_decay_rate`` and ``eta``
included). Everything else runs Chainer's own method unchanged: ``amsgrad``, ``adabound``
(AMSGrad, AdaBound, AMSBound), ``float16`` parameters, iDeep arrays, CuPy and ChainerX.

Installed with the fast convolution (``harness/ingestion/__main__.py``) and switched off with it
by ``--stock-chainer`` / ``cpu_convolution: stock``.
"""

from __future__ import annotations

import threading

import numpy as np

from harness.chainer_env import chainer  # the shims first, then Chainer
from harness.ingestion.patching import MethodPatches

_adam = chainer.optimizers.adam
NAME = "harness-fast-adam"

_scratch = threading.local()  # one flat buffer per thread and dtype
#: Elements per chunk of a contiguous parameter: the chunk's param, grad, m, v and scratch (5 x 128 KiB
#: in float32) stay in a core's L2 cache across the eleven passes, instead of streaming from memory.
CHUNK = 1 << 15


def _buffer(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous scratch array of ``shape`` and ``dtype`` (a view of a reused buffer)."""
    size = int(np.prod(shape))
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    flat = buffers.get(dtype.str)
    if flat is None or flat.size < size:
        flat = buffers[dtype.str] = np.empty(size, dtype=dtype)
    return flat[:size].reshape(shape)


_HYPERPARAMETERS = ("alpha", "beta1", "beta2", "eps", "eta", "weight_decay_rate")


def _covered(rule, param) -> bool:
    hp = rule.hyperparam
    data, grad = param.data, param.grad
    if hp.amsgrad or hp.adabound:
        return False
    # Python numbers only: a NumPy float64 hyperparameter makes NumPy 2 compute Chainer's temporaries
    # in float64 (NEP 50), which a float32 scratch buffer would round differently.
    if any(type(getattr(hp, name, None)) not in (float, int) for name in _HYPERPARAMETERS):
        return False
    if type(data) is not np.ndarray or type(grad) is not np.ndarray:
        return False  # iDeep's mdarray (and anything not a plain NumPy array)
    if data.dtype not in (np.float32, np.float64) or grad.dtype != data.dtype:
        return False
    m, v = rule.state["m"], rule.state["v"]
    return (type(m) is np.ndarray and type(v) is np.ndarray and m.dtype == data.dtype
            and v.dtype == data.dtype and m.shape == v.shape == data.shape == grad.shape)


def update_core_cpu(self, param):
    """``AdamRule.update_core_cpu`` with the same arithmetic in place (see the module docstring)."""
    grad = param.grad
    if grad is None:
        return
    if not _covered(self, param):
        return _patches.fallback(_adam.AdamRule, "update_core_cpu", self, param)
    _patches.served()
    hp = self.hyperparam
    self._check_eps(param.dtype.type)
    arrays = (param.data, grad, self.state["m"], self.state["v"])
    coefficients = (1.0 - hp.beta1, 1.0 - hp.beta2, hp.eps, self.alpha_t, -hp.eta,
                    1.0 - hp.eta * hp.weight_decay_rate)
    if not all(a.flags.c_contiguous for a in arrays):
        _update(*arrays, _buffer(arrays[0].shape, arrays[0].dtype), *coefficients)
        return
    flat = tuple(a.reshape(-1) for a in arrays)  # views: chunks of them stay in the cache
    buf = _buffer((min(CHUNK, flat[0].size),), flat[0].dtype)
    for lo in range(0, flat[0].size, CHUNK):
        data, g, m, v = (a[lo:lo + CHUNK] for a in flat)
        _update(data, g, m, v, buf[:len(data)], *coefficients)


def _update(data, grad, m, v, buf, one_minus_beta1, one_minus_beta2, eps, alpha_t, minus_eta, a):
    """Chainer's Adam step on (a chunk of) one parameter, every intermediate rounded as Chainer's."""
    # m += (1 - beta1) * (grad - m)                       (Chainer: _inplace_axpby(m, 1, 1 - beta1, grad - m))
    np.subtract(grad, m, out=buf)
    np.multiply(one_minus_beta1, buf, out=buf)
    m += buf
    # v += (1 - beta2) * (grad * grad - v)
    np.multiply(grad, grad, out=buf)
    buf -= v
    np.multiply(one_minus_beta2, buf, out=buf)
    v += buf
    # step = alpha_t / (sqrt(v) + eps); param = (1 - eta wd) param + (-eta) (step m)
    np.sqrt(v, out=buf)
    np.add(buf, eps, out=buf)
    np.divide(alpha_t, buf, out=buf)
    buf *= m
    np.multiply(minus_eta, buf, out=buf)
    if a != 1:
        np.multiply(a, data, out=data)  # Chainer: data[...] = a * data + b * y, rounded the same way
    data += buf


_patches = MethodPatches(NAME, ((_adam.AdamRule, "update_core_cpu", update_core_cpu),))
# This module's interface: install() / uninstall() / installed(), describe(), stats() / reset_stats()
# (calls served and handed back), enabled(on) for a block.
install, uninstall, installed = _patches.install, _patches.uninstall, _patches.installed
describe, stats, reset_stats, enabled = _patches.describe, _patches.stats, _patches.reset_stats, _patches.enabled
