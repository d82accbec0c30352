"""`harness grade` and `harness check` work in whichever stack runs this file, and grade as the
supported stack does.

CI runs this file twice: in `.venv` (Python 3.11, NumPy 1.26: the supported stack) with the main
suite, and in `.venv-np2` (Python 3.12, NumPy 2, setuptools>=81: Chainer through harness.compat)
from `.ci/stack-numpy2.sh`. Both runs go through the console script and the real bubblewrap
sandbox, which binds the running interpreter's environment read-only (for `.venv-np2`, a venv
whose base interpreter lives under /root/.pyenv/versions/3.12.1).

The metrics of `harness grade baselines/course-mlp baselines/softmax-regression --quick` are
compared with `tests/data/quick_grade_reference.json`, made under the supported stack:

    .venv/bin/python tests/test_stack_grade.py --write-reference

(it refuses any other stack unless given --force; rerun it when a baseline, the --quick profile
or the seeds change: the test says so when the reference's baseline checksums or profile no
longer match).

Tolerance, from measurement (README-stacks.md has the tables). Training runs float32 matrix
products in OpenBLAS, whose kernel is chosen per CPU, so the same stack on another machine (CI's)
trains slightly different weights. Measured on one SkylakeX machine, forcing each kernel with
OPENBLAS_CORETYPE (SkylakeX, Haswell, Zen, Sandybridge, Nehalem, Prescott) under NumPy 1.26.4
(OpenBLAS 0.3.23) and NumPy 2.5.5 (OpenBLAS 0.3.34), 11 runs: on SkylakeX the two stacks agree to
the bit (one float64 ulp on a mean loss); across kernels course-mlp's accuracies moved by at most
0.0004 (2 of the 5,000 images of a test half), its losses by at most 1.6e-3 relative, its loss_gap
by 1.3e-4; softmax regression's losses by 2e-8 relative. The bounds below leave 3x (losses), 5x
(accuracies) and 8x (loss_gap) that noise, and still fail on 0.005 of accuracy or 1% of loss.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "quick_grade_reference.json"
CONFIG = ROOT / "harness" / "competition.yaml"  # the packaged config, whatever ./competition.yaml says
BASELINES = ("course-mlp", "softmax-regression")
REGENERATE = ".venv/bin/python tests/test_stack_grade.py --write-reference"

ACCURACY_ABS = 0.002   # test_accuracy(_public/_private), train_accuracy, accuracy_gap: 10 of 5,000 images
LOSS_REL = 5e-3        # train_loss, test_loss (mean cross-entropy), relative
LOSS_GAP_ABS = 1e-3    # loss_gap = test_loss - train_loss, absolute (a difference of two near values)
EXACT = ("params",)
IGNORED = ("train_seconds", "accuracy_gap_public", "test_loss_public", "loss_gap_public")  # public twins of compared keys

HAVE_BWRAP = shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin:" + os.environ.get("PATH", "")) is not None
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap")


def harness_command() -> list[str]:
    """The `harness` console script of the running environment (what a user types)."""
    script = Path(sys.executable).with_name("harness")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]


def run_harness(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_DB"}
    env["COLUMNS"] = "200"
    return subprocess.run(harness_command() + [str(a) for a in args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)


def quick_profile() -> dict:
    """What the reference depends on besides the baselines' code: the --quick profile and seeds."""
    from harness import competition

    comp = competition.load(str(CONFIG))
    return {"seed": comp["seed"], "split_seed": comp["split_seed"], "public_fraction": comp["public_fraction"],
            "quick": {k: comp["quick"][k] for k in ("train_subset", "max_epochs")}}


def grade_baselines(workdir: Path) -> dict:
    """Grade the baselines with --quick into a scratch store; {id: submission result}."""
    out = workdir / "quick.json"
    proc = run_harness("grade", *[ROOT / "baselines" / b for b in BASELINES], "--quick", "--track", "classify",
                       "--config", CONFIG, "--db", workdir / "store.db", "--json", out, "--private")
    assert proc.returncode == 0, f"harness grade exited {proc.returncode}:\n{proc.stdout[-4000:]}"
    return {s["id"]: s for s in json.loads(out.read_text())["submissions"]}


