"""No test label, and for the anomaly track no label of any kind, ever enters the ingestion process."""

import json

import numpy as np
import pytest

from conftest import TINY_AE_CODE, TINY_AE_MANIFEST as TINY_AE
from harness import sandbox

from harness.grading import grade

AE_CODE = TINY_AE_CODE.format(hidden=16)
TINY_GAN = """\
name: Tiny GAN
generate:
  generator: gan.py:Generator
  discriminator: gan.py:Discriminator
  epochs: 1
  batch_size: 100
"""


@pytest.fixture
def captured_inputs(monkeypatch):
    """Every file of every input folder handed to the ingestion process, read before it runs."""
    seen = []
    real = sandbox.run_ingestion

    def spy(argv, *, input_dir, **kwargs):
        files = {}
        for path in sorted(input_dir.iterdir()):
            files[path.name] = (json.loads(path.read_text()) if path.suffix == ".json"
                                else np.load(path, allow_pickle=False))
        seen.append(files)
        return real(argv, input_dir=input_dir, **kwargs)

    monkeypatch.setattr(grade.sandbox, "run_ingestion", spy)
    return seen


def contains_labels(a: np.ndarray, labels: np.ndarray) -> bool:
    """Whether ``labels`` (or any contiguous 100 of them) can be read off array ``a``."""
    flat = np.asarray(a).ravel()
    if flat.size < 100:
        return False
    window = labels[:100].astype(flat.dtype) if flat.dtype.kind in "iuf" else None
    if window is None:
        return False
    hits = np.flatnonzero(flat[: flat.size - 99] == window[0])
    return any(np.array_equal(flat[i:i + 100], window) for i in hits[:10000])


def assert_no_test_labels(inputs, mnist):
    for files in inputs:
        for name, value in files.items():
            if isinstance(value, np.ndarray):
                assert not contains_labels(value, mnist.test_y), f"{name} holds test labels"
                if name != "train_y.npy":  # the training labels of the classify track are allowed
                    assert value.shape != (10000,), f"{name} has the shape of the test labels"
            else:
                text = json.dumps(value)
                assert len(text) < 4000, "job.json is small: settings only"


def test_classify_gets_no_test_labels(make_submission, harness_cli, db, captured_inputs, mnist):
    sub = make_submission("baselines/softmax-regression", "c")
    harness_cli("grade", sub, "--quick", "--db", db)
    (files,) = captured_inputs
    # --quick adds the positions (into train_x) of the 2,000 images its train accuracy is measured on
    assert set(files) == {"job.json", "train_x.npy", "train_y.npy", "test_x.npy", "train_eval_idx.npy"}
    assert_no_test_labels(captured_inputs, mnist)


def test_anomaly_gets_no_labels_at_all(make_submission, harness_cli, db, captured_inputs, mnist, tmp_path):
    sub = make_submission("baselines/softmax-regression", "a", manifest=TINY_AE, files={"ae.py": AE_CODE})
    code, _, _ = harness_cli("grade", sub, "--quick", "--db", db, "--json", tmp_path / "r.json")
    assert code == 0
    # one job per protocol and per one-class digit (--quick: course, digit 0, digit 1), each with only
    # its own training images and the images it scores: never the clean test images beside the course set
    assert [files["job.json"].get("digit", "course") for files in captured_inputs] == ["course", 0, 1]
    for files in captured_inputs:
        assert set(files) == {"job.json", "train_x.npy", "eval_x.npy"}, "no label array at all"
    assert_no_test_labels(captured_inputs, mnist)
    course = captured_inputs[0]
    assert not contains_labels(course["eval_x.npy"], mnist.train_y)
    # the course set mixes clean and corrupted images: its order is not the clean-first order
    clean = course["eval_x.npy"][:10000].reshape(10000, -1)
    assert not np.array_equal(np.rint(clean * 255).astype(np.uint8), mnist.test_x)
    # a one-class job scores all test images, not in their public (labelled) order
    assert not np.array_equal(captured_inputs[1]["eval_x.npy"], mnist.test_x)


def test_generate_gets_only_training_images(make_submission, harness_cli, db, captured_inputs, mnist):
    sub = make_submission("baselines/mlp-gan", "g", manifest=TINY_GAN)
    harness_cli("grade", sub, "--quick", "--db", db)
    (files,) = captured_inputs
    assert set(files) == {"job.json", "train_x.npy"}
    assert_no_test_labels(captured_inputs, mnist)
