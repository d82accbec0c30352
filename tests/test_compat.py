"""harness.compat: each shim is applied where what Chainer needs is missing, and is a no-op where
it is present. "Missing" is simulated in a fresh interpreter (a subprocess), so every case runs
on every stack: NumPy 1 or 2, with or without pkg_resources."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from harness import compat

ROOT = Path(__file__).resolve().parents[1]

# Makes `import NAME` fail in the subprocess, as on a stack where NAME was removed.
BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def __init__(self, names): self.names = names
    def find_spec(self, name, path, target=None):
        if name in self.names or any(name.startswith(n + '.') for n in self.names):
            raise ImportError('blocked by the test: ' + name)
def block(*names):
    for n in names:
        for m in [m for m in sys.modules if m == n or m.startswith(n + '.')]:
            del sys.modules[m]
    sys.meta_path.insert(0, _Block(names))
"""


def run_py(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ before-import shims


def test_every_import_time_shim_applied_when_missing():
    """NumPy 2 + Python 3.12 + setuptools>=81, simulated: no numpy.distutils, no pkg_resources,
    no numpy.sctypes. Chainer still imports and works, with the stand-ins."""
    out = run_py("""
        import json, numpy
        block('numpy.distutils', 'pkg_resources')
        if hasattr(numpy, '__dict__') and 'sctypes' in vars(numpy):
            del numpy.sctypes
        from harness.compat import prepare_chainer
        prepare_chainer()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # the stub raises no deprecation notice
            import chainer
        import chainer.functions as F, chainer._environment_check as ec, pkg_resources, numpy.distutils.system_info as si
        ec.check()  # what Chainer runs at import, on the stub
        x = chainer.Variable(numpy.arange(6, dtype=numpy.float32))
        y = F.as_strided(x, (2, 2), (2, 1))  # strides in elements; as_strided.py:10
        F.sum(y).backward()  # as_strided.py:252
        found = {}
        try:
            pkg_resources.require('numpy<0.1')
        except pkg_resources.VersionConflict:
            found['conflict'] = True
        try:
            pkg_resources.require('cupy-cuda120>=7.7.0,<8.0.0')
        except pkg_resources.DistributionNotFound:
            found['not_found'] = True
        print(json.dumps(dict(found, stub=pkg_resources.__doc__, get_info=si.get_info('blas_opt'),
            version=pkg_resources.get_distribution('numpy').version == numpy.__version__,
            require=pkg_resources.require('numpy>=1'), ws=pkg_resources.WorkingSet().require('numpy'),
            ints=[t.__name__ for t in numpy.sctypes['int']], y=y.array.tolist(), gx=x.grad.tolist(),
            resolution=issubclass(pkg_resources.VersionConflict, pkg_resources.ResolutionError))))
    """)
    assert out["stub"].startswith("Stand-in made by harness.compat")
    assert out["conflict"] and out["not_found"] and out["version"] and out["resolution"]
    assert out["require"] == [] and out["ws"] == [] and out["get_info"] == {}
    assert out["ints"] == ["int8", "int16", "int32", "int64"]
    assert out["y"] == [[0.0, 1.0], [2.0, 3.0]]
    assert out["gx"] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_import_time_shims_are_noops_when_present():
    """Whatever is there (real or not) is left alone: the shims only fill gaps."""
    out = run_py("""
        import json, sys, types, numpy
        mine = {name: types.ModuleType(name) for name in ('pkg_resources', 'numpy.distutils', 'numpy.distutils.system_info')}
        mine['numpy.distutils'].system_info = mine['numpy.distutils.system_info']
        sys.modules.update(mine)
        sctypes = {'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64], 'float': [numpy.float32]}
        numpy.sctypes = sctypes
        from harness.compat import prepare_chainer
        prepare_chainer()
        print(json.dumps({'same': [sys.modules[n] is m for n, m in mine.items()] + [numpy.sctypes is sctypes]}))
    """)
    assert out["same"] == [True, True, True, True]


def test_sctypes_matches_numpy_1():
    fake = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("_") and n != "sctypes"})
    table = compat._numpy_sctypes(fake)
    assert [t().itemsize for t in table["int"]] == [1, 2, 4, 8]
    assert np.float32 in table["float"] and np.float64 in table["float"]
    if np.__version__.startswith("1."):
        assert table == np.sctypes


