import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L


class Generator(chainer.Chain):
    n_hidden = 64

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(self.n_hidden, 256)
            self.l2 = L.Linear(256, 512)
            self.l3 = L.Linear(512, 784)
            self.bn1 = L.BatchNormalization(256)
            self.bn2 = L.BatchNormalization(512)

    def make_hidden(self, batchsize):
        return self.xp.random.normal(0, 1, (batchsize, self.n_hidden)).astype(np.float32)

    def forward(self, z):
        h = F.relu(self.bn1(self.l1(z)))
        h = F.relu(self.bn2(self.l2(h)))
        return F.reshape(F.sigmoid(self.l3(h)), (len(z), 1, 28, 28))


class Discriminator(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 512)
            self.l2 = L.Linear(512, 256)
            self.l3 = L.Linear(256, 1)

    def forward(self, x):
        h = F.leaky_relu(self.l1(F.reshape(x, (len(x), -1))), 0.2)
        h = F.leaky_relu(self.l2(h), 0.2)
        return self.l3(h)
