"""Make Chainer 7.8.1 importable on the stacks people have.

Call :func:`prepare_chainer` before the first ``import chainer`` (``harness.chainer_env`` does).
Each shim restores only what Chainer needs and only where it is missing; no installed file is edited.
"""

from __future__ import annotations

import sys
import types


def _shim_numpy_distutils() -> None:
    # chainer/_environment_check.py:6 `import numpy.distutils.system_info` (used only on macOS
    # to detect Accelerate). numpy.distutils is gone in NumPy 2 and in Python 3.12, and breaks
    # under setuptools>=74's vendored distutils (no msvccompiler).
    try:
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


def prepare_chainer() -> None:
    """Apply every shim needed by this interpreter and NumPy; idempotent."""
    if "chainer" in sys.modules:
        return
    _shim_numpy_distutils()
