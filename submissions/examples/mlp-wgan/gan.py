import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L


class Generator(chainer.Chain):
    n_hidden = 32

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(self.n_hidden, 256)
            self.l2 = L.Linear(256, 784)

    def make_hidden(self, batchsize):
        return self.xp.random.normal(0, 1, (batchsize, self.n_hidden)).astype(np.float32)

    def forward(self, z):
        return F.reshape(F.sigmoid(self.l2(F.relu(self.l1(z)))), (len(z), 1, 28, 28))


class Critic(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 256)
            self.l2 = L.Linear(256, 1)

    def forward(self, x):
        return self.l2(F.leaky_relu(self.l1(F.reshape(x, (len(x), -1))), 0.2))