# ------------------------------------------------------------------------- after-import shims


def _fake_reporter():
    class Summary:
        def add(self, value, weight=1):
            self.seen = (value, weight)
    return types.SimpleNamespace(Summary=Summary)


def _fake_gradient_clipping():
    class GradientClipping:
        def __call__(self, opt):
            return "chainer"
    return types.SimpleNamespace(GradientClipping=GradientClipping)


@pytest.mark.parametrize("nep50", [True, False])
def test_nep50_shims_only_under_nep50(monkeypatch, nep50):
    monkeypatch.setattr(compat, "_nep50", lambda: nep50)
    reporter, clipping, sce = _fake_reporter(), _fake_gradient_clipping(), types.ModuleType("sce")
    originals = reporter.Summary.add, clipping.GradientClipping.__call__
    for _ in range(2):  # idempotent: applied once
        compat._shim_reporter_summary(reporter)
        compat._shim_gradient_clipping(clipping)
        compat._shim_softmax_cross_entropy(sce)
    patched = reporter.Summary.add is not originals[0], clipping.GradientClipping.__call__ is not originals[1]
    assert patched == (nep50, nep50)
    assert ("max" in vars(sce)) == nep50
    if nep50:
        s = reporter.Summary()
        s.add(np.float32(0.1), np.int32(2))
        assert s.seen == (np.float64(np.float32(0.1)), 2)
        assert type(s.seen[0]) is np.float64 and type(s.seen[1]) is np.int64
        assert sce.max(np.int64(3), 1) == 3 and type(sce.max(np.int64(3), 1)) is int
        assert type(sce.max(np.float32(0.5), 1.0)) is float
        assert sce.max([1, 5, 2]) == 5


def test_nep50_detection_follows_numpy():
    assert compat._nep50() == (not np.__version__.startswith("1."))


def test_legacy_scalar_widens_only_numpy_scalars():
    assert compat._legacy_scalar(np.float32(0.5)).dtype == np.float64
    assert compat._legacy_scalar(np.asarray(np.float16(0.5))).dtype == np.float64
    assert compat._legacy_scalar(np.int32(3)).dtype == np.int64
    assert compat._legacy_scalar(np.float64(0.5)).dtype == np.float64
    assert compat._legacy_scalar(0.5) == 0.5 and type(compat._legacy_scalar(0.5)) is float
    vector = np.ones(3, np.float32)
    assert compat._legacy_scalar(vector) is vector  # not a scalar: untouched


def test_resize_images_shim_leaves_numpy_alone(monkeypatch):
    module = types.ModuleType("fake_resize_images")
    module.numpy = np
    exec("def compute_indices_and_weights(n, xp):\n    return xp.arange(n, dtype=numpy.float)", vars(module))
    original = module.compute_indices_and_weights
    monkeypatch.setattr(np, "float", float, raising=False)  # present: no-op
    compat._shim_resize_images(module)
    assert module.compute_indices_and_weights is original
    monkeypatch.delattr(np, "float")  # missing (NumPy >= 1.24): only that function sees the alias
    compat._shim_resize_images(module)
    compat._shim_resize_images(module)
    assert module.compute_indices_and_weights(3, np).dtype == np.float64
    assert module.numpy is np and not hasattr(np, "float")


# --------------------------------------------------------------------------- on real Chainer


def test_prepare_chainer_is_idempotent_and_hooks_once():
    from harness.chainer_env import chainer

    compat.prepare_chainer()
    compat.prepare_chainer()
    assert sum(isinstance(f, compat._AfterImportFinder) for f in sys.meta_path) == 1
    add = chainer.reporter.Summary.add
    assert getattr(add, "_harness_compat", False) == compat._nep50()
    if compat._nep50():  # the shim wraps Chainer's own add, once
        assert not getattr(add.__closure__[0].cell_contents, "_harness_compat", False)


