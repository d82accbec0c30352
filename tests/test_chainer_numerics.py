"""Chainer computes here exactly as on the supported stack (Python 3.11, NumPy 1.26).

``tests/data/chainer_golden.npz`` holds, from ``scripts/make_chainer_golden.py`` run under the
supported stack, the outputs, gradients, optimizer steps, reporter means and serializer round
trips of everything the course uses. This recomputes them under whatever stack runs the tests
(e.g. Python 3.12 + NumPy 2 through ``harness.compat``) and compares: exact dtypes (NEP 50 must
not turn a float32 into a float64, nor the reverse), exact integers, floats to rtol 1e-6.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_chainer_golden", ROOT / "scripts" / "make_chainer_golden.py")
golden_script = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_chainer_golden", golden_script)
_spec.loader.exec_module(golden_script)

GOLDEN = golden_script.load_golden()
KEYS = sorted(k for k in GOLDEN if not k.startswith(golden_script.META_PREFIX))


def _group(key: str) -> str:
    """The operation a key belongs to: 'F.relu/y' -> 'F.relu', 'opt/Adam/loss0' -> 'opt/Adam'."""
    parts = key.split("/")
    return "/".join(parts[:2]) if parts[0] in ("opt", "serial", "reporter", "data") else parts[0]


GROUPS = sorted({_group(k) for k in KEYS})


@pytest.fixture(scope="module")
def results() -> dict[str, np.ndarray]:
    return golden_script.compute()


def test_golden_file_comes_from_the_supported_stack():
    assert str(GOLDEN["meta/numpy"]).startswith("1."), "regenerate the golden file under .venv (NumPy 1.26)"
    assert str(GOLDEN["meta/chainer"]) == "7.8.1"
    assert len(KEYS) > 150
    for key in KEYS:  # a NaN or inf in the golden file would hide a broken computation
        if GOLDEN[key].dtype.kind in "fc":
            assert np.all(np.isfinite(GOLDEN[key])), key


def test_this_stack_computes_the_same_quantities(results):
    assert sorted(results) == KEYS


@pytest.mark.parametrize("group", GROUPS)
def test_matches_golden(results, group):
    keys = [k for k in KEYS if _group(k) == group]
    problems = golden_script.compare({k: GOLDEN[k] for k in keys}, {k: results[k] for k in keys if k in results})
    assert not problems, f"numpy {np.__version__}, Python {sys.version.split()[0]}:\n" + "\n".join(problems)


def test_float_results_stay_float32(results):
    """Everything Chainer returns for float32 inputs is float32, apart from the reporter's means,
    which NumPy 1 accumulated in float64 (and harness.compat keeps so under NumPy 2), and Python
    floats (learning rates, epoch_detail)."""
    wide = {k for k, v in results.items() if v.dtype == np.float64}
    python_floats = {k for k in KEYS if k.endswith("/rate") or k == "data/epoch_detail"}
    assert wide == {k for k in KEYS if k.startswith("reporter/")} | python_floats, sorted(wide)
