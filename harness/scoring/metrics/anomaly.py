"""Anomaly-detection metrics: pure functions over arrays (scoring side; never sees student code).

Convention throughout: label 1 = anomaly (positive), label 0 = normal; a higher score means more
anomalous. Definitions:

- **AUROC**, the area under the ROC curve (true-positive rate against false-positive rate as the
  threshold sweeps the scores), computed by ``sklearn.metrics.roc_auc_score``. It equals the
  probability that a random anomaly scores above a random normal image, ties counting one half:
  the Mann-Whitney U statistic divided by n_pos * n_neg (Hanley & McNeil 1982). 0.5 is chance,
  1.0 perfect, 0.0 perfectly reversed.
- **AUPRC**, the average precision ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score
  thresholds, computed by ``sklearn.metrics.average_precision_score`` (step-wise, no linear
  interpolation; tied scores form one threshold). Chance level is the share of positives.

Two protocols (SPEC, "anomaly"):

- *course*: normal = the clean test images (label 0), anomalies = the same images corrupted
  (label 1), one case per corruption kind: keys ``auroc_<kind>``, ``auprc_<kind>``.
- *one-class* (Ruff et al. 2018, "Deep One-Class Classification", ICML): for a normal digit d the
  model trained on digit d alone scores the whole test set; test images of d are label 0, the other
  nine digits label 1: keys ``auroc_digit<d>`` and their mean ``auroc_oneclass_mean``.

``anomaly_summary`` adds ``auroc``, the mean over every case (each corruption kind and each digit),
by which the track is ranked.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ONECLASS_MEAN = "auroc_oneclass_mean"
_CASE_KEY = re.compile(r"^auroc_(?P<case>.+)$")


def _scores(x, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as float64 (N,), finite; ValueError naming ``name`` otherwise."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, found shape {a.shape}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name}: expected real numbers, found dtype {a.dtype}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} scores, found {a.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: is empty")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: {int(bad.sum())} non-finite value(s), the first at index {i} ({a[i]})")
    return a


def _binary_labels(labels, name: str = "labels") -> np.ndarray:
    """``labels`` as int8 (N,) of 0 (normal) and 1 (anomaly), both present."""
    a = np.asarray(labels)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of 0/1 labels, found shape {a.shape}")
    if not (a.dtype == bool or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name}: expected 0/1 labels, found dtype {a.dtype}")
    values = np.unique(a)
    if not np.isin(values, [0, 1]).all():
        raise ValueError(f"{name}: expected only 0 (normal) and 1 (anomaly), found {values[:10].tolist()}")
    if values.size < 2:
        raise ValueError(f"{name}: needs both normal (0) and anomalous (1) examples, found only {values.tolist()}")
    return a.astype(np.int8)


def _pair(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _binary_labels(labels)
    return y, _scores(scores, "scores", n=y.shape[0])


def auroc(labels, scores) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for 0/1 ``labels``.

    ``sklearn.metrics.roc_auc_score``; equal to P(score of an anomaly > score of a normal image)
    + 0.5 P(tie), the normalised Mann-Whitney U.
    """
    y, s = _pair(labels, scores)
    return float(roc_auc_score(y, s))


def auprc(labels, scores) -> float:
    """Area under the precision-recall curve as average precision (``average_precision_score``).

    AP = sum_n (R_n - R_{n-1}) P_n over descending distinct thresholds, positives = label 1.
    """
    y, s = _pair(labels, scores)
    return float(average_precision_score(y, s))


