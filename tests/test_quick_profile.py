"""The --quick profile and the CPU convolution switch, through the real CLI, sandbox and store.

- grading records which CPU convolution ran (harness-fast-conv by default, chainer with
  --stock-chainer or ``cpu_convolution: stock``), and both give the same metrics within rounding;
- --quick measures train accuracy on a fixed seeded subset and says so (train_accuracy_subset);
- (slow) a quick grade of the course DCGAN shows that it learns: classes_covered >= 5.
"""

import json
import os
import re

import numpy as np
import pytest

from conftest import ROOT, read_results
from harness import competition as competition_mod
from harness.grading.grade import cpu_convolution, quick_train_seconds, training_settings
from harness.manifest import load as load_manifest
from harness.scoring.tracks.classify import train_eval_positions
from harness.scoring.tracks.context import ScoringContext
from harness.store import Store

SMALL_CNN = '''
import chainer
import chainer.functions as F
import chainer.links as L


class SmallCNN(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.c1 = L.Convolution2D(1, 8, 3, pad=1)
            self.c2 = L.Convolution2D(8, 16, 3, stride=2, pad=1)
            self.out = L.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pooling_2d(F.relu(self.c1(x)), 2)
        return self.out(F.relu(self.c2(h)))
'''
MANIFEST = ("name: Small CNN\nclassify:\n  model: cnn.py:SmallCNN\n  epochs: 1\n  batch_size: 50\n"
            "  optimizer: Adam\n  optimizer_args: {alpha: 0.002}\n")
# Small enough for seconds, and a training budget no run reaches: both convolutions train every batch.
CONFIG = "quick:\n  train_subset: 1500\n  train_eval_subset: 400\n  max_train_seconds: 600\n"


def grade(harness_cli, sub, db, out, *flags):
    code, _, err = harness_cli("grade", sub, "--quick", "--db", db, "--json", out, "--private", *flags)
    track = read_results(out)["submissions"][0]["tracks"]["classify"]
    assert code == 0 and track["status"] == "OK", (track["message"], err[-2000:])
    return track


def test_convolution_is_recorded_and_both_agree(make_submission, harness_cli, db, tmp_path):
    sub = make_submission("baselines/softmax-regression", "small-cnn", files={"cnn.py": SMALL_CNN}, manifest=MANIFEST)
    config = tmp_path / "competition.yaml"
    config.write_text(CONFIG)
    fast = grade(harness_cli, sub, db, tmp_path / "fast.json", "--config", config)
    stock = grade(harness_cli, sub, db, tmp_path / "stock.json", "--config", config, "--stock-chainer")

    assert fast["convolution"] == "harness-fast-conv" and stock["convolution"] == "chainer"
    with Store(db) as store:
        runs = store.runs(track="classify")
    assert sorted(r.versions.get("convolution") for r in runs) == ["chainer", "harness-fast-conv"]

    # the same training, sums added in another order: equal to rounding, not bit for bit
    f, s = fast["metrics"], stock["metrics"]
    for key in ("test_accuracy", "test_accuracy_public", "train_accuracy"):
        assert abs(f[key] - s[key]) <= 0.003, (key, f[key], s[key])
    for key in ("test_loss", "train_loss"):
        assert f[key] == pytest.approx(s[key], rel=2e-3), (key, f[key], s[key])
    assert f["params"] == s["params"] == 8 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 7 * 7 * 10 + 10

    # --quick: train accuracy from a fixed seeded 400 of the 1,500 training images, and said so
    assert f["train_accuracy_subset"] == s["train_accuracy_subset"] == 400
    with open(fast["artifacts"]["log"]) as f:
        assert "train accuracy and loss measured on 400 of the 1,500 training images" in f.read()


