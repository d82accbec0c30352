"""Course code as students bring it, graded through the real sandbox (issue 11: "a student's first hour").

The folders under tests/course_code/ are code nobody wrote for this harness: a course notebook with
Model0..3 and its training cells, Chainer's MNIST example MLP (constructor arguments), an
L.Classifier wrapper, Chainer's DCGAN (a discriminator that needs Variables and returns (N,1,1,1),
numpy.random in make_hidden) and the VAE example. Grades use --quick with short budgets
(tests/course_code/competition.yaml) and one track each.
"""

import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, read_results

COURSE = ROOT / "tests" / "course_code"
CONFIG = COURSE / "competition.yaml"


@pytest.fixture
def course(tmp_path):
    """Copy a course folder to tmp_path/subs/<name>, optionally rewriting files or the manifest."""

    def make(folder: str, name: str | None = None, files: dict | None = None, manifest: str | None = None) -> Path:
        dst = tmp_path / "subs" / (name or folder)
        shutil.copytree(COURSE / folder, dst)
        for rel, text in (files or {}).items():
            (dst / rel).write_text(text)
        if manifest is not None:
            (dst / "submission.yaml").write_text(manifest)
        return dst

    return make


def grade(harness_cli, tmp_path, track: str, *subs):
    out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    code, stdout, _ = harness_cli("grade", *subs, "--quick", "--track", track, "--config", CONFIG,
                                  "--db", tmp_path / "store.db", "--json", out)
    results = {s["id"]: s["tracks"][track] for s in read_results(out)["submissions"]}
    return code, results


def log_of(result) -> str:
    return Path(result["artifacts"]["log"]).read_text()


def one_line(text: str) -> str:
    return " ".join(text.split())


def check_fails(harness_cli, sub, expected: str) -> None:
    """`harness check` refuses the submission, saying ``expected``."""
    code, out, _ = harness_cli("check", sub)
    assert code == 1 and expected in one_line(out)


def vae_manifest(old: str, new: str) -> str:
    """The course VAE's submission.yaml with ``old`` replaced by ``new``."""
    return (COURSE / "chainer-vae" / "submission.yaml").read_text().replace(old, new)


def test_course_code_grades_as_it_is(course, harness_cli, tmp_path):
    """A notebook (definitions only), Chainer's example MLP with model_args, an L.Classifier wrapper."""
    subs = [course("notebook"), course("chainer-mnist"), course("classifier-wrapper")]
    code, results = grade(harness_cli, tmp_path, "classify", *subs)
    assert code == 0, results
    for ident, r in results.items():
        assert r["status"] == "OK", (ident, r["message"])
        assert r["metrics"]["test_accuracy_public"] > 0.5, ident

    notebook = log_of(results["notebook"])
    assert "print: Model1 with 50 hidden units" in notebook  # the student's print(), captured
    assert "[Model1] epoch 1/1: loss=" in notebook and "(mean over 60 of 60 batches)" in notebook
    assert "matplotlib is not installed on the grader" in notebook  # a warning, not a failure
    assert results["notebook"]["metrics"]["params"] == 784 * 50 + 50 + 50 * 10 + 10  # Model1(n_mid=n_units=50)

    assert results["chainer-mnist"]["metrics"]["params"] == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert "graded through its predictor, MLP" in log_of(results["classifier-wrapper"])


def test_chainer_dcgan_grades_unmodified(course, harness_cli, tmp_path):
    """Its discriminator gets Variables (add_noise) and returns (N,1,1,1); quick feedback is truthful."""
    sub = course("chainer-dcgan")
    code, out, _ = harness_cli("check", sub, "--config", CONFIG)
    assert code == 0, out  # warnings only: a clamp, numpy.random in make_hidden
    text = one_line(out)
    assert "generate.epochs: 200 is above the competition's budget; it will be clamped to 20" in text
    assert "make_hidden() calls numpy.random.uniform()" in text

    code, results = grade(harness_cli, tmp_path, "generate", sub)
    r = results["chainer-dcgan"]
    assert code == 0 and r["status"] == "OK", r["message"]
    assert r["message"] == ""  # --quick: no clamp notice above a one-epoch run
    assert r["clamped"] == {"epochs": {"asked": 200, "used": 20}}
    log = log_of(r)
    assert "[Generator/Discriminator] training: 1 epoch of 120 batches of 50" in log
    steps = re.search(r"loss_dis=\S+, loss_gen=\S+ \(mean over (\d+) of 120 batches, stopped by the --quick budget of 3 s\)", log)
    assert steps and 0 < int(steps.group(1)) < 120, log  # the steps actually run, and means over them


def test_notebook_check_names_every_notebook_only_line(course, harness_cli):
    code, out, _ = harness_cli("check", course("notebook"))
    text = one_line(out)
    assert code == 0, out
    assert "ready to grade" in text
    for expected in ("cell 2, line 1: `%matplotlib inline`", "cell 2, line 2: `!pip install chainer==7.8.1`",
                     "`import matplotlib.pyplot as plt`: matplotlib is not installed",
                     "`from IPython.display import Image, display`: IPython is not installed",
                     "`import cupy as cp`: CuPy is not installed on this CPU grader",
                     "top-level statements (data loading, training loops, plots) not run",
                     "Model3 uses `n_pixels`, which only a top-level notebook statement defines "
                     "(deeplearningWithChainer.ipynb, cell 5, line 6: `n_pixels = x.size`)"):
        assert expected in text, expected


