"""Generate track, ingestion side: train the GAN (or load the generator), return seeded samples."""

from __future__ import annotations

import numpy as np

from harness.ingestion.common import (F, Job, batches, chainer, count_params, eval_batch_size,
                                      seed_everything, to_numpy)


def discriminator_losses(d_real, d_fake):
    """Non-saturating GAN losses (Goodfellow et al. 2014) for logits (N,1) or (N,2), "real" = 1.

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
    """The harness's default loop, as Chainer's DCGAN example: one D step and one G step per batch."""
    opt_g = settings.make_optimizer(generator)
    opt_d = settings.make_optimizer(discriminator)
    rng = np.random.default_rng(settings.seed)
    n = len(x)
    total = settings.epochs * (n // settings.batch_size)
    step = 0
    for epoch in range(1, settings.epochs + 1):
        sums = np.zeros(2)
        for idx in batches(n, settings.batch_size, rng):
            if len(idx) < settings.batch_size:
                continue  # equal-sized batches, as the course's updater
            if settings.out_of_time():
                break
            x_real = x[settings.device.send(idx)]
            z = generator.make_hidden(len(idx))
            x_fake = generator(z)
            loss_d, loss_g = discriminator_losses(discriminator(x_real), discriminator(x_fake))
            discriminator.cleargrads()
            loss_d.backward()
            opt_d.update()
            generator.cleargrads()
            loss_g.backward()
            opt_g.update()
            sums += (float(loss_d.array), float(loss_g.array))
            step += 1
            job.progress("train", step, total)
        settings.report(epoch, loss_dis=sums[0] / max(1, n // settings.batch_size),
                        loss_gen=sums[1] / max(1, n // settings.batch_size))


def sample(generator, n: int, seed: int, device, job: Job | None = None) -> np.ndarray:
    """``n`` images from ``generator.make_hidden`` after seeding every generator of randomness."""
    seed_everything(seed, device)
    out, bs = [], eval_batch_size(device)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for start in range(0, n, bs):
            k = min(bs, n - start)
            z = generator.make_hidden(k)
            out.append(to_numpy(generator(z)).astype(np.float32, copy=False))
            if job is not None:
                job.progress("sample", start + k, n)
    return np.concatenate(out)


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
    try:
        z = generator.make_hidden(8)
    except Exception as exc:
        return [f"{job.spec['classes']['generator']}: make_hidden(8) raised {type(exc).__name__}: {exc}"]
    if isinstance(z, chainer.Variable):
        z = z.array
    if not isinstance(z, job.device.xp.ndarray):
        problems.append(f"{job.spec['classes']['generator']}: make_hidden returned {type(z).__name__}, "
                        f"expected an array from self.xp on {job.device}")
        return problems
    problems += check_forward(job, "generator", generator, lambda g: g(z), (8, 1, 28, 28), "images", 0.0, 1.0)
    x = job.device.send(job.images("train_x")[:8])
    d_problems = check_forward(job, "discriminator", discriminator, lambda d: d(x), (8, 1), "logits")
    if d_problems and any("shape" in p for p in d_problems):
        alt = check_forward(job, "discriminator", discriminator, lambda d: d(x), (8, 2), "logits")
        d_problems = alt if not any("shape" in p for p in alt) else [
            p.replace("expected (8, 1)", "expected (8, 1) or (8, 2)") for p in d_problems]
    problems += d_problems
    problems += check_weights_and_train(job, generator)
    return problems
