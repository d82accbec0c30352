"""Generate track, ingestion side: train the GAN (or load the generator), return seeded samples."""

from __future__ import annotations

import numpy as np

from harness.ingestion.common import (F, Job, SubmissionError, as_submission_error, batches, chainer,
                                      count_params, eval_batch_size, seed_everything, to_numpy)
from harness.ingestion.shapes import range_problem


def hidden(generator, n: int, device):
    """``generator.make_hidden(n)`` on the device: a NumPy z (Chainer's DCGAN example) is copied there."""
    z = generator.make_hidden(n)
    if isinstance(z, chainer.Variable):
        return z
    return device.send(z)


def discriminator_losses(d_real, d_fake):
    """Non-saturating GAN losses (Goodfellow et al. 2014) for logits (N,1) or (N,2), "real" = 1 (a
    discriminator's (N,), (N,1,1,1) or (N,2,1,1) arrive reshaped: see shapes.conform).

    Returns (discriminator loss, generator loss); the generator maximises log D(G(z)).
    """
    if d_real.shape[1] == 1:
        loss_d = F.mean(F.softplus(-d_real)) + F.mean(F.softplus(d_fake))
        loss_g = F.mean(F.softplus(-d_fake))
    else:
        xp = chainer.backend.get_array_module(d_real.array)
        ones = xp.ones(len(d_real), dtype=np.int32)
        zeros = xp.zeros(len(d_fake), dtype=np.int32)
        loss_d = F.softmax_cross_entropy(d_real, ones) + F.softmax_cross_entropy(d_fake, zeros)
        loss_g = F.softmax_cross_entropy(d_fake, ones)
    return loss_d, loss_g


def train_gan(generator, discriminator, x, settings, job: Job) -> None:
    """The harness's default loop, as Chainer's DCGAN example: one D step and one G step per batch.

    The discriminator is given chainer.Variable inputs (the example's ``add_noise`` needs one). The
    log gives per epoch the means over the batches actually run."""
    opt_g = settings.make_optimizer(generator)
    opt_d = settings.make_optimizer(discriminator)
    rng = np.random.default_rng(settings.seed)
    n = len(x)
    per_epoch = max(1, n // settings.batch_size)
    total = settings.epochs * per_epoch
    job.training_started(settings, per_epoch)
    step = 0
    for epoch in range(1, settings.epochs + 1):
        sums, steps = np.zeros(2), 0
        for idx in batches(n, settings.batch_size, rng):
            if len(idx) < settings.batch_size:
                continue  # equal-sized batches, as the course's updater
            if settings.out_of_time():
                break
            x_real = chainer.Variable(x[settings.device.send(idx)])
            x_fake = as_submission_error(generator, hidden(generator, len(idx), settings.device))
            loss_d, loss_g = discriminator_losses(as_submission_error(discriminator, x_real),
                                                  as_submission_error(discriminator, x_fake))
            discriminator.cleargrads()
            loss_d.backward()
            opt_d.update()
            generator.cleargrads()
            loss_g.backward()
            opt_g.update()
            sums += (float(loss_d.array), float(loss_g.array))
            steps += 1
            step += 1
            job.progress("train", step, total)
        means = sums / max(1, steps)
        job.epoch_done(epoch, settings, steps, per_epoch, loss_dis=means[0], loss_gen=means[1])
        if settings.out_of_time():
            break


def sample(generator, n: int, seed: int, device, job: Job | None = None) -> np.ndarray:
    """``n`` images from ``generator.make_hidden`` after seeding every generator of randomness."""
    seed_everything(seed, device)
    out, bs = [], eval_batch_size(device)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for start in range(0, n, bs):
            k = min(bs, n - start)
            z = hidden(generator, k, device)
            out.append(to_numpy(as_submission_error(generator, z)).astype(np.float32, copy=False))
            if job is not None:
                job.progress("sample", start + k, n)
    samples = np.concatenate(out)
    if job is not None and np.isfinite(samples).all():
        problem = range_problem("images", float(samples.min()), float(samples.max()))
        if problem:
            raise SubmissionError(f"{job.spec['classes']['generator']}: {problem}")
    return samples


def run(job: Job) -> None:
    generator = job.build("generator")
    discriminator = job.build("discriminator")
    x = job.device.send(job.images("train_x"))
    train_seconds = job.train_or_load(generator, (generator, discriminator), x,
                                      lambda settings: train_gan(generator, discriminator, x, settings, job))
    job.write("samples", sample(generator, int(job.spec["samples"]), job.seed, job.device, job))
    job.save_weights(generator, "generator")
    job.finish(train_seconds=train_seconds, params=count_params(generator))


def check(job: Job) -> list[str]:
    from harness.ingestion.checks import check_forward, check_weights_and_train

    generator = job.build("generator")
    discriminator = job.build("discriminator")
    problems = []
    ref = job.spec["classes"]["generator"]
    try:
        z = hidden(generator, 8, job.device)
    except Exception as exc:
        return [f"{ref}: make_hidden(8) raised {job.describe(exc)}"]
    array = z.array if isinstance(z, chainer.Variable) else z
    if not isinstance(array, job.device.xp.ndarray):
        return [f"{ref}: make_hidden returned {type(z).__name__}, expected an array from self.xp on {job.device}"]
    problems += check_forward(job, "generator", generator, lambda g: g(z), (8, 1, 28, 28), "images", 0.0, 1.0)
    x = chainer.Variable(job.device.send(job.images("train_x")[:8]))
    problems += check_forward(job, "discriminator", discriminator, lambda d: d(x), [(8, 1), (8, 2)], "logits")
    problems += check_weights_and_train(job, generator)
    return problems
