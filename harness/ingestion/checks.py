"""Shared checks for ``harness check``, run inside the ingestion process on a tiny batch."""

from __future__ import annotations

from typing import Callable

import numpy as np

from harness.ingestion.common import F, Job, SubmissionError, chainer, describe, to_numpy


def check_forward(job: Job, role: str, model, call: Callable, shape: tuple, what: str,
                  lo: float | None = None, hi: float | None = None) -> list[str]:
    """Run ``call(model)`` in train mode and in eval mode and check the output; list problems."""
    ref = job.spec["classes"][role]
    problems = []
    try:
        with chainer.using_config("train", True):
            y = call(model)
    except Exception as exc:
        return [f"{ref}: forward on a batch of {shape[0]} raised {describe(exc)}"]
    if not isinstance(y, chainer.Variable):
        return [f"{ref}: forward returned {type(y).__name__}, expected a chainer.Variable "
                f"(use chainer.functions, not numpy, inside forward)"]
    a = y.array
    if not isinstance(a, job.device.xp.ndarray):
        problems.append(f"{ref}: {what} is a {type(a).__module__}.{type(a).__name__} on device "
                        f"{job.device}, expected an array on that device (do not call to_gpu/to_cpu in forward)")
    if tuple(a.shape) != tuple(shape):
        problems.append(f"{ref}: {what} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if a.dtype != np.float32:
        problems.append(f"{ref}: {what} has dtype {a.dtype}, expected float32")
    host = to_numpy(a)
    if not np.isfinite(host).all():
        problems.append(f"{ref}: {what} holds NaN or infinite values on a batch of real images")
    elif lo is not None and (host.min() < lo or host.max() > hi):
        problems.append(f"{ref}: {what} ranges over [{host.min():.3g}, {host.max():.3g}], expected within [{lo}, {hi}]")
    if problems:
        return problems
    try:
        model.cleargrads()
        F.sum(y * y).backward()
    except Exception as exc:
        return [f"{ref}: backward through {what} raised {describe(exc)}"]
    dead = [path for path, p in model.namedparams() if p.array is not None and p.grad is None]
    if dead:
        problems.append(f"{ref}: no gradient reaches {', '.join(dead[:4])}{' ...' if len(dead) > 4 else ''}: "
                        f"forward may convert Variables to numpy arrays (use chainer.functions and self.xp)")
    try:
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            y_eval = call(model)
        if tuple(y_eval.shape) != tuple(shape):
            problems.append(f"{ref}: in evaluation mode {what} has shape {tuple(y_eval.shape)}, expected {tuple(shape)}")
    except Exception as exc:
        problems.append(f"{ref}: forward in evaluation mode (chainer.using_config('train', False)) raised {describe(exc)}")
    return problems


def check_weights_and_train(job: Job, model) -> list[str]:
    problems = []
    if job.spec.get("weights"):
        try:
            job.load_weights(model, job.spec["weights"])
        except SubmissionError as exc:
            problems.append(str(exc))
    if job.spec.get("train"):
        try:
            fit = job.custom_train()
            if not callable(fit):
                problems.append(f"train: {job.spec['train']} is not a function")
        except SubmissionError as exc:
            problems.append(str(exc))
    return problems
