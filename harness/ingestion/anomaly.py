"""Anomaly track, ingestion side: train autoencoders, return anomaly scores for unlabelled images.

Each model is its own job (its own process and sandbox), given only its own inputs. The course job
trains on all training digits and scores one shuffled evaluation set in which clean and corrupted
test images are mixed (the process cannot tell which is which but by looking, and holds no clean
copy to look them up in). A one-class job trains a fresh model on one normal digit's training
images and scores all test images, in a secret order and unnamed.
"""

from __future__ import annotations

import numpy as np

from harness.ingestion.common import F, Job, count_params, eval_batch_size, minimize, predict, seed_everything


def reconstruction_error(model, x):
    """Per-image mean squared reconstruction error, shape (N,)."""
    y = model(x)
    return F.mean(F.reshape((y - x) ** 2, (len(x), -1)), axis=1)


def train_autoencoder(model, x, settings, job: Job, phase: str) -> None:
    """The harness's default loop: mean squared reconstruction error, shuffled minibatches."""
    def loss_of(idx):
        xb = x[idx]
        return F.mean_squared_error(model(xb), xb)

    minimize(model, len(x), loss_of, settings, job, phase)


def score_fn(model):
    if callable(getattr(model, "anomaly_score", None)):
        return model.anomaly_score
    return lambda x: reconstruction_error(model, x)


def eval_images(job: Job):
    """``eval_x`` as float32 (N, 1, 28, 28) in [0, 1]: the course set arrives as such, the one-class
    test images as uint8 (N, 784)."""
    return job.images("eval_x") if job.array("eval_x").dtype == np.uint8 else job.array("eval_x")


def run(job: Job) -> None:
    """One model: the course protocol's (``protocol: course``) or one normal digit's (``protocol:
    oneclass``, ``digit: d``). Each is its own job, given only its own ``train_x`` and ``eval_x``."""
    device = job.device
    protocol = job.spec.get("protocol", "course")
    if protocol == "course":
        name = label = "course"
    else:
        digit = int(job.spec["digit"])
        name, label = f"digit{digit}", f"digit {digit}"
        seed_everything(job.seed + digit, device)
    model = job.build("model")
    x = device.send(job.images("train_x"))
    job.log(f"{label} model: {len(x)} training images" + (" of every digit" if protocol == "course" else ""))

    def loop(settings):
        train_autoencoder(model, x, settings, job, f"train ({label})")

    # the manifest's weights: are the course model's; each one-class model trains on its digit
    seconds = job.train_or_load(model, model, x, loop) if protocol == "course" else job.train(model, x, loop)
    scores = predict(score_fn(model), device.send(eval_images(job)), eval_batch_size(device), job, f"score ({label})")
    job.write(f"scores_{name}", scores)
    job.save_weights(model, "model")
    job.finish(train_seconds=seconds, params=count_params(model))


def check(job: Job) -> list[str]:
    from harness.ingestion.checks import check_forward, check_weights_and_train

    model = job.build("model")
    x = job.device.send(job.images("train_x")[:8])
    problems = check_forward(job, "model", model, lambda m: m(x), (8, 1, 28, 28), "reconstruction")
    if callable(getattr(model, "anomaly_score", None)):
        problems += check_forward(job, "model", model, lambda m: m.anomaly_score(x), (8,), "anomaly_score")
    problems += check_weights_and_train(job, model)
    return problems
