"""Classify track, ingestion side: train (or load) the classifier, return logits. No labels of the test set."""

from __future__ import annotations

import numpy as np

from harness.ingestion.common import F, Job, count_params, eval_batch_size, minimize, predict


def train_classifier(model, x, t, settings, job: Job) -> None:
    """The harness's default loop: softmax cross-entropy, shuffled minibatches, seeded."""
    minimize(model, len(x), lambda idx: F.softmax_cross_entropy(model(x[idx]), t[idx]), settings, job, "train")


def run(job: Job) -> None:
    model = job.build("model")
    device = job.device
    train_x = device.send(job.images("train_x"))
    train_y = device.send(job.array("train_y").astype(np.int32))
    test_x = device.send(job.images("test_x"))

    train_seconds = job.train_or_load(model, model, (train_x, train_y),
                                      lambda settings: train_classifier(model, train_x, train_y, settings, job))

    bs = eval_batch_size(device)
    if (job.inputs / "train_eval_idx.npy").is_file():  # --quick: train accuracy from a fixed subset
        positions = job.array("train_eval_idx")
        job.log(f"--quick: train accuracy and loss measured on {len(positions):,} of the {len(train_x):,} "
                f"training images")
        train_x = device.send(job.images("train_x")[positions])
    job.write("train_logits", predict(model, train_x, bs, job, "evaluate train"))
    job.write("test_logits", predict(model, test_x, bs, job, "evaluate test"))
    job.save_weights(model, "model")
    job.finish(train_seconds=train_seconds, params=count_params(model))


def check(job: Job) -> list[str]:
    """Fast checks on a tiny batch: builds, forward shape/dtype/finite, gradients reach every parameter."""
    from harness.ingestion.checks import check_forward, check_weights_and_train

    model = job.build("model")
    x = job.device.send(job.images("train_x")[:8])
    problems = check_forward(job, "model", model, lambda m: m(x), (8, 10), "logits")
    problems += check_weights_and_train(job, model)
    return problems
