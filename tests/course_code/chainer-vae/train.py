"""The VAE's own training loop (its loss is not the harness's mean squared error)."""
import numpy as np


def fit(model, data, settings):
    optimizer = settings.make_optimizer(model)
    loss_of = model.get_loss_func()
    rng = np.random.default_rng(settings.seed)
    for epoch in range(1, settings.epochs + 1):
        order = rng.permutation(len(data))
        for start in range(0, len(data), settings.batch_size):
            if settings.out_of_time():
                return
            loss = loss_of(data[settings.device.send(order[start:start + settings.batch_size])])
            model.cleargrads()
            loss.backward()
            optimizer.update()
        settings.report(epoch, loss=float(loss.array))


def main():
    print("train the VAE")
