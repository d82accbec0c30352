"""Anomaly track, scoring side: corrupted and clean test images mixed, scores back, AUROC/AUPRC here."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np

from harness.scoring import corruptions
from harness.scoring.metrics.anomaly import anomaly_summary, course_protocol_metrics, oneclass_metrics
from harness.scoring.outputs import count_npz_params, read_array
from harness.scoring.tracks.context import ScoringContext, save_inputs
from harness.store.artifacts import write_json
from harness.scoring.metrics.anomaly import roc_curve_points
from harness.scoring.anomaly_baselines import reference_rows as compute



def settings(ctx: ScoringContext) -> dict:
    cfg = ctx.competition["anomaly"]
    digits = ctx.competition["quick"]["oneclass_digits"] if ctx.quick else cfg["oneclass_digits"]
    return {"corruptions": list(cfg["corruptions"]), "oneclass_digits": [int(d) for d in digits],
            "protocols": list(cfg.get("protocols", ["course", "oneclass"]))}


def write_inputs(ctx: ScoringContext, input_dir: Path) -> dict:
    s = settings(ctx)
    m = ctx.mnist
    arrays = {}
    if "course" in s["protocols"]:
        course = corruptions.build_course_set(m.test_x.reshape(-1, 1, 28, 28).astype(np.float32) / 255,
                                              s["corruptions"], ctx.seed)
        # A fresh secret shuffle on top of the seeded one: the order reveals nothing even to someone
        # who knows the competition's seed. Scores do not depend on order, so metrics stay reproducible.
        secret = np.random.default_rng(secrets.randbits(128)).permutation(len(course.images))
        ctx.extra["course"], ctx.extra["secret_order"] = course, secret
        arrays["eval_x"] = course.images[secret]
        arrays["train_x"] = m.train_x[ctx.train_indices()]
    digits = s["oneclass_digits"] if "oneclass" in s["protocols"] else []
    idx = ctx.train_indices()
    for d in digits:
        arrays[f"train_x_digit{d}"] = m.train_x[idx][m.train_y[idx] == d]
    if digits:
        arrays["test_x"] = m.test_x
    save_inputs(input_dir, **arrays)
    extra = {"protocols": s["protocols"], "oneclass_digits": digits}
    if ctx.quick:  # one quick budget, shared by the course model and each one-class model
        n_models = ("course" in s["protocols"]) + len(digits)
        extra["max_train_seconds"] = float(ctx.competition["quick"]["max_train_seconds"]) / max(1, n_models)
    return extra


def score(ctx: ScoringContext, output_dir: Path, meta: dict) -> tuple[dict, dict]:
    s = settings(ctx)
    metrics: dict = {}
    cases: dict = {}  # case -> (0/1 labels, scores), for the ROC curves
    if "course" in s["protocols"]:
        course, secret = ctx.extra["course"], ctx.extra["secret_order"]
        shuffled = read_array(output_dir, "scores_course.npy", (len(secret),))
        scores = np.empty_like(shuffled)
        scores[secret] = shuffled
        clean, corrupted = course.split(scores)
        metrics.update(course_protocol_metrics(clean, corrupted))
        n_clean = len(clean)
        for kind, bad in corrupted.items():
            labels = np.concatenate([np.zeros(n_clean, np.int8), np.ones(len(bad), np.int8)])
            cases[kind] = (labels, np.concatenate([clean, bad]))
    if "oneclass" in s["protocols"]:
        n = len(ctx.mnist.test_x)
        by_digit = {d: read_array(output_dir, f"scores_digit{d}.npy", (n,)) for d in s["oneclass_digits"]}
        if by_digit:
            metrics.update(oneclass_metrics(by_digit, ctx.mnist.test_y))
            for d, s_d in sorted(by_digit.items()):
                cases[f"digit{d}"] = ((ctx.mnist.test_y != d).astype(np.int8), s_d)
    metrics = anomaly_summary(metrics)
    metrics["params"] = count_npz_params(output_dir, "model.npz")
    metrics["train_seconds"] = float(meta.get("train_seconds", 0.0))
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
    """PCA reconstruction (scikit-learn) and random scores, under this competition's protocol."""
    s = settings(ctx)
    cfg = {"corruptions": s["corruptions"] if "course" in s["protocols"] else [],
           "oneclass_digits": s["oneclass_digits"] if "oneclass" in s["protocols"] else [], "seed": ctx.seed}
    rows = compute(cfg, mnist=ctx.mnist)
    return {"reference-pca": ("Reference: PCA reconstruction (32 components)", rows["pca"], {}),
            "reference-random": ("Reference: random scores (chance)", rows["random"], {})}