def test_a_notebook_only_name_fails_alike_in_check_and_grade(course, harness_cli, tmp_path):
    manifest = "name: N\nclassify:\n  model: deeplearningWithChainer.ipynb:Model3\n  epochs: 1\n"
    sub = course("notebook", "model3", manifest=manifest)
    code, out, _ = harness_cli("check", sub)
    assert code == 1
    expected = "`n_pixels`, which only a top-level notebook statement defines (deeplearningWithChainer.ipynb, cell 5"
    assert expected in one_line(out)
    code, results = grade(harness_cli, tmp_path, "classify", sub)
    assert code == 1 and results["model3"]["status"] == "INVALID_SUBMISSION"
    assert expected in one_line(results["model3"]["message"])


def test_constructor_arguments_name_model_args(course, harness_cli, tmp_path):
    manifest = "name: M\nclassify:\n  model: train_mnist.py:MLP\n  epochs: 1\n"
    sub = course("chainer-mnist", "no-args", manifest=manifest)
    expected = "train_mnist.py:MLP: MLP() needs n_units, n_out: give them in submission.yaml as " \
               "`model_args: {n_units: ..., n_out: ...}`"
    check_fails(harness_cli, sub, expected)
    code, results = grade(harness_cli, tmp_path, "classify", sub)
    assert results["no-args"]["status"] == "INVALID_SUBMISSION" and expected in results["no-args"]["message"]

    wrong = manifest + "  model_args: {n_unit: 10, n_out: 10}\n"
    code, out, _ = harness_cli("check", course("chainer-mnist", "wrong-args", manifest=wrong))
    assert code == 1 and "model_args: MLP() has no argument 'n_unit' (it takes: n_units, n_out)" in one_line(out)


def test_vae_with_its_own_train_passes_with_warnings(course, harness_cli):
    code, out, _ = harness_cli("check", course("chainer-vae"))
    text = one_line(out)
    assert code == 0, out
    assert "forward returns a reconstruction of shape (8, 784); the harness reshapes it to (N,1,28,28)" in text
    assert "no gradient from reconstruction reaches /le2_ln_var/W, /le2_ln_var/b; fine if your train:" in text


def test_a_forward_that_returns_a_loss_fails_alike_in_check_and_grade(course, harness_cli, tmp_path):
    sub = course("chainer-vae", "loss-vae", manifest=vae_manifest("net.py:VAE", "net.py:LossVAE"))
    expected = "this looks like a loss: return the reconstruction; put the loss in `train:`"
    check_fails(harness_cli, sub, expected)
    code, results = grade(harness_cli, tmp_path, "anomaly", sub)
    r = results["loss-vae"]
    assert code == 1 and r["status"] == "INVALID_SUBMISSION" and expected in one_line(r["message"])


def test_a_train_function_with_the_wrong_signature_fails_alike(course, harness_cli, tmp_path):
    sub = course("chainer-vae", "bad-train", manifest=vae_manifest("train.py:fit", "train.py:main"))
    expected = "train: train.py:main has the signature main(), expected fit(models, data, settings)"
    check_fails(harness_cli, sub, expected)
    code, results = grade(harness_cli, tmp_path, "anomaly", sub)
    assert results["bad-train"]["status"] == "INVALID_SUBMISSION" and expected in results["bad-train"]["message"]


def test_a_tanh_generator_is_told_the_fix_in_check_and_grade(course, harness_cli, tmp_path):
    net = (COURSE / "chainer-dcgan" / "net.py").read_text().replace("x = F.sigmoid(self.dc2(h))", "x = F.tanh(self.dc2(h))")
    sub = course("chainer-dcgan", "tanh", files={"net.py": net})
    expected = "outputs in [-1, 1] (tanh): return `(y + 1) / 2` or end with `F.sigmoid`"
    check_fails(harness_cli, sub, expected)
    code, results = grade(harness_cli, tmp_path, "generate", sub)
    assert results["tanh"]["status"] == "INVALID_SUBMISSION" and expected in one_line(results["tanh"]["message"])


def test_discriminator_output_shapes(course, harness_cli):
    """(N,), (N,1), (N,1,1,1) and (N,2) are accepted; anything else is named with the accepted shapes."""
    net = (COURSE / "chainer-dcgan" / "net.py").read_text()
    for ret, ok in (("F.reshape(self.l4(h), (len(x),))", True), ("F.reshape(self.l4(h), (len(x), 1))", True),
                    ("F.concat([self.l4(h), -self.l4(h)])[:, :, 0, 0]", True),
                    ("F.concat([self.l4(h)] * 3)[:, :, 0, 0]", False)):
        sub = course("chainer-dcgan", f"d{len(ret)}", files={"net.py": net.replace("return self.l4(h)", f"return {ret}")})
        code, out, _ = harness_cli("check", sub)
        assert (code == 0) == ok, (ret, out)
        if not ok:
            assert "logits have shape (8, 3), expected (8,), (8, 1), (8, 1, 1, 1) or (8, 2)" in one_line(out)
