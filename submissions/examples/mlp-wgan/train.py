"""A WGAN training loop (weight clipping), in the form the harness calls: fit(models, x, settings).

settings gives epochs, batch_size, seed, device, make_optimizer(link) (the manifest's optimizer)
and report(epoch, **numbers) for the log. x is the training images on the device, float32
(N, 1, 28, 28) in [0, 1].
"""

import numpy as np

import chainer.functions as F

N_CRITIC = 5
CLIP = 0.01


def fit(models, x, settings):
    generator, critic = models
    opt_g = settings.make_optimizer(generator)
    opt_c = settings.make_optimizer(critic)
    rng = np.random.default_rng(settings.seed)
    n, bs = len(x), settings.batch_size
    for epoch in range(1, settings.epochs + 1):
        order = rng.permutation(n)
        for step, start in enumerate(range(0, n - bs + 1, bs)):
            real = x[settings.device.send(order[start:start + bs])]
            fake = generator(generator.make_hidden(bs))
            loss_c = F.mean(critic(fake)) - F.mean(critic(real))
            critic.cleargrads()
            loss_c.backward()
            opt_c.update()
            for p in critic.params():
                p.array[...] = p.array.clip(-CLIP, CLIP)
            if step % N_CRITIC == 0:
                loss_g = -F.mean(critic(generator(generator.make_hidden(bs))))
                generator.cleargrads()
                loss_g.backward()
                opt_g.update()
        settings.report(epoch, critic_loss=float(loss_c.array), generator_loss=float(loss_g.array))
