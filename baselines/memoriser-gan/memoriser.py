import numpy as np

import chainer
import chainer.links as L

MEMORY = 5000


class Memoriser(chainer.Chain):
    def __init__(self):
        super().__init__()
        self.add_persistent("memory", np.zeros((MEMORY, 1, 28, 28), np.float32))

    def make_hidden(self, batchsize):
        return self.xp.random.uniform(0, 1, (batchsize, 1)).astype(np.float32)

    def forward(self, z):
        idx = (z[:, 0] if isinstance(z, self.xp.ndarray) else z.array[:, 0]) * MEMORY
        return chainer.Variable(self.memory[idx.astype(np.int32)])


class NoDiscriminator(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l = L.Linear(784, 1)

    def forward(self, x):
        return self.l(x)


def memorise(models, x, settings):
    generator, _ = models
    generator.memory[...] = x[:MEMORY]
