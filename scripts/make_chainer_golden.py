#!/usr/bin/env python
"""Golden outputs of the Chainer operations the course uses, to prove a stack computes like the supported one.

``compute()`` runs, on fixed seeded inputs, the forward pass AND the gradients of every layer,
activation and loss the course uses, a few optimizer steps (Adam, SGD, MomentumSGD) on a small
MLP, the reporter's running means, and a ``save_npz``/``load_npz`` round trip of a model and an
optimizer. It returns ``{name: ndarray}``; each array keeps the dtype Chainer gave it, so the
comparison also catches NEP 50 promotion changes (NumPy 2 turning a float32 result into float64).

Run it under the supported stack (``.venv``: Python 3.11, NumPy 1.26) to (re)write the golden file::

    . .venv/bin/activate && python scripts/make_chainer_golden.py

``tests/test_chainer_numerics.py`` recomputes everything under whatever stack runs it and compares.
``--check`` does the same comparison from the command line and prints the worst differences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.chainer_env import chainer  # noqa: E402  (applies harness.compat's shims first)

import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "chainer_golden.npz"
META_PREFIX = "meta/"  # informational entries (versions); not compared


def _rand(rs: np.random.RandomState, *shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return rs.uniform(low, high, shape).astype(np.float32)


def _run(out: dict, name: str, fn, inputs: list, rs: np.random.RandomState) -> None:
    """Forward ``fn`` on Variables of ``inputs``, backprop a seeded upstream gradient, record all.

    Records ``name/y``, ``name/gx<i>`` for each input and, when ``fn`` is a Link, ``name/g<path>``
    for each of its parameters.
    """
    link = fn if isinstance(fn, chainer.Link) else None
    if link is not None:
        link.cleargrads()  # a new Parameter's grad is NaN until cleared (chainer/variable.py:1784)
    xs = [chainer.Variable(a.copy()) for a in inputs]
    y = fn(*xs)
    out[f"{name}/y"] = np.array(y.array)
    if y.ndim:
        y.grad = _rand(rs, *y.shape).astype(y.dtype)
    y.backward()
    for i, x in enumerate(xs):
        out[f"{name}/gx{i}"] = np.array(x.grad)
    if link is not None:
        for pname, p in sorted(link.namedparams()):
            out[f"{name}/g{pname}"] = np.array(p.grad)


def _layers(out: dict) -> None:
    rs = np.random.RandomState(0)

    # F.linear with explicit weights
    x, W, b = _rand(rs, 4, 6), _rand(rs, 3, 6), _rand(rs, 3)
    _run(out, "F.linear", F.linear, [x, W, b], rs)

    # Links with Chainer's default initializers, seeded the way the harness seeds NumPy
    np.random.seed(1)
    lin = L.Linear(6, 5)
    out["L.Linear/W_init"] = np.array(lin.W.array)
    out["L.Linear/b_init"] = np.array(lin.b.array)
    _run(out, "L.Linear", lin, [_rand(rs, 4, 6)], rs)

    np.random.seed(2)
    conv = L.Convolution2D(1, 4, ksize=3, stride=1, pad=1)
    x = _rand(rs, 2, 1, 9, 9, low=0.0)  # the shape pattern of MNIST input (N, 1, H, W) in [0, 1]
    out["L.Convolution2D/x"] = x
    _run(out, "L.Convolution2D", conv, [x], rs)
    out["L.Convolution2D/W_init"] = np.array(conv.W.array)

    np.random.seed(3)
    deconv = L.Deconvolution2D(4, 2, ksize=4, stride=2, pad=1)
    _run(out, "L.Deconvolution2D", deconv, [_rand(rs, 2, 4, 5, 5)], rs)
    out["L.Deconvolution2D/W_init"] = np.array(deconv.W.array)

    x = _rand(rs, 2, 3, 8, 8)
    _run(out, "F.max_pooling_2d", lambda v: F.max_pooling_2d(v, 2), [x], rs)
    _run(out, "F.max_pooling_2d_k3s2p1", lambda v: F.max_pooling_2d(v, 3, stride=2, pad=1), [x], rs)
    _run(out, "F.average_pooling_2d", lambda v: F.average_pooling_2d(v, 2), [x], rs)
    # upsampling a generator may use; F.resize_images needs harness.compat on any NumPy >= 1.24
    _run(out, "F.unpooling_2d", lambda v: F.unpooling_2d(v, 2, outsize=(16, 16)), [x], rs)
    _run(out, "F.resize_images", lambda v: F.resize_images(v, (11, 11)), [x], rs)

    # BatchNormalization: train mode (batch statistics, running averages updated), then test mode
    bn = L.BatchNormalization(3)
    with chainer.using_config("train", True):
        for step in range(2):
            _run(out, f"L.BatchNormalization/train{step}", bn, [_rand(rs, 4, 3, 2, 2)], rs)
    out["L.BatchNormalization/avg_mean"] = np.array(bn.avg_mean)
    out["L.BatchNormalization/avg_var"] = np.array(bn.avg_var)
    out["L.BatchNormalization/N"] = np.asarray(bn.N)
    with chainer.using_config("train", False):
        _run(out, "L.BatchNormalization/test", bn, [_rand(rs, 4, 3, 2, 2)], rs)
    bn1 = L.BatchNormalization(5)  # after a Linear layer: (N, C)
    _run(out, "L.BatchNormalization/2d", bn1, [_rand(rs, 6, 5)], rs)


def _activations(out: dict) -> None:
    rs = np.random.RandomState(10)
    x = _rand(rs, 3, 7, low=-3.0, high=3.0)
    _run(out, "F.relu", F.relu, [x], rs)
    _run(out, "F.leaky_relu", F.leaky_relu, [x], rs)
    _run(out, "F.leaky_relu_0.1", lambda v: F.leaky_relu(v, slope=0.1), [x], rs)
    _run(out, "F.sigmoid", F.sigmoid, [x], rs)
    _run(out, "F.tanh", F.tanh, [x], rs)
    _run(out, "F.softmax", F.softmax, [x], rs)
    # F.dropout draws its mask from numpy.random (chainer/functions/noise/dropout.py:41), so a
    # seeded global generator makes it deterministic on CPU.
    with chainer.using_config("train", True):
        np.random.seed(11)
        _run(out, "F.dropout_train", lambda v: F.dropout(v, ratio=0.5), [x], rs)
    with chainer.using_config("train", False):
        _run(out, "F.dropout_test", lambda v: F.dropout(v, ratio=0.5), [x], rs)


def _losses(out: dict) -> None:
    rs = np.random.RandomState(20)
    logits = _rand(rs, 12, 10, low=-4.0, high=4.0)
    t = rs.randint(0, 10, 12).astype(np.int32)
    t_ignore = t.copy()
    t_ignore[[1, 5]] = -1
    _run(out, "F.softmax_cross_entropy", lambda v: F.softmax_cross_entropy(v, t), [logits], rs)
    _run(out, "F.softmax_cross_entropy_ignore", lambda v: F.softmax_cross_entropy(v, t_ignore), [logits], rs)
    _run(out, "F.softmax_cross_entropy_none",
         lambda v: F.softmax_cross_entropy(v, t, reduce="no"), [logits], rs)
    out["F.accuracy"] = np.array(F.accuracy(logits, t).array)
    out["F.accuracy_ignore"] = np.array(F.accuracy(logits, t_ignore, ignore_label=-1).array)

    d_logits = _rand(rs, 12, 1, low=-4.0, high=4.0)
    d_t = rs.randint(0, 2, (12, 1)).astype(np.int32)
    _run(out, "F.sigmoid_cross_entropy", lambda v: F.sigmoid_cross_entropy(v, d_t), [d_logits], rs)
    _run(out, "F.sigmoid_cross_entropy_nonorm",
         lambda v: F.sigmoid_cross_entropy(v, d_t, normalize=False), [d_logits], rs)
    out["F.binary_accuracy"] = np.array(F.binary_accuracy(d_logits, d_t).array)
    # the GAN losses of the course: softplus form of the non-saturating loss
    _run(out, "F.softplus_mean", lambda v: F.sum(F.softplus(-v)) / v.shape[0], [d_logits], rs)

    a, b = _rand(rs, 4, 1, 5, 5, low=0.0), _rand(rs, 4, 1, 5, 5, low=0.0)
    _run(out, "F.mean_squared_error", F.mean_squared_error, [a, b], rs)
    _run(out, "F.squared_error_mean", lambda u, v: F.mean(F.squared_error(u, v), axis=(1, 2, 3)), [a, b], rs)


class _MLP(chainer.Chain):
    def __init__(self) -> None:
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(6, 5)
            self.l2 = L.Linear(5, 3)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


def _mlp(seed: int) -> _MLP:
    np.random.seed(seed)
    return _MLP()


def _optimizers(out: dict) -> None:
    rs = np.random.RandomState(30)
    batches = [(_rand(rs, 10, 6), rs.randint(0, 3, 10).astype(np.int32)) for _ in range(3)]
    cases = {
        "Adam": lambda: chainer.optimizers.Adam(),
        "Adam_gan": lambda: chainer.optimizers.Adam(alpha=0.0002, beta1=0.5),
        "Adam_wd": lambda: chainer.optimizers.Adam(alpha=0.01, weight_decay_rate=0.01),
        "AMSGrad": lambda: chainer.optimizers.Adam(alpha=0.01, amsgrad=True),
        "SGD": lambda: chainer.optimizers.SGD(lr=0.1),
        "MomentumSGD": lambda: chainer.optimizers.MomentumSGD(lr=0.1, momentum=0.9),
    }
    hooks = {  # optimizer hooks a student may add (GradientClipping is common in GANs)
        "SGD": lambda: [chainer.optimizer_hooks.WeightDecay(1e-3)],
        "Adam_wd": lambda: [chainer.optimizer_hooks.GradientClipping(0.01)],
        "MomentumSGD": lambda: [chainer.optimizer_hooks.GradientHardClipping(-0.05, 0.05),
                                chainer.optimizer_hooks.Lasso(1e-3)],
    }
    for name, make in cases.items():
        model = _mlp(31)
        opt = make()
        opt.setup(model)
        for hook in hooks.get(name, list)():
            opt.add_hook(hook)
        for step, (x, t) in enumerate(batches):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
            out[f"opt/{name}/loss{step}"] = np.array(loss.array)
        # update(lossfun, *args): the other calling convention
        opt.update(lambda x, t: F.softmax_cross_entropy(model(x), t), *batches[0])
        for pname, p in sorted(model.namedparams()):
            out[f"opt/{name}/param{pname}"] = np.array(p.array)
        for pname, p in sorted(model.namedparams()):
            for key, value in sorted(p.update_rule.state.items()):
                out[f"opt/{name}/state{pname}/{key}"] = np.array(value)
        out[f"opt/{name}/t"] = np.asarray(opt.t)
        rate = opt.alpha_t if isinstance(opt, chainer.optimizers.Adam) else opt.lr
        out[f"opt/{name}/rate"] = np.asarray(rate)


def _reporter(out: dict) -> None:
    # chainer.reporter.Summary accumulates from a Python float: the dtype of the running means
    # (what LogReport/PrintReport show) is where NEP 50 could change results.
    rs = np.random.RandomState(40)
    values = _rand(rs, 5)
    summary = chainer.reporter.Summary()
    for v in values:
        summary.add(chainer.Variable(np.asarray(v)).array)
    mean, std = summary.make_statistics()
    out["reporter/Summary_mean"] = np.asarray(summary.compute_mean())
    out["reporter/Summary_stats"] = np.asarray([mean, std])
    dsum = chainer.reporter.DictSummary()
    for v in values:
        dsum.add({"main/loss": np.asarray(v), "main/accuracy": float(v)})
    for key, value in sorted(dsum.compute_mean().items()):
        out[f"reporter/DictSummary/{key}"] = np.asarray(value)


def _serializers(out: dict) -> None:
    model = _mlp(50)
    opt = chainer.optimizers.Adam()
    opt.setup(model)
    rs = np.random.RandomState(51)
    x, t = _rand(rs, 10, 6), rs.randint(0, 3, 10).astype(np.int32)
    opt.update(lambda x, t: F.softmax_cross_entropy(model(x), t), x, t)
    with tempfile.TemporaryDirectory() as tmp:
        model_path, opt_path = os.path.join(tmp, "model.npz"), os.path.join(tmp, "opt.npz")
        chainer.serializers.save_npz(model_path, model)
        chainer.serializers.save_npz(opt_path, opt, compression=False)
        with np.load(model_path, allow_pickle=False) as npz:  # what the file holds, by key
            for key in sorted(npz.files):
                out[f"serial/model_file/{key}"] = npz[key]
        with np.load(opt_path, allow_pickle=False) as npz:
            for key in sorted(npz.files):
                out[f"serial/opt_file/{key}"] = npz[key]
        restored = _mlp(52)  # different initial weights, overwritten by the load
        chainer.serializers.load_npz(model_path, restored)
        ropt = chainer.optimizers.Adam()
        ropt.setup(restored)
        with np.load(opt_path, allow_pickle=False) as npz:
            chainer.serializers.NpzDeserializer(npz).load(ropt)
    for pname, p in sorted(restored.namedparams()):
        out[f"serial/restored{pname}"] = np.array(p.array)
    out["serial/restored_t"] = np.asarray(ropt.t)
    # continue training from the restored state: must match the original continuing
    for m, o in ((model, "orig"), (restored, "restored")):
        optimizer = opt if o == "orig" else ropt
        optimizer.update(lambda x, t: F.softmax_cross_entropy(m(x), t), x, t)
        out[f"serial/after_update_{o}"] = np.array(m.l2.W.array)


def _data(out: dict) -> None:
    # The pieces of Chainer's data pipeline a student's own training loop uses.
    rs = np.random.RandomState(60)
    x = _rand(rs, 10, 1, 2, 2, low=0.0)
    t = np.arange(10, dtype=np.int32)
    dataset = chainer.datasets.TupleDataset(x, t)
    train, valid = chainer.datasets.split_dataset_random(dataset, 7, seed=61)
    out["data/split_train_t"] = np.asarray([t for _, t in train])
    np.random.seed(62)
    it = chainer.iterators.SerialIterator(train, 3, repeat=True, shuffle=True)
    order = []
    for _ in range(4):
        bx, bt = chainer.dataset.concat_examples(it.next())
        order.append(bt)
    out["data/serial_iterator_order"] = np.concatenate(order)
    out["data/concat_examples_x"] = bx
    out["data/epoch_detail"] = np.asarray(it.epoch_detail)


def compute() -> dict[str, np.ndarray]:
    """Every checked quantity, by name; deterministic for a given stack."""
    out: dict[str, np.ndarray] = {}
    with chainer.using_config("train", True), chainer.using_config("dtype", np.float32), \
            chainer.using_config("enable_backprop", True):
        _layers(out)
        _activations(out)
        _losses(out)
        _optimizers(out)
        _reporter(out)
        _serializers(out)
        _data(out)
    return out


def meta() -> dict[str, np.ndarray]:
    return {
        f"{META_PREFIX}python": np.asarray(sys.version.split()[0]),
        f"{META_PREFIX}numpy": np.asarray(np.__version__),
        f"{META_PREFIX}chainer": np.asarray(chainer.__version__),
    }


def compare(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], rtol: float = 1e-6,
            atol_scale: float = 1e-6) -> list[str]:
    """Every difference as one line: missing/extra keys, dtype, shape, values beyond tolerance.

    Dtypes and shapes must be equal, integers and strings exactly; floats within ``rtol`` of each
    element plus ``atol_scale`` times the array's largest magnitude (so that elements that cancel
    to near zero, e.g. an Adam moment, are judged at the array's scale).
    """
    problems = []
    keys = {k for k in expected if not k.startswith(META_PREFIX)}
    for key in sorted(keys - actual.keys()):
        problems.append(f"{key}: missing from this stack's results")
    for key in sorted(actual.keys() - keys):
        problems.append(f"{key}: not in the golden file (regenerate it under the supported stack)")
    for key in sorted(keys & actual.keys()):
        e, a = expected[key], np.asarray(actual[key])
        if e.dtype != a.dtype:
            problems.append(f"{key}: dtype {a.dtype}, golden {e.dtype}")
        elif e.shape != a.shape:
            problems.append(f"{key}: shape {a.shape}, golden {e.shape}")
        elif e.dtype.kind in "fc":
            atol = atol_scale * float(np.max(np.abs(e), initial=0.0))
            if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
                err = np.max(np.abs(a.astype(np.float64) - e) / (atol + rtol * np.abs(e) + 1e-300))
                problems.append(f"{key}: values differ ({err:.3g}x the tolerance)")
        elif not np.array_equal(a, e):
            problems.append(f"{key}: values differ")
    return problems


def load_golden(path: Path = GOLDEN) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GOLDEN)
    parser.add_argument("--check", action="store_true", help="compare with the golden file instead of writing it")
    parser.add_argument("--force", action="store_true", help="write even when not on NumPy 1.x")
    args = parser.parse_args(argv)
    results = compute()
    if args.check:
        problems = compare(load_golden(args.out), results)
        for line in problems:
            print(line)
        print(f"{len(results)} quantities, {len(problems)} differences (numpy {np.__version__})")
        return 1 if problems else 0
    if not np.__version__.startswith("1.") and not args.force:
        print(f"refusing to write the golden file under numpy {np.__version__}: "
              "run this under the supported stack (.venv, NumPy 1.26), or pass --force", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **results, **meta())
    print(f"wrote {len(results)} quantities to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
