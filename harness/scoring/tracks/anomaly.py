"""Anomaly track, scoring side: one ingestion job per protocol and per one-class digit, each given
only its own inputs (see ``jobs``); scores back, AUROC/AUPRC here."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np

from harness import data
from harness.scoring import corruptions
from harness.scoring.anomaly_baselines import reference_rows as compute
from harness.scoring.metrics.anomaly import (anomaly_summary, course_cases, course_protocol_metrics, oneclass_cases,
                                             oneclass_metrics, roc_curve_points)
from harness.scoring.outputs import count_npz_params, read_array
from harness.scoring.tracks.context import IngestionJob, ScoringContext, save_inputs
from harness.store.artifacts import write_json



def settings(ctx: ScoringContext) -> dict:
    cfg = ctx.competition["anomaly"]
    digits = ctx.competition["quick"]["oneclass_digits"] if ctx.quick else cfg["oneclass_digits"]
    return {"corruptions": list(cfg["corruptions"]), "oneclass_digits": [int(d) for d in digits],
            "protocols": list(cfg.get("protocols", ["course", "oneclass"]))}


def secret_permutation(n: int) -> np.ndarray:
    """A fresh permutation per run from the OS's randomness: the order of what a job scores reveals
    nothing, even to someone who knows the competition's seed. Scores are mapped back before any
    metric, so metrics stay reproducible."""
    return np.random.default_rng(secrets.randbits(128)).permutation(n)


def jobs(ctx: ScoringContext) -> list[IngestionJob]:
    """One ingestion job per protocol and per one-class digit, each given only its own inputs.

    - ``course``: ``train_x`` (the profile's training images, every digit, no labels) and ``eval_x``
      (the clean test images and their corrupted copies, float32 (M, 1, 28, 28), shuffled); never
      the clean test images on their own, so no image of ``eval_x`` can be looked up.
    - ``digit<d>``: ``train_x`` (the profile's training images of digit d only) and ``eval_x`` (all
      test images, uint8 (10000, 784), under a per-run secret permutation; no digit is named).

    Under ``--quick`` the training-time budget (``quick.max_train_seconds``) is split evenly across
    the jobs' models, so a quick grade takes about as long as one model trained for that budget.
    """
    s = settings(ctx)
    m = ctx.mnist
    idx = ctx.train_indices()
    digits = s["oneclass_digits"] if "oneclass" in s["protocols"] else []
    n_models = ("course" in s["protocols"]) + len(digits)
    budget = {}
    if ctx.quick:
        quick = ctx.competition["quick"]["max_train_seconds"]  # a number, or one per track
        budget["max_train_seconds"] = float(quick["anomaly"] if isinstance(quick, dict) else quick) / max(1, n_models)
    out = []
    if "course" in s["protocols"]:
        def write_course(input_dir: Path) -> None:
            course = corruptions.build_course_set(data.to_images(m.test_x),
                                                  s["corruptions"], ctx.seed)
            order = secret_permutation(len(course.images))
            ctx.extra["course"], ctx.extra["secret_order"] = course, order
            save_inputs(input_dir, train_x=m.train_x[idx], eval_x=course.images[order])

        out.append(IngestionJob("course", write_course, {"protocol": "course", **budget}, "course"))
    for d in digits:
        def write_digit(input_dir: Path, d: int = d) -> None:
            order = secret_permutation(len(m.test_x))
            ctx.extra[f"order_digit{d}"] = order
            save_inputs(input_dir, train_x=m.train_x[idx][m.train_y[idx] == d], eval_x=m.test_x[order])

        out.append(IngestionJob(f"digit{d}", write_digit, {"protocol": "oneclass", "digit": d, **budget},
                                f"digit {d}"))
    return out


def score(ctx: ScoringContext, outputs: dict[str, Path], metas: dict[str, dict]) -> tuple[dict, dict]:
    """Every job's scores, mapped back from its secret order, scored together: the same metric keys
    as one job would give (``auroc_<kind>``, ``auprc_<kind>``, ``auroc_digit<d>``, ``auroc_oneclass_mean``,
    ``auroc``); ``params`` of the first job's model, ``train_seconds`` summed over the jobs."""
    s = settings(ctx)
    metrics: dict = {}
    cases: dict = {}  # case -> (0/1 labels, scores), for the ROC curves
    if "course" in outputs:
        course, secret = ctx.extra["course"], ctx.extra["secret_order"]
        shuffled = read_array(outputs["course"], "scores_course.npy", (len(secret),))
        scores = np.empty_like(shuffled)
        scores[secret] = shuffled
        clean, corrupted = course.split(scores)
        metrics.update(course_protocol_metrics(clean, corrupted))
        cases.update(course_cases(clean, corrupted))
    by_digit = {}
    n = len(ctx.mnist.test_x)
    for d in s["oneclass_digits"]:
        if f"digit{d}" in outputs:
            order = ctx.extra[f"order_digit{d}"]
            shuffled = read_array(outputs[f"digit{d}"], f"scores_digit{d}.npy", (n,))
            by_digit[d] = np.empty_like(shuffled)
            by_digit[d][order] = shuffled
    if by_digit:
        metrics.update(oneclass_metrics(by_digit, ctx.mnist.test_y))
        cases.update(oneclass_cases(by_digit, ctx.mnist.test_y))
    metrics = anomaly_summary(metrics)
    metrics["params"] = count_npz_params(next(iter(outputs.values())), "model.npz")
    metrics["train_seconds"] = float(sum(float(meta.get("train_seconds", 0.0)) for meta in metas.values()))
    return metrics, roc_artifact(ctx, cases, metrics)


def roc_artifact(ctx: ScoringContext, cases: dict, metrics: dict, max_points: int = 100) -> dict:
    """Each case's ROC curve (at most ``max_points`` points, 4 decimals) kept as ``roc_curves`` (JSON):
    ``{"cases": {case: {"fpr": [...], "tpr": [...], "auroc": ...}}}``, drawn by the HTML exports."""

    if not cases:
        return {}
    out = {}
    for case, (labels, scores) in cases.items():
        pts = roc_curve_points(labels, scores, max_points=max_points)
        out[case] = {"fpr": [round(v, 4) for v in pts["fpr"]], "tpr": [round(v, 4) for v in pts["tpr"]],
                     "auroc": metrics.get(f"auroc_{case}")}
    return {"roc_curves": write_json(ctx.artifacts_dir, "roc_curves.json", {"cases": out})}


def reference_rows(ctx: ScoringContext) -> dict:
    """PCA reconstruction (scikit-learn) and random scores, under this competition's protocol, the PCA
    fit on the training images this profile gives students (10k under --quick, 60k in full)."""
    s = settings(ctx)
    cfg = {"corruptions": s["corruptions"] if "course" in s["protocols"] else [],
           "oneclass_digits": s["oneclass_digits"] if "oneclass" in s["protocols"] else [], "seed": ctx.seed}
    rows = compute(cfg, mnist=ctx.mnist, train_indices=ctx.train_indices())
    return {"reference-pca": ("Reference: PCA reconstruction (32 components)", rows["pca"], {}),
            "reference-random": ("Reference: random scores (chance)", rows["random"], {})}
