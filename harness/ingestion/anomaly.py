"""Anomaly track, ingestion side: train autoencoders, return anomaly scores for unlabelled images.

The course protocol trains one model on all training digits and scores one shuffled evaluation set
in which clean and corrupted test images are mixed (the process cannot tell which is which but by
looking). The one-class protocol trains a fresh model per normal digit and scores all test images.
"""

from __future__ import annotations

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


def run(job: Job) -> None:
    device = job.device
    bs = eval_batch_size(device)
    meta = {"train_seconds": 0.0}
    if "course" in job.spec["protocols"]:
        model = job.build("model")
        x = device.send(job.images("train_x"))
        meta["train_seconds"] += job.train_or_load(
            model, model, x, lambda settings: train_autoencoder(model, x, settings, job, "train (course)"))
        job.write("scores_course", predict(score_fn(model), device.send(job.array("eval_x")), bs, job, "score (course)"))
        job.save_weights(model, "model")
        meta["params"] = count_params(model)
    test_x = None
    for digit in job.spec.get("oneclass_digits", []):
        seed_everything(job.seed + digit, device)
        model = job.build("model")
        x = device.send(job.images(f"train_x_digit{digit}"))
        meta["train_seconds"] += job.train(
            model, x, lambda settings: train_autoencoder(model, x, settings, job, f"train (digit {digit})"))
        if test_x is None:
            test_x = device.send(job.images("test_x"))
        job.write(f"scores_digit{digit}", predict(score_fn(model), test_x, bs, job, f"score (digit {digit})"))
        if "params" not in meta:
            job.save_weights(model, "model")
            meta["params"] = count_params(model)
    job.finish(**meta)


def check(job: Job) -> list[str]:
    from harness.ingestion.checks import check_forward, check_weights_and_train

    model = job.build("model")
    x = job.device.send(job.images("train_x")[:8])
    problems = check_forward(job, "model", model, lambda m: m(x), (8, 1, 28, 28), "reconstruction")
    if callable(getattr(model, "anomaly_score", None)):
        problems += check_forward(job, "model", model, lambda m: m.anomaly_score(x), (8,), "anomaly_score")
    problems += check_weights_and_train(job, model)
    return problems