def test_shimmed_chainer_computes_as_numpy_1():
    from harness.chainer_env import chainer
    import chainer.functions as F

    s = chainer.reporter.Summary()
    for v in (0.1, 0.2, 0.3):
        s.add(np.asarray(v, dtype=np.float32))
    assert s.compute_mean().dtype == np.float64  # chainer/reporter.py under NumPy 1
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    y = F.resize_images(x, (7, 7))  # numpy.float, chainer/functions/array/resize_images.py:179
    assert y.dtype == np.float32 and y.shape == (1, 2, 7, 7)
    assert float(y.array[0, 0, 0, 0]) == 0.0 and float(y.array[0, 0, -1, -1]) == 15.0


def test_hooked_modules_keep_their_loader_features():
    from harness.chainer_env import chainer

    assert "class Summary" in inspect.getsource(chainer.reporter)
    assert chainer.reporter.__spec__.name == "chainer.reporter"


def test_after_import_shims_apply_when_chainer_came_first():
    """prepare_chainer() called after `import chainer` still patches the modules already loaded."""
    out = run_py("""
        import json, sys
        from harness import compat
        # the venv's .pth hook would apply every shim on `import chainer`: take it out to test the other order
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, compat._ChainerFirstImport)]
        compat._shim_numpy_distutils(); compat._shim_pkg_resources(); compat._shim_numpy_sctypes()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            import chainer
        before = getattr(chainer.reporter.Summary.add, '_harness_compat', False)
        compat.prepare_chainer()
        print(json.dumps({'before': before, 'after': getattr(chainer.reporter.Summary.add, '_harness_compat', False),
                          'nep50': compat._nep50()}))
    """)
    assert out["before"] is False
    assert out["after"] == out["nep50"]


def test_gradient_clipping_scales_as_on_numpy_1():
    """Squared norm summed in float64, rate cast to the gradient's dtype: NumPy 1's arithmetic in
    chainer/optimizer_hooks/gradient_clipping.py, whichever NumPy runs it."""
    from harness.chainer_env import chainer
    import chainer.links as L

    model = chainer.ChainList(L.Linear(3, 2), L.Linear(2, 1))
    rs = np.random.RandomState(0)
    grads = {}
    for name, p in model.namedparams():
        p.grad = rs.uniform(-1, 1, p.shape).astype(np.float32)
        grads[name] = p.grad.copy()
    opt = chainer.optimizers.SGD(lr=0.0)
    opt.setup(model)
    opt.add_hook(chainer.optimizer_hooks.GradientClipping(0.3))
    opt.update()
    sqnorm = np.float64(0)
    for name in grads:  # the order Chainer visits the parameters
        g = grads[name].ravel()
        sqnorm = sqnorm + np.float64(g.dot(g))
    rate = np.float32(0.3 / np.sqrt(sqnorm))
    for name, p in model.namedparams():
        np.testing.assert_array_equal(p.grad, grads[name] * rate)
        assert p.grad.dtype == np.float32


def test_plain_import_chainer_works_in_this_venv(tmp_path):
    """A student's own script (no harness import, run from anywhere) imports Chainer and reads MNIST
    offline: scripts/setup.sh installs the compat hook as a .pth file in the venv."""
    import subprocess
    import sys

    script = tmp_path / "student.py"
    script.write_text(
        "import chainer, chainer.functions as F, chainer.links as L\n"
        "train, test = chainer.datasets.get_mnist()\n"
        "model = L.Classifier(L.Linear(784, 10))\n"
        "x, t = chainer.dataset.concat_examples(train[:5])\n"
        "print(chainer.__version__, len(train), len(test), float(model(x, t).array) > 0)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["7.8.1", "60000", "10000", "True"]
