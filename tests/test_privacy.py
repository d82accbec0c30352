"""Nothing private before the reveal (issue 10 item 5; SPEC: "What students see before the reveal").

Real MNIST test labels, the competition's real public/private split, the real metric code and the
real results JSON: the student-visible figures must not depend on a single private label, and a
crafted-logits attack that decodes 10 test labels from the whole-test loss must fail through them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import logsumexp

from harness import competition
from harness.cli.ci import visible_results
from harness.grading.grade import SubmissionResult, results_json
from harness.store import Run
from harness.scoring.metrics.classify import classification_metrics
from harness.standings.per_track import columns
from harness.standings.visibility import round_sig, visible_metrics

PUBLIC_KEYS = {"test_accuracy_public", "accuracy_gap_public", "test_loss_public", "loss_gap_public",
               "train_accuracy", "train_loss", "params", "train_seconds"}


@pytest.fixture(scope="module")
def split(mnist):
    comp = competition.load()
    y = mnist.test_y.astype(np.int64)
    return y, comp.public_mask(len(y)), mnist.train_y[:2000].astype(np.int64)


def student_json(metrics: dict, revealed=False, private=False) -> dict:
    """The metrics exactly as `harness grade --json` writes them for this audience."""
    res = [SubmissionResult("s", "S", "p", "0" * 64, {"classify": Run.outcome("OK", metrics=dict(metrics))})]
    doc = json.loads(json.dumps(results_json(visible_results(res, revealed, private))))
    return doc["submissions"][0]["tracks"]["classify"]["metrics"]


def noisy_logits(y, rng, accuracy=0.9):
    z = rng.normal(0, 1, (len(y), 10)).astype(np.float32)
    right = rng.random(len(y)) < accuracy
    z[np.arange(len(y))[right], y[right]] += 4
    return z


def test_the_old_leak_and_the_public_twins(split):
    y, pub, train_y = split
    rng = np.random.default_rng(0)
    m = classification_metrics(train_y, noisy_logits(train_y, rng), y, noisy_logits(y, rng), pub)
    # before: accuracy_gap over all 10k gave the private half away exactly
    assert 2 * (m["train_accuracy"] - m["accuracy_gap"]) - m["test_accuracy_public"] == \
        pytest.approx(m["test_accuracy_private"], abs=1e-12)
    assert m["accuracy_gap_public"] == pytest.approx(m["train_accuracy"] - m["test_accuracy_public"])
    assert m["test_loss_public"] == round_sig(m["test_loss_public"])  # 4 significant digits
    assert m["loss_gap_public"] == pytest.approx(m["test_loss_public"] - round_sig(m["train_loss"]), abs=1e-12)


def test_audiences(split):
    y, pub, train_y = split
    rng = np.random.default_rng(1)
    m = classification_metrics(train_y, noisy_logits(train_y, rng), y, noisy_logits(y, rng), pub)
    m.update(params=7850, train_seconds=1.5)
    student = student_json(m)
    assert set(student) == PUBLIC_KEYS
    assert all(v == round_sig(v) for k, v in student.items() if "loss" in k)
    after = student_json(m, revealed=True)
    assert set(after) == set(m) and after["test_loss"] == round_sig(m["test_loss"])
    assert student_json(m, private=True) == m  # the instructor: everything, unrounded
    assert visible_metrics("generate", {"fcd": 1.23456789}) == {"fcd": 1.23456789}  # no private half there
    keys = [k for k, _, _ in columns("classify", private=False)]
    assert set(keys) <= PUBLIC_KEYS and "test_accuracy_public" in keys
    # a run stored before the public twins existed leaks nothing (an allow-list, not a deny-list)
    old = {k: v for k, v in m.items() if not k.endswith("_public") or k == "test_accuracy_public"}
    assert set(student_json(old)) == PUBLIC_KEYS - {"accuracy_gap_public", "test_loss_public", "loss_gap_public"}


def test_student_figures_do_not_depend_on_any_private_label(split):
    """Relabel the private half at random: every byte students can read stays the same."""
    y, pub, train_y = split
    rng = np.random.default_rng(2)
    train_z, test_z = noisy_logits(train_y, rng), noisy_logits(y, rng)
    first = json.dumps(student_json(classification_metrics(train_y, train_z, y, test_z, pub)), sort_keys=True)
    for _ in range(3):
        other = y.copy()
        other[~pub] = rng.integers(0, 10, int((~pub).sum()))
        m = classification_metrics(train_y, train_z, other, test_z, pub)
        assert json.dumps(student_json(m), sort_keys=True) == first
        assert m["test_accuracy_private"] != classification_metrics(train_y, train_z, y, test_z, pub)["test_accuracy_private"]


# ----------------------------------------------------------------- the label-decoding attack

def craft(n, targets, base=16.0, delta=1e-9):
    """Uniform logits everywhere (a known loss of ln 10 per image) except at the targets, whose logits
    c * base**k * delta make the k-th target's loss a distinct function of its label: the labels are
    written into the digits of the mean loss."""
    z = np.zeros((n, 10), np.float32)
    for k, i in enumerate(targets):
        z[i] = (np.arange(10) * base ** k * delta).astype(np.float32)
    return z


def decode(mean_loss, z, targets, n):
    """The attacker's decoder: peel the targets' losses off the mean, most significant first."""
    z64 = z.astype(np.float64)
    rest = mean_loss * n - (n - len(targets)) * np.log(10.0)
    labels = []
    for k in reversed(range(len(targets))):
        f = logsumexp(z64[targets[k]]) - z64[targets[k]]
        lower = sum(logsumexp(z64[t]) - z64[t].mean() for t in targets[:k])
        labels.append(int(np.argmin(np.abs(rest - lower - f))))
        rest -= f[labels[-1]]
    return labels[::-1]


def test_decoding_attack_recovers_nothing_private(split):
    y, pub, train_y = split
    rng = np.random.default_rng(3)
    train_z = np.zeros((len(train_y), 10), np.float32)
    # the attack is real: from the whole-test float64 loss (the instructor's store) it reads all 10 labels
    targets = list(rng.choice(len(y), 10, replace=False))
    z = craft(len(y), targets)
    m = classification_metrics(train_y, train_z, y, z, pub)
    assert decode(m["test_loss"], z, targets, len(y)) == [int(y[t]) for t in targets]
    assert "test_loss" not in student_json(m)

    # aimed at the private half, through what students read: exactly chance (the JSON is the same
    # whatever those labels are, so any decoder's guess is a constant)
    private_idx = np.flatnonzero(~pub)
    hits = 0
    for trial in range(20):
        t = list(rng.choice(private_idx, 10, replace=False))
        z = craft(len(y), t)
        truth = y.copy()
        truth[t] = rng.integers(0, 10, 10)
        seen = student_json(classification_metrics(train_y, train_z, truth, z, pub))
        assert seen == student_json(classification_metrics(train_y, train_z, y, z, pub))
        guess = decode(seen["test_loss_public"], z[pub], [0] * 10, int(pub.sum()))  # no private row in it
        hits += sum(int(g == truth[i]) for g, i in zip(guess, t))
    assert hits / 200 < 0.2  # chance is 0.1

    # aimed at the public half: 4 significant digits carry at most ~13 bits, so of the 10 labels
    # written into the loss only the leading few survive (the public accuracy itself is as informative)
    public_idx = np.flatnonzero(pub)
    recovered = []
    for trial in range(10):
        t = list(rng.choice(public_idx, 10, replace=False))
        z = craft(len(y), t)
        seen = student_json(classification_metrics(train_y, train_z, y, z, pub))
        guess = decode(seen["test_loss_public"], z[pub], list(np.searchsorted(public_idx, t)), len(public_idx))
        recovered.append(sum(int(g == y[i]) for g, i in zip(guess, t)))
    assert max(recovered) <= 6 and np.mean(recovered) < 4, recovered