def roc_curve_points(labels, scores, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve as ``{"fpr": [...], "tpr": [...]}``, at most ``max_points`` points, for plots.

    From ``sklearn.metrics.roc_curve`` (collinear points dropped); longer curves are thinned to
    evenly spaced indices, always keeping the first (0, 0) and last (1, 1) points.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 2:
        raise ValueError(f"max_points: expected an integer >= 2, found {max_points!r}")
    y, s = _pair(labels, scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
    if fpr.size > max_points:
        keep = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def course_cases(clean_scores, corrupted_scores: Mapping[str, object]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The course protocol's cases: per kind, (labels, scores) of the N clean images (label 0) followed
    by their N corrupted copies (label 1), each (2N,). The one place the labels of a case are built:
    the metrics and the ROC curves both read them."""
    if not isinstance(corrupted_scores, Mapping) or not corrupted_scores:
        raise ValueError("corrupted_scores: expected a non-empty mapping {kind: scores (N,)}")
    clean = _scores(clean_scores, "clean_scores")
    n = clean.shape[0]
    labels = np.concatenate([np.zeros(n, np.int8), np.ones(n, np.int8)])
    cases = {}
    for kind, scores in corrupted_scores.items():
        if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", kind) or kind == "oneclass_mean" \
                or re.fullmatch(r"digit\d+", kind):
            raise ValueError(f"corrupted_scores: {kind!r} is not a usable corruption name")
        cases[kind] = (labels, np.concatenate([clean, _scores(scores, f"corrupted_scores[{kind!r}]", n=n)]))
    return cases


def course_protocol_metrics(clean_scores, corrupted_scores: Mapping[str, object]) -> dict[str, float]:
    """The course protocol: per kind, clean images (label 0) against their corrupted copies (label 1).

    ``clean_scores`` (N,) and each ``corrupted_scores[kind]`` (N,) score the same N test images.
    Returns ``{"auroc_<kind>": .., "auprc_<kind>": ..}`` for every kind, in the mapping's order.
    """
    out: dict[str, float] = {}
    for kind, (labels, both) in course_cases(clean_scores, corrupted_scores).items():
        out[f"auroc_{kind}"] = float(roc_auc_score(labels, both))
        out[f"auprc_{kind}"] = float(average_precision_score(labels, both))
    return out


def oneclass_cases(scores_by_digit: Mapping[int, object], test_labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The one-class protocol's cases: ``digit<d>`` -> (labels: 0 for digit d, 1 for the other nine;
    the scores of the model trained on d), each (N,), in ascending digit order."""
    if not isinstance(scores_by_digit, Mapping) or not scores_by_digit:
        raise ValueError("scores_by_digit: expected a non-empty mapping {digit: scores (N,)}")
    digits = np.asarray(test_labels)
    if digits.ndim != 1 or digits.shape[0] == 0 or not np.issubdtype(digits.dtype, np.integer):
        raise ValueError(f"test_labels: expected a 1-D integer array of digits, found {digits.dtype} {digits.shape}")
    if digits.min() < 0 or digits.max() > 9:
        raise ValueError(f"test_labels: digits must lie in 0..9, found {int(digits.min())}..{int(digits.max())}")
    n = digits.shape[0]
    for d in scores_by_digit:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 9:
            raise ValueError(f"scores_by_digit: key {d!r} is not a digit 0..9")
    cases = {}
    for d in sorted(scores_by_digit):
        s = _scores(scores_by_digit[d], f"scores_by_digit[{int(d)}]", n=n)
        y = (digits != d).astype(np.int8)
        if y.all() or not y.any():
            raise ValueError(f"test_labels: auroc_digit{int(d)} needs test images of digit {int(d)} "
                             f"and of other digits")
        cases[f"digit{int(d)}"] = (y, s)
    return cases


def oneclass_metrics(scores_by_digit: Mapping[int, object], test_labels) -> dict[str, float]:
    """The one-class protocol (Ruff et al. 2018): digit d normal (label 0), the other nine label 1.

    ``scores_by_digit[d]`` (N,) scores all N test images with the model trained on digit d;
    ``test_labels`` (N,) are the test digits 0..9. Returns ``auroc_digit<d>`` per digit, in
    ascending digit order, and ``auroc_oneclass_mean``, their mean.
    """
    out: dict[str, float] = {}
    for case, (y, s) in oneclass_cases(scores_by_digit, test_labels).items():
        out[f"auroc_{case}"] = float(roc_auc_score(y, s))
    out[ONECLASS_MEAN] = float(np.mean(list(out.values())))
    return out


def case_aurocs(metrics: Mapping[str, float]) -> dict[str, float]:
    """The per-case AUROCs in ``metrics``: every ``auroc_<kind>`` and ``auroc_digit<d>``.

    Excludes the aggregates ``auroc`` and ``auroc_oneclass_mean``.
    """
    return {k: v for k, v in metrics.items() if _CASE_KEY.match(k) and k != ONECLASS_MEAN}


def anomaly_summary(metrics: Mapping[str, float]) -> dict[str, float]:
    """A copy of ``metrics`` with ``auroc`` = the mean AUROC over every case (the ranking key).

    The cases are each corruption kind (``auroc_<kind>``) and each one-class digit
    (``auroc_digit<d>``), equally weighted; ``auroc_oneclass_mean`` is not a case.
    """
    cases = case_aurocs(metrics)
    if not cases:
        raise ValueError("metrics: no auroc_<kind> or auroc_digit<d> values to average")
    for k, v in cases.items():
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
            raise ValueError(f"metrics: {k} = {v!r} is not a finite number")
    out = dict(metrics)
    out["auroc"] = float(np.mean([float(v) for v in cases.values()]))
    return out