def test_the_config_key_and_its_errors(tmp_path):
    comp = competition_mod.load()
    assert cpu_convolution(comp) == "fast"
    spec = load_manifest(ROOT / "baselines" / "course-cnn").tracks["classify"]
    settings, _ = training_settings(spec, comp, quick=True)
    assert settings["cpu_convolution"] == "fast" and settings["max_train_seconds"] == 25
    gan = load_manifest(ROOT / "baselines" / "course-dcgan").tracks["generate"]
    assert training_settings(gan, comp, quick=True)[0]["max_train_seconds"] == quick_train_seconds(comp, "generate") == 40

    (tmp_path / "stock.yaml").write_text("cpu_convolution: stock\nquick:\n  max_train_seconds: 7\n")
    stock = competition_mod.load(tmp_path / "stock.yaml")
    assert training_settings(spec, stock, quick=True)[0]["cpu_convolution"] == "stock"
    assert quick_train_seconds(stock, "generate") == 7  # one number: every track
    assert quick_train_seconds(comp, "toy") == 25  # a track folder's track: the default entry
    with pytest.raises(ValueError, match=r"max_train_seconds has no entry for the 'toy' track and no default"):
        quick_train_seconds(competition_mod.Competition(tmp_path, {"quick": {"max_train_seconds": {"classify": 9}}}), "toy")

    (tmp_path / "bad.yaml").write_text("cpu_convolution: faster\n")
    with pytest.raises(ValueError, match=r"bad.yaml: cpu_convolution is 'faster', expected one of: fast, stock"):
        training_settings(spec, competition_mod.load(tmp_path / "bad.yaml"), quick=False)


def test_train_eval_subset_is_fixed_and_only_quick(mnist):
    comp = competition_mod.load()
    quick = ScoringContext(mnist, comp, True, 0, ROOT)
    a, b = train_eval_positions(quick), train_eval_positions(quick)
    assert len(a) == int(comp["quick"]["train_eval_subset"]) == 2000
    assert np.array_equal(a, b) and len(np.unique(a)) == len(a) and a.max() < len(quick.train_indices())
    # spread over the digits like the training set (a fixed seeded draw, not the first images)
    labels = mnist.train_y[quick.train_indices()[a]]
    assert np.bincount(labels, minlength=10).min() > 150
    assert train_eval_positions(ScoringContext(mnist, comp, False, 0, ROOT)) is None


DCGAN_BATCHES_TO_LEARN = 150  # docs/speed.md: 4 classes after 80-100 batches, 8 after 130, 6-7 at 160-200; a CI run: 3 after 117


# Opt-in: the quick budget is wall-clock, so how many batches run depends on the machine, and a
# 1-epoch DCGAN's class coverage is not monotonic in them (measured 7, 5, 5 and 8 classes, but also 3
# after 117 and 3 after 165 batches). `python bench/bench_quick_profile.py` reports it per run.
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HARNESS_SLOW_TESTS") != "1",
                    reason="wall-clock dependent (about a minute): set HARNESS_SLOW_TESTS=1 to run it")
def test_quick_course_dcgan_shows_it_learns(harness_cli, db, tmp_path):
    """About a minute on an idle 2-core machine; on a loaded one the 40 s budget runs fewer batches."""
    code, _, err = harness_cli("grade", ROOT / "baselines" / "course-dcgan", "--quick", "--db", db,
                               "--json", tmp_path / "r.json")
    track = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["generate"]
    assert code == 0 and track["status"] == "OK", track["message"]
    log = open(track["artifacts"]["log"]).read()
    assert track["convolution"] == "harness-fast-conv"
    ran = re.search(r"mean over (\d+) of (\d+) batches", log)
    if ran and int(ran.group(1)) < DCGAN_BATCHES_TO_LEARN:
        # The budget is wall-clock: on a machine busy with other work fewer batches fit. The log says
        # how many ran; below what the DCGAN needs (measured: 130-150) the claim cannot be tested here.
        pytest.skip(f"only {ran.group(1)} of {ran.group(2)} batches ran in the quick budget (machine busy)")
    assert track["metrics"]["classes_covered"] >= 5, (json.dumps(track["metrics"]), log)
