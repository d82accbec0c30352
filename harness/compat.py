"""Make Chainer 7.8.1 import, and compute as on its supported stack, on the stacks people have.

Chainer 7.8.1 (the last release) was made for Python <= 3.11, NumPy 1.x and a setuptools that
ships ``pkg_resources``. Call :func:`prepare_chainer` before the first ``import chainer``
(``harness.chainer_env`` does); calling it again, or after Chainer was imported, is harmless.

Each shim restores only what Chainer needs, only where it is missing (it checks first), cites the
Chainer line it serves, and edits no installed file. Two kinds:

* before import -- what Chainer's modules need while being imported:
  ``numpy.distutils`` (NumPy 2, Python 3.12), ``pkg_resources`` (setuptools>=81), ``numpy.sctypes``
  (NumPy 2).
* after import -- applied by an import hook when the Chainer module is first imported (or at once
  if it already is):
  ``numpy.float`` in ``F.resize_images`` (gone since NumPy 1.24, so broken on the supported stack
  too), and the three places where NumPy 2's promotion rules (NEP 50: a NumPy scalar meeting a
  Python number keeps its own dtype) change Chainer's results on CPU: the reporter's running means
  (LogReport, PrintReport, Evaluator: float64 under NumPy 1, float32 under NumPy 2),
  ``GradientClipping`` and ``F.softmax_cross_entropy`` (last-bit differences). With the shims,
  NumPy 2 gives bit-identical results to NumPy 1 on everything ``scripts/make_chainer_golden.py``
  checks (``tests/test_chainer_numerics.py``); the NEP 50 shims do nothing under NumPy 1.

Checked and unaffected under Python 3.12 + NumPy 2: every other layer, loss, activation,
optimizer, hook, serializer, iterator and dataset the course uses. Chainer never calls
``numpy.array(..., copy=False)`` (its copy=False calls are ``astype``, ``numpy.ma`` and ChainerX,
whose meaning did not change) and uses none of the other removed names (bool8, float_, complex_,
int0, product, ...). On CuPy arrays every shim leaves Chainer's own code in charge.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import re
import sys
import types
import warnings

_prepared = False


# --------------------------------------------------------------------------- before import


def _shim_numpy_distutils() -> None:
    # chainer/_environment_check.py:6 `import numpy.distutils.system_info`, used at :29 only on
    # macOS (`get_info('blas_opt')`, to detect Accelerate). numpy.distutils is gone in NumPy 2 and
    # in Python 3.12, and breaks under setuptools>=74's vendored distutils (no msvccompiler).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy.distutils' deprecation notice
            import numpy.distutils.system_info  # noqa: F401
        return
    except Exception:
        pass
    system_info = types.ModuleType("numpy.distutils.system_info")
    system_info.get_info = lambda name, notfound_action=0: {}
    distutils = sys.modules.get("numpy.distutils") or types.ModuleType("numpy.distutils")
    distutils.system_info = system_info
    sys.modules["numpy.distutils"] = distutils
    sys.modules["numpy.distutils.system_info"] = system_info


def _pkg_resources_stub() -> types.ModuleType:
    """The part of ``pkg_resources`` Chainer uses, on ``importlib.metadata``."""
    mod = types.ModuleType("pkg_resources")
    mod.__doc__ = "Stand-in made by harness.compat: setuptools>=81 no longer ships pkg_resources."

    class ResolutionError(Exception):
        pass

    class DistributionNotFound(ResolutionError):
        pass

    class VersionConflict(ResolutionError):
        pass

    def get_distribution(name: str):
        try:
            return types.SimpleNamespace(project_name=name, version=importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            raise DistributionNotFound(name) from None

    def require(*requirements: str) -> list:
        for requirement in requirements:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", requirement)
            name, spec = match.group(1), match.group(2).strip()
            version = get_distribution(name).version
            if spec:
                try:
                    from packaging.specifiers import SpecifierSet
                except ImportError:  # cannot judge versions: found is enough for Chainer's check
                    continue
                if not SpecifierSet(spec).contains(version, prereleases=True):
                    raise VersionConflict(f"{name} {version} does not satisfy {requirement}")
        return []

    class WorkingSet:  # chainer/testing/helper.py:39 `pkg_resources.WorkingSet().require(...)`
        def require(self, *requirements: str) -> list:
            return require(*requirements)

    for obj in (ResolutionError, DistributionNotFound, VersionConflict, WorkingSet):
        obj.__module__ = "pkg_resources"
        mod.__dict__[obj.__name__] = obj
    mod.get_distribution = get_distribution
    mod.require = require
    return mod


def _shim_pkg_resources() -> None:
    # chainer/_environment_check.py:7 `import pkg_resources`; it uses require (:57),
    # DistributionNotFound (:59), VersionConflict (:61) and get_distribution(pkg).version (:74) to
    # warn about CuPy/iDeep versions. setuptools>=81 removed pkg_resources.
    if "pkg_resources" in sys.modules:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its own deprecation notice; Chainer imports it next
            import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    sys.modules["pkg_resources"] = _pkg_resources_stub()


# NumPy 1.26's numpy.sctypes, as chainer/functions/array/as_strided.py reads it.
def _numpy_sctypes(np) -> dict:
    return {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": [np.float16, np.float32, np.float64, np.longdouble],
        "complex": [np.complex64, np.complex128, np.clongdouble],
        "others": [bool, object, bytes, str, np.void],
    }


def _shim_numpy_sctypes() -> None:
    # chainer/functions/array/as_strided.py:10 `{t().itemsize: t for t in np.sctypes['int']}` runs
    # on import (chainer/functions/__init__.py:25), and :252 `np.sctypes['float']`.
    # numpy.sctypes was removed in NumPy 2.0.
    import numpy

    try:
        numpy.sctypes
        return
    except AttributeError:
        numpy.sctypes = _numpy_sctypes(numpy)


# ---------------------------------------------------------------------------- after import


def _nep50() -> bool:
    """True where NumPy scalars keep their dtype against Python numbers (NumPy 2, NEP 50)."""
    import numpy

    return type(numpy.float32(1) + 0.0) is numpy.float32


def _shim_resize_images(module) -> None:
    # chainer/functions/array/resize_images.py:179-196 `dtype=numpy.float` (the builtin float).
    # numpy.float was removed in NumPy 1.24: F.resize_images fails on the supported stack too.
    # Only compute_indices_and_weights (the one user, :174) sees a numpy with the alias: the real
    # numpy stays as it is, and the module's own `xp is numpy` tests (:238, :290) still hold.
    import numpy

    fn = module.compute_indices_and_weights
    if hasattr(numpy, "float") or getattr(fn, "_harness_compat", False):
        return

    class _NumpyWithFloat(types.ModuleType):
        float = float

        def __getattr__(self, name):
            return getattr(numpy, name)

    scope = dict(vars(module), numpy=_NumpyWithFloat("numpy"))
    patched = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    patched.__doc__, patched._harness_compat = fn.__doc__, True
    module.compute_indices_and_weights = patched


def _legacy_scalar(value):
    """A CPU scalar widened as NumPy 1 did when it met a Python number (int64/float64)."""
    import numpy

    if isinstance(value, (numpy.ndarray, numpy.generic)) and value.ndim == 0 and value.dtype.kind in "iuf":
        wide = numpy.float64 if value.dtype.kind == "f" else numpy.int64
        return numpy.asarray(value).astype(numpy.promote_types(value.dtype, wide))[()]
    return value


def _shim_reporter_summary(module) -> None:
    # chainer/reporter.py:277-278 start Summary._x/_x2 at the Python float 0.0 and :298-299 add
    # `weight * value` (weight the Python int 1): under NumPy 1 a float32 loss or accuracy was
    # thereby accumulated in float64; under NEP 50 in float32, so LogReport/PrintReport/Evaluator
    # means (DictSummary uses Summary) change. Widen CPU scalars first, as NumPy 1 did.
    summary = module.Summary
    if not _nep50() or getattr(summary.add, "_harness_compat", False):
        return
    original = summary.add

    def add(self, value, weight=1):
        return original(self, _legacy_scalar(value), _legacy_scalar(weight))

    add._harness_compat = True
    add.__doc__ = original.__doc__
    summary.add = add


def _shim_gradient_clipping(module) -> None:
    # chainer/optimizer_hooks/gradient_clipping.py:42 `sum(dots)` (builtin sum from int 0) and
    # :93 `rate = self.threshold / norm`: under NumPy 1 the squared norm and the rate were float64
    # and :106 `grad *= rate` cast the rate to the gradient's dtype (value-based casting); under
    # NEP 50 the norm is summed in float32 and the products differ in the last bits. For CPU
    # arrays, compute as NumPy 1 did; anything else (CuPy) goes to Chainer's own code.
    import numpy

    hook = module.GradientClipping
    if not _nep50() or getattr(hook.__call__, "_harness_compat", False):
        return
    original = hook.__call__

    def __call__(self, opt):
        params = list(opt.target.params(False))
        if not params or not all(isinstance(p.grad, numpy.ndarray) for p in params):
            return original(self, opt)
        sqnorm = sum(numpy.float64(g.dot(g)) for g in (p.grad.ravel() for p in params))
        rate = self.threshold / numpy.sqrt(sqnorm)
        if rate >= 1:
            return
        for p in params:
            p.grad *= p.grad.dtype.type(rate)

    __call__._harness_compat = True
    hook.__call__ = __call__


def _shim_softmax_cross_entropy(module) -> None:
    # chainer/functions/loss/softmax_cross_entropy.py:167 `count = t_valid.sum()` (a NumPy int)
    # and :170 `self._coeff = 1.0 / max(count, 1)`: a NumPy float64 scalar. Under NumPy 1 it was
    # cast to float32 in :175 `y * (-self._coeff)` and :320 `gx *= gloss * self.coeff`; under
    # NEP 50 both products are computed in float64 and rounded again, so the loss and its gradient
    # differ in the last bit. A module-level `max` that returns a Python number (the weak scalar
    # NEP 50 treats as NumPy 1 treated this one) restores NumPy 1's results; it also serves :434
    # `max(count, 1.)` unchanged in value. CuPy arrays pass through.
    import builtins

    import numpy

    if not _nep50() or "max" in vars(module):
        return

    def max(*args, **kwargs):  # noqa: A001 (shadows the builtin in that module only)
        result = builtins.max(*args, **kwargs)
        return result.item() if isinstance(result, numpy.generic) else result

    module.max = max


_AFTER_IMPORT = {
    "chainer.functions.array.resize_images": _shim_resize_images,
    "chainer.functions.loss.softmax_cross_entropy": _shim_softmax_cross_entropy,
    "chainer.reporter": _shim_reporter_summary,
    "chainer.optimizer_hooks.gradient_clipping": _shim_gradient_clipping,
}


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then the shim for that module."""

    def __init__(self, loader, shim) -> None:
        self._loader, self._shim = loader, shim

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._shim(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package, ...
        return getattr(self._loader, name)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Finds the shimmed Chainer modules with the other finders and wraps their loader."""

    def find_spec(self, name, path, target=None):
        shim = _AFTER_IMPORT.get(name)
        if shim is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, shim)
                return spec
        return None


def _install_after_import_shims() -> None:
    for name, shim in _AFTER_IMPORT.items():
        module = sys.modules.get(name)
        if module is not None:
            shim(module)
    if not any(isinstance(f, _AfterImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportFinder())


def prepare_chainer() -> None:
    """Apply every shim needed by this interpreter, NumPy and setuptools; idempotent."""
    global _prepared
    if _prepared:
        return
    _shim_numpy_distutils()
    _shim_pkg_resources()
    _shim_numpy_sctypes()
    _install_after_import_shims()
    _prepared = True


# --------------------------------------------------------------------------- at install time

PTH_NAME = "chainer_harness_compat.pth"
# One line, run by site.py at every start of the venv's interpreter: cheap (it only registers a
# finder), and it never breaks the interpreter if the harness is gone.
PTH_LINE = ("import sys; exec(\"try:\\n import harness.compat as _hc; _hc.install_import_hook()\\n"
            "except Exception:\\n pass\")\n")


class _ChainerFirstImport(importlib.abc.MetaPathFinder):
    """Applies :func:`prepare_chainer` the moment anything first imports ``chainer`` (a student's
    script, a notebook kernel, ``python -c 'import chainer'``), then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "chainer" or fullname.startswith("chainer."):
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            prepare_chainer()
        return None  # the normal finders import Chainer


def install_import_hook() -> None:
    """Make a plain ``import chainer`` work in this interpreter (see :data:`PTH_LINE`)."""
    if "chainer" in sys.modules or any(isinstance(f, _ChainerFirstImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _ChainerFirstImport())


def install_pth() -> str:
    """Write :data:`PTH_NAME` into this interpreter's site-packages; returns its path."""
    import os
    import sysconfig

    path = os.path.join(sysconfig.get_paths()["purelib"], PTH_NAME)
    with open(path, "w") as f:
        f.write(PTH_LINE)
    return path


if __name__ == "__main__":  # python -m harness.compat --install-pth (scripts/setup.sh)
    if sys.argv[1:] != ["--install-pth"]:
        sys.exit("usage: python -m harness.compat --install-pth")
    print(f"import chainer now works in {sys.prefix}: {install_pth()}")