def stack() -> dict:
    import importlib.metadata as md

    info = {"python": platform.python_version(), "numpy": md.version("numpy"), "chainer": md.version("chainer"),
            "setuptools": md.version("setuptools")}
    try:
        import threadpoolctl

        blas = [d for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
        info["blas"] = ", ".join(f"{d['internal_api']} {d.get('version')} {d.get('architecture')}" for d in blas)
    except Exception:  # threadpoolctl comes with scikit-learn; the stack line is information only
        pass
    return info


def compare(metrics: dict, reference: dict) -> list[str]:
    """One line per metric outside the tolerance (or missing, or new)."""
    problems = []
    got_keys, want_keys = set(metrics) - set(IGNORED), set(reference) - set(IGNORED)
    if got_keys != want_keys:
        problems.append(f"metric keys differ: missing {sorted(want_keys - got_keys)}, "
                        f"new {sorted(got_keys - want_keys)} (regenerate: {REGENERATE})")
    for key in sorted(got_keys & want_keys):
        got, want = metrics[key], reference[key]
        if key in EXACT:
            ok, bound = got == want, "exact"
        elif key in ("train_loss", "test_loss"):
            ok, bound = math.isclose(got, want, rel_tol=LOSS_REL), f"rel {LOSS_REL:g}"
        elif key == "loss_gap":
            ok, bound = abs(got - want) <= LOSS_GAP_ABS, f"abs {LOSS_GAP_ABS:g}"
        elif "accuracy" in key:
            ok, bound = abs(got - want) <= ACCURACY_ABS, f"abs {ACCURACY_ABS:g}"
        else:
            ok, bound = False, f"no tolerance defined for {key!r}: add one to tests/test_stack_grade.py"
        if not ok:
            problems.append(f"{key}: {got!r}, reference {want!r} (diff {got - want:+.3g}, allowed {bound})")
    return problems


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_baselines(tmp_path_factory.mktemp("stack-grade"))


@pytest.fixture(scope="module")
def reference():
    assert REFERENCE.is_file(), f"{REFERENCE.relative_to(ROOT)} is missing: make it with {REGENERATE}"
    ref = json.loads(REFERENCE.read_text())
    assert ref["profile"] == quick_profile(), (
        f"the --quick profile or seeds in harness/competition.yaml changed since the reference was made "
        f"({ref['profile']} -> {quick_profile()}): regenerate it with {REGENERATE}")
    return ref


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("baseline", BASELINES)
def test_quick_grade_matches_supported_stack(graded, reference, baseline):
    result, ref = graded[baseline], reference["submissions"][baseline]
    assert result["sha256"] == ref["sha256"], (
        f"baselines/{baseline} changed since {REFERENCE.name} was made: regenerate it with {REGENERATE}")
    track = result["tracks"]["classify"]
    assert track["status"] == "OK", f"{track['status']}: {track['message']}"
    assert track["isolation"] == "bubblewrap", track["isolation"]  # the student-code path, not --no-sandbox
    assert track["device"] == "@numpy"
    problems = compare(track["metrics"], ref["metrics"])
    assert not problems, (f"{baseline} under {stack()} vs the reference made under {reference['stack']}:\n  "
                          + "\n  ".join(problems))


@needs_bwrap
def test_check_passes_on_template(tmp_path):
    sub = tmp_path / "student"
    shutil.copytree(ROOT / "submissions" / "_template", sub)
    proc = run_harness("check", sub)
    assert proc.returncode == 0, proc.stdout
    assert "ready to grade" in proc.stdout, proc.stdout


def test_tolerance_accepts_measured_noise_and_rejects_real_change():
    """The bounds hold what was measured across OpenBLAS kernels, and catch a one-epoch-sized change."""
    ref = {"test_accuracy": 0.9256, "test_accuracy_public": 0.9232, "test_accuracy_private": 0.928,
           "train_accuracy": 0.9353, "accuracy_gap": 0.0097, "train_loss": 0.224565, "test_loss": 0.25567,
           "loss_gap": 0.031105, "params": 573910, "train_seconds": 2.7}
    sandybridge = dict(ref, test_accuracy=0.9255, test_accuracy_public=0.9234, test_accuracy_private=0.9276,
                       train_accuracy=0.9352, accuracy_gap=0.0097, train_loss=0.224931, test_loss=0.255924,
                       loss_gap=0.030993, train_seconds=49.0)  # course-mlp, OPENBLAS_CORETYPE=Sandybridge
    assert compare(sandybridge, ref) == []
    assert compare(dict(ref, test_accuracy_public=0.9182), ref)      # 25 images of the public half
    assert compare(dict(ref, test_loss=0.2580), ref)                 # 1% of the loss
    assert compare(dict(ref, loss_gap=0.0327), ref)                  # 0.0016 more overfitting
    assert compare(dict(ref, params=573911), ref)
    assert compare(dict(ref, new_metric=1.0), ref)


def write_reference(force: bool = False) -> None:
    import numpy

    if not force and not (sys.version_info[:2] == (3, 11) and numpy.__version__.startswith("1.")):
        sys.exit(f"the reference is made under the supported stack (Python 3.11, NumPy 1.26), not Python "
                 f"{platform.python_version()} / NumPy {numpy.__version__}: run {REGENERATE} (or pass --force)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        graded = grade_baselines(Path(tmp))
    subs = {}
    for b in BASELINES:
        track = graded[b]["tracks"]["classify"]
        assert track["status"] == "OK" and track["isolation"] == "bubblewrap", track
        subs[b] = {"sha256": graded[b]["sha256"],
                   "metrics": {k: v for k, v in sorted(track["metrics"].items()) if k not in IGNORED}}
    ref = {"about": "harness grade baselines/{course-mlp,softmax-regression} --quick --track classify, made by: "
                    + REGENERATE + "; compared by tests/test_stack_grade.py",
           "stack": stack(), "profile": quick_profile(), "submissions": subs}
    REFERENCE.write_text(json.dumps(ref, indent=2) + "\n")
    print(f"wrote {REFERENCE.relative_to(ROOT)} under {ref['stack']}")


if __name__ == "__main__":
    if "--write-reference" not in sys.argv[1:]:
        sys.exit(f"usage: {REGENERATE} [--force]")
    write_reference(force="--force" in sys.argv[1:])
