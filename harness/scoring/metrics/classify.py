"""Classification metrics over logits; pure functions, float64 internally."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _check(labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, C), found {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels: expected shape ({logits.shape[0]},), found {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels: expected values in 0..{logits.shape[1] - 1}")
    if not np.isfinite(logits).all():
        raise ValueError("logits: holds NaN or infinite values")
    return labels.astype(np.int64), logits


def accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Share of rows whose arg-max logit is the label. labels (N,), logits (N, C).

    Ties go to the lowest class index (numpy's argmax), as in ``chainer.functions.accuracy``.
    """
    labels, logits = _check(labels, logits)
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def mean_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean softmax cross-entropy in nats: mean_i(logsumexp(z_i) - z_i[y_i]). labels (N,), logits (N, C)."""
    labels, logits = _check(labels, logits)
    if not len(labels):
        return float("nan")
    return float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]))


def confusion_matrix(labels: np.ndarray, logits: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """(n_classes, n_classes) counts: rows true class, columns predicted class."""
    labels, logits = _check(labels, logits)
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (labels, np.argmax(logits, axis=1)), 1)
    return out


def round_sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (the precision students see a loss at)."""
    return float(f"{value:.{digits}g}") if np.isfinite(value) and value != 0 else value


def classification_metrics(train_labels, train_logits, test_labels, test_logits, public_mask) -> dict:
    """Every classify metric of the spec except ``params`` and ``train_seconds``.

    public_mask: bool (N_test,), True for the public half of the test set.

    Whole-test and private figures (``test_accuracy``, ``test_accuracy_private``, ``accuracy_gap``,
    ``test_loss``, ``loss_gap``) are for instructors. Students see the public-half twins, computed
    here from the public half only, so that no student-visible figure depends on a private label:
    ``accuracy_gap_public`` = train_accuracy - test_accuracy_public, ``test_loss_public`` (rounded to
    4 significant digits: full-precision losses let crafted logits encode labels in their digits) and
    ``loss_gap_public``, the difference of the two rounded losses, so it adds no digit either.
    """
    public_mask = np.asarray(public_mask, dtype=bool)
    test_labels = np.asarray(test_labels)
    test_logits = np.asarray(test_logits)
    m = {
        "test_accuracy": accuracy(test_labels, test_logits),
        "test_accuracy_public": accuracy(test_labels[public_mask], test_logits[public_mask]),
        "test_accuracy_private": accuracy(test_labels[~public_mask], test_logits[~public_mask]),
        "train_accuracy": accuracy(train_labels, train_logits),
        "train_loss": mean_cross_entropy(train_labels, train_logits),
        "test_loss": mean_cross_entropy(test_labels, test_logits),
    }
    m["accuracy_gap"] = m["train_accuracy"] - m["test_accuracy"]
    m["loss_gap"] = m["test_loss"] - m["train_loss"]
    m["accuracy_gap_public"] = m["train_accuracy"] - m["test_accuracy_public"]
    m["test_loss_public"] = round_sig(mean_cross_entropy(test_labels[public_mask], test_logits[public_mask]))
    m["loss_gap_public"] = round_sig(m["test_loss_public"] - round_sig(m["train_loss"]))
    return m
