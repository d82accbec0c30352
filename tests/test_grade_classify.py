"""The classification slice end to end: real Chainer models on real MNIST (the --quick subset)."""

import numpy as np
import pytest

from conftest import read_results
from harness.store import Store

SPEC_KEYS = {"test_accuracy", "test_accuracy_public", "test_accuracy_private", "train_accuracy", "accuracy_gap",
             "train_loss", "test_loss", "loss_gap", "params", "train_seconds"}
TRACK_KEYS = {"status", "message", "metrics", "seconds", "device", "seed", "isolation", "clamped"}

FAST = "name: Floor\nclassify:\n  model: classifier.py:SoftmaxRegression\n  epochs: 1\n  batch_size: 100\n  optimizer: SGD\n  optimizer_args: {lr: 0.1}\n"


def test_quick_grade_reports_spec_keys_and_is_reproducible(make_submission, harness_cli, db, tmp_path):
    sub = make_submission("baselines/softmax-regression", "floor", manifest=FAST)
    code, out, _ = harness_cli("grade", sub, "--quick", "--db", db, "--json", tmp_path / "a.json", "--private")
    assert code == 0
    first = read_results(tmp_path / "a.json")
    assert set(first) == {"harness_version", "submissions"}
    s = first["submissions"][0]
    assert {"id", "name", "path", "sha256", "harness_version", "tracks"} <= set(s)
    assert s["id"] == "floor" and len(s["sha256"]) == 64
    track = s["tracks"]["classify"]
    assert TRACK_KEYS <= set(track)
    assert track["status"] == "OK", track["message"]
    assert SPEC_KEYS <= set(track["metrics"])  # --private: every key (students see the public twins only)
    m = track["metrics"]
    assert 0.85 < m["test_accuracy"] < 0.95  # softmax regression after one epoch on 10k images
    assert m["params"] == 784 * 10 + 10
    assert m["accuracy_gap"] == pytest.approx(m["train_accuracy"] - m["test_accuracy"])
    assert "floor" in out and "classify leaderboard" in out

    code, _, _ = harness_cli("grade", sub, "--quick", "--db", db, "--json", tmp_path / "b.json", "--private")
    second = read_results(tmp_path / "b.json")["submissions"][0]["tracks"]["classify"]["metrics"]
    for key in SPEC_KEYS - {"train_seconds"}:
        assert second[key] == m[key], key  # identical on CPU, not merely close
    with Store(db) as store:
        runs = store.runs(track="classify")
    assert len(runs) == 2 and runs[0].run_uid != runs[1].run_uid  # every run kept


