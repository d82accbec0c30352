"""Anomaly jobs see only their own inputs (issue 10, item 3; SPEC "anomaly").

Two hostile submissions (real files under ``tests/adversarial/attacks/``, copied with the shared
modules beside them by ``conftest.copy_attack``) graded by the real sandbox with ``--quick``, in one
call:

* ``anomaly_lookup`` answers the course protocol by looking each image up among the clean images
  it finds in its input folder. When the course job also received ``test_x`` it scored AUROC
  0.9998 (1.0 on salt, vbar, hbar, gaussian; 0.9988 on patch) without training; now it finds no
  clean copy of any image it scores, and scores chance.
* ``anomaly_spy`` lists every file of each job's input folder in its log: the course job holds the
  training images and the mixed evaluation set only; a one-class job holds its own digit's training
  images and the unlabelled test images only.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_attack, read_results
from harness import sandbox

pytestmark = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Both attacks graded in one call; also every job's input arrays, read on the host as each
    sandbox starts (the sandbox itself runs unchanged)."""
    from harness.cli import main
    from harness.grading import grade

    root = tmp_path_factory.mktemp("anomaly-jobs")
    subs = [str(copy_attack(name, root / "subs" / name)) for name in ("anomaly_lookup", "anomaly_spy")]
    inputs = []
    real = sandbox.run_ingestion

    def spy(argv, *, input_dir, **kwargs):
        job = json.loads((input_dir / "job.json").read_text())
        inputs.append((job, {p.name: np.load(p, allow_pickle=False) for p in input_dir.glob("*.npy")}))
        return real(argv, input_dir=input_dir, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grade.sandbox, "run_ingestion", spy)
        code = main(["grade", *subs, "--track", "anomaly",
                     "--quick", "--db", str(root / "db"), "--json", str(root / "r.json")])
    assert code == 0
    results = {s["id"]: s["tracks"]["anomaly"] for s in read_results(root / "r.json")["submissions"]}
    return results, inputs


def test_a_lookup_attack_scores_chance(graded):
    from harness.competition import load

    r = graded[0]["anomaly_lookup"]
    assert r["status"] == "OK", r["message"]
    m = r["metrics"]
    for kind in load()["anomaly"]["corruptions"]:
        assert m[f"auroc_{kind}"] < 0.6, (kind, m)  # 1.0 (patch 0.9988) when test_x was an input
    assert m["auroc"] < 0.6
    log = Path(r["artifacts"]["log"]).read_text()
    assert "[course] " in log and "[digit 0] " in log  # each model's lines are named


def inputs_per_job(log: str) -> dict[str, dict[str, str]]:
    """``{job: {file name: "dtype shape"}}`` from the spy's log lines ``[job] ... epoch 0: input NAME WHAT=0``."""
    jobs: dict[str, dict[str, str]] = {}
    for line in log.splitlines():
        m = re.fullmatch(r"\[(?P<job>[^\]]+)\] (?:\[[^\]]*\] )*epoch 0: input (?P<name>\S+) (?P<what>.+)=0", line)
        if m:
            jobs.setdefault(m["job"], {})[m["name"]] = m["what"]
    return jobs


def test_each_job_receives_only_its_own_inputs(graded, mnist):
    from harness.competition import load

    comp = load()
    r = graded[0]["anomaly_spy"]
    assert r["status"] == "OK", r["message"]
    seen = inputs_per_job(Path(r["artifacts"]["log"]).read_text())
    digits = comp["quick"]["oneclass_digits"]
    assert set(seen) == {"course"} | {f"digit {d}" for d in digits}, seen
    n_kinds = len(comp["anomaly"]["corruptions"])
    n_train = int(comp["quick"]["train_subset"])
    course = dict(seen["course"])
    assert course.pop("job.json").startswith("file ")
    # the training images (every digit, no labels) and the mixed set: no clean copy of the test set
    assert course == {"train_x.npy": f"uint8 {n_train}x784",
                      "eval_x.npy": f"float32 {10000 * (n_kinds + 1)}x1x28x28"}
    rng = np.random.default_rng(int(comp["split_seed"]))
    idx = np.sort(rng.permutation(len(mnist.train_x))[:n_train])  # the quick profile's subset
    for d in digits:
        job = dict(seen[f"digit {d}"])
        assert job.pop("job.json").startswith("file ")
        n_d = int((mnist.train_y[idx] == d).sum())
        assert job == {"train_x.npy": f"uint8 {n_d}x784", "eval_x.npy": "uint8 10000x784"}, (d, job)


def test_one_class_inputs_are_one_digit_and_unlabelled_test_images(graded, mnist, tmp_path):
    """Read on the host, the arrays themselves: a one-class job's training images are exactly its
    digit's, its test images all 10k in a secret order (different per job and per run)."""
    from harness.competition import load
    from harness.scoring.tracks.context import ScoringContext

    idx = ScoringContext(mnist, load(), True, 0, tmp_path).train_indices()
    orders = []
    for job, files in graded[1]:
        assert set(files) == {"train_x.npy", "eval_x.npy"}
        if job["protocol"] != "oneclass":
            assert job["protocol"] == "course" and "digit" not in job
            continue
        d = job["digit"]
        assert np.array_equal(files["train_x.npy"], mnist.train_x[idx][mnist.train_y[idx] == d])
        test = files["eval_x.npy"]
        assert not np.array_equal(test, mnist.test_x)  # not in the public order, whose labels are known
        rows = lambda a: np.lexsort(a.T[::-1])  # noqa: E731  (rows sorted: the same 10k images)
        assert np.array_equal(test[rows(test)], mnist.test_x[rows(mnist.test_x)])
        orders.append(test[:50].tobytes())
    # two submissions x two digits, each job in its own secret order
    assert len(orders) == 4 and len(set(orders)) == 4


FAILS_ON_ONE_DIGIT = """\
from harness.chainer_env import chainer


class AE(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l = chainer.links.Linear(784, 784)

    def forward(self, x):
        return chainer.functions.reshape(self.l(x), x.shape)


def fit(models, data, settings):
    if len(data) < 5000:  # the course model trains on 10k images, a one-class model on about 1k
        raise RuntimeError("my loop breaks on small data sets")
"""


def test_a_failing_job_fails_the_track_and_is_named(make_submission, harness_cli, db, tmp_path):
    manifest = "name: Breaks on one digit\nanomaly:\n  model: ae.py:AE\n  train: ae.py:fit\n"
    sub = make_submission("baselines/course-autoencoder", "breaks", manifest=manifest,
                          files={"ae.py": FAILS_ON_ONE_DIGIT})
    code, _, _ = harness_cli("grade", sub, "--track", "anomaly", "--quick", "--db", db,
                             "--json", tmp_path / "r.json")
    assert code == 1
    r = read_results(tmp_path / "r.json")["submissions"][0]["tracks"]["anomaly"]
    assert r["status"] == "CRASH" and r["message"].startswith("digit 0: "), r["message"]
    assert "my loop breaks on small data sets" in r["message"] and not r["metrics"]
