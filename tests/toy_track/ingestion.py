"""Parity track, ingestion side (runs in the sandbox as harness.ingestion.plugin_parity)."""

import numpy as np

from harness.ingestion.common import F, Job, eval_batch_size, minimize, predict


def run(job: Job) -> None:
    model = job.build("model")
    x = job.device.send(job.images("train_x"))
    t = job.device.send(job.array("train_y").astype(np.int32))
    train_seconds = job.train_or_load(
        model, model, (x, t),
        lambda settings: minimize(model, len(x), lambda idx: F.softmax_cross_entropy(model(x[idx]), t[idx]),
                                  settings, job, "train"))
    job.write("test_logits", predict(model, job.device.send(job.images("test_x")), eval_batch_size(job.device), job,
                                     "evaluate test"))
    job.finish(train_seconds=train_seconds)


def check(job: Job) -> list[str]:
    return []