def test_weights_are_evaluated_without_training(make_submission, harness_cli, db, tmp_path, mnist):
    from harness.chainer_env import chainer
    from harness.data import to_images

    sub = make_submission("baselines/softmax-regression", "weighted",
                          manifest=FAST + "  weights: weights/model.npz\n")
    import importlib.util
    spec = importlib.util.spec_from_file_location("sr", sub / "classifier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.SoftmaxRegression()
    x, t = to_images(mnist.train_x[:3000]), mnist.train_y[:3000].astype(np.int32)
    opt = chainer.optimizers.SGD(lr=0.1)
    opt.setup(model)
    for i in range(0, 3000, 100):
        loss = chainer.functions.softmax_cross_entropy(model(x[i:i + 100]), t[i:i + 100])
        model.cleargrads()
        loss.backward()
        opt.update()
    (sub / "weights").mkdir()
    chainer.serializers.save_npz(sub / "weights" / "model.npz", model)
    with chainer.using_config("train", False):
        expected = float((model(to_images(mnist.test_x)).array.argmax(1) == mnist.test_y).mean())

    code, _, _ = harness_cli("grade", sub, "--quick", "--private", "--db", db, "--json", tmp_path / "r.json")
    track = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["classify"]
    assert code == 0 and track["status"] == "OK", track["message"]
    assert track["metrics"]["test_accuracy"] == expected  # the instructor's view (--private): the whole test set


@pytest.mark.parametrize("arrays, expected", [
    ({"linear/W": np.array([object()], dtype=object)}, "pickled objects, which are refused"),
    ({"linear/W": np.zeros((10, 100), np.float32), "linear/b": np.zeros(10, np.float32)},
     "'linear/W' has shape (10, 100), the model expects (10, 784)"),
    ({"other/W": np.zeros((10, 784), np.float32)}, "'linear/W' missing"),
])
def test_bad_weights_are_named(make_submission, harness_cli, db, tmp_path, arrays, expected):
    sub = make_submission("baselines/softmax-regression", "badweights", manifest=FAST + "  weights: w.npz\n")
    np.savez(sub / "w.npz", **arrays)
    code, _, _ = harness_cli("grade", sub, "--quick", "--db", db, "--json", tmp_path / "r.json")
    track = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["classify"]
    assert code == 1
    assert track["status"] == "INVALID_SUBMISSION"
    assert "w.npz" in track["message"] and expected in track["message"]


def test_crash_is_a_row_and_others_still_graded(make_submission, harness_cli, db, tmp_path):
    broken = make_submission("baselines/softmax-regression", "broken", manifest=FAST, files={"classifier.py": (
        "import chainer, chainer.links as L\n"
        "class SoftmaxRegression(chainer.Chain):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        with self.init_scope():\n"
        "            self.linear = L.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('student bug')\n")})
    good = make_submission("baselines/softmax-regression", "good", manifest=FAST)
    code, out, _ = harness_cli("grade", broken, good, "--quick", "--db", db, "--json", tmp_path / "r.json")
    assert code == 1
    subs = {s["id"]: s["tracks"]["classify"] for s in read_results(tmp_path / "r.json")["submissions"]}
    assert subs["broken"]["status"] == "CRASH"
    assert "RuntimeError: student bug" in subs["broken"]["message"] and "classifier.py, line 8" in subs["broken"]["message"]
    assert subs["good"]["status"] == "OK"
    with Store(db) as store:
        assert {r.submission_id: r.status for r in store.runs()} == {"broken": "CRASH", "good": "OK"}


def test_invalid_manifest_is_recorded_not_fatal(make_submission, harness_cli, db, tmp_path):
    sub = make_submission("baselines/softmax-regression", "typo", manifest=FAST.replace("epochs", "epoch"))
    code, _, _ = harness_cli("grade", sub, "--quick", "--track", "classify", "--db", db, "--json", tmp_path / "r.json")
    track = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["classify"]
    assert code == 1 and track["status"] == "INVALID_SUBMISSION"
    assert "classify.epoch: unknown key" in track["message"]


def test_budget_clamp_is_reported(make_submission, harness_cli, db, tmp_path):
    sub = make_submission("baselines/softmax-regression", "greedy", manifest=FAST.replace("epochs: 1", "epochs: 500"))
    harness_cli("grade", sub, "--quick", "--db", db, "--json", tmp_path / "r.json")
    track = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["classify"]
    assert track["status"] == "OK"
    assert track["clamped"] == {"epochs": {"asked": 500, "used": 20}}
    assert "clamped" not in track["message"]  # --quick trains one epoch anyway: no clamp notice (issue 11)


def test_names_and_messages_are_shown_as_text_not_markup(make_submission, harness_cli, db, tmp_path):
    # "[/x]" is a closing tag with no opening one: rich would raise if it were parsed as markup
    sub = make_submission("baselines/softmax-regression", "markup",
                          manifest=FAST.replace("name: Floor", "name: \"[/x] [bold]Mallory\"") + "  weights: w.npz\n")
    np.savez(sub / "w.npz", **{"[/y]": np.zeros(1, np.float32)})
    code, out, _ = harness_cli("grade", sub, "--quick", "--db", db)
    assert code == 1
    assert "[/x] [bold]Mallory" in out
    code, out, _ = harness_cli("leaderboard", "--quick", "--db", db)
    assert code == 0


@pytest.mark.parametrize("device, code, message", [
    ("@cupy:0", 3, "CuPy is not installed or sees no GPU"),
    ("gpu", 2, "expected @numpy, @cupy:N"),
])
def test_device_problems_stop_before_grading(make_submission, harness_cli, db, device, code, message):
    from harness.chainer_env import chainer

    if device.startswith("@cupy") and chainer.backends.cuda.available:
        pytest.skip("a GPU is available here")
    sub = make_submission("baselines/softmax-regression", "dev", manifest=FAST)
    result, _, err = harness_cli("grade", sub, "--quick", "--device", device, "--db", db)
    assert result == code and message in " ".join(err.split())
