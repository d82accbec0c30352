import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss

from harness.competition import load as load_competition
from harness.scoring.metrics.classify import accuracy, classification_metrics, confusion_matrix, mean_cross_entropy


def test_accuracy_hand_example():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [0.2, 0.1]])
    assert accuracy(np.array([0, 1, 1, 0]), logits) == 0.75


def test_cross_entropy_analytic_uniform():
    # equal logits: cross-entropy is ln C exactly
    assert mean_cross_entropy(np.array([0, 3, 9]), np.zeros((3, 10))) == pytest.approx(np.log(10), abs=1e-12)


def test_against_scikit_learn():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(500, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 500)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert accuracy(labels, logits) == pytest.approx(accuracy_score(labels, logits.argmax(1)))
    assert mean_cross_entropy(labels, logits) == pytest.approx(log_loss(labels, p, labels=range(10)), rel=1e-6)


def test_huge_logits_stay_finite():
    logits = np.array([[1e30, -1e30], [-1e30, 1e30]])
    assert mean_cross_entropy(np.array([0, 0]), logits) == pytest.approx(1e30)


def test_validation_names_the_input():
    with pytest.raises(ValueError, match="logits"):
        accuracy(np.zeros(3, int), np.zeros((3,)))
    with pytest.raises(ValueError, match="labels"):
        accuracy(np.zeros(4, int), np.zeros((3, 10)))
    with pytest.raises(ValueError, match="NaN"):
        mean_cross_entropy(np.zeros(1, int), np.array([[np.nan, 0.0]]))


def test_confusion_matrix_counts():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.eye(3)[[0, 1, 2, 2]], n_classes=3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_public_private_halves_fixed_and_disjoint():
    comp = load_competition()
    a, b = comp.public_mask(), comp.public_mask()
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 5000


def test_gaps_and_halves():
    rng = np.random.default_rng(1)
    test_labels = rng.integers(0, 10, 100)
    test_logits = np.eye(10)[test_labels]
    test_logits[:10] = np.eye(10)[(test_labels[:10] + 1) % 10]  # first ten wrong
    mask = np.zeros(100, bool)
    mask[:50] = True
    m = classification_metrics(test_labels, np.eye(10)[test_labels], test_labels, test_logits, mask)
    assert m["test_accuracy"] == 0.9 and m["test_accuracy_public"] == 0.8 and m["test_accuracy_private"] == 1.0
    assert m["train_accuracy"] == 1.0 and m["accuracy_gap"] == pytest.approx(0.1)
    assert m["loss_gap"] == pytest.approx(m["test_loss"] - m["train_loss"])
    # the public-half twins students see: nothing from the private half, losses to 4 significant digits
    assert m["accuracy_gap_public"] == pytest.approx(0.2)
    public = mean_cross_entropy(test_labels[:50], test_logits[:50])
    assert m["test_loss_public"] == float(f"{public:.4g}") != public
    assert m["loss_gap_public"] == pytest.approx(m["test_loss_public"] - float(f"{m['train_loss']:.4g}"), abs=1e-12)
