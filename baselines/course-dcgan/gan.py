import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L


class Generator(chainer.Chain):
    """z (100, uniform in [-1, 1]) -> linear -> 512x3x3 -> deconvolutions 3 -> 7 -> 14 -> 28, sigmoid."""

    def __init__(self, n_hidden=100, ch=512, wscale=0.02):
        super().__init__()
        self.n_hidden = n_hidden
        self.ch = ch
        w = chainer.initializers.Normal(wscale)
        with self.init_scope():
            self.l0 = L.Linear(n_hidden, 3 * 3 * ch, initialW=w)
            self.dc1 = L.Deconvolution2D(ch, ch // 4, 3, 2, 0, initialW=w)       # 3 -> 7
            self.dc2 = L.Deconvolution2D(ch // 4, ch // 8, 4, 2, 1, initialW=w)  # 7 -> 14
            self.dc3 = L.Deconvolution2D(ch // 8, 1, 4, 2, 1, initialW=w)        # 14 -> 28
            self.bn0 = L.BatchNormalization(3 * 3 * ch)
            self.bn1 = L.BatchNormalization(ch // 4)
            self.bn2 = L.BatchNormalization(ch // 8)

    def make_hidden(self, batchsize):
        return self.xp.random.uniform(-1, 1, (batchsize, self.n_hidden)).astype(np.float32)

    def forward(self, z):
        h = F.reshape(F.relu(self.bn0(self.l0(z))), (len(z), self.ch, 3, 3))
        h = F.relu(self.bn1(self.dc1(h)))
        h = F.relu(self.bn2(self.dc2(h)))
        return F.sigmoid(self.dc3(h))


class Discriminator(chainer.Chain):
    def __init__(self, wscale=0.02):
        super().__init__()
        w = chainer.initializers.Normal(wscale)
        with self.init_scope():
            self.c0 = L.Convolution2D(1, 64, 4, 2, 1, initialW=w)     # 28 -> 14
            self.c1 = L.Convolution2D(64, 128, 4, 2, 1, initialW=w)   # 14 -> 7
            self.c2 = L.Convolution2D(128, 256, 3, 2, 1, initialW=w)  # 7 -> 4
            self.l3 = L.Linear(256 * 4 * 4, 1, initialW=w)
            self.bn1 = L.BatchNormalization(128)
            self.bn2 = L.BatchNormalization(256)

    def forward(self, x):
        h = F.leaky_relu(self.c0(x))
        h = F.leaky_relu(self.bn1(self.c1(h)))
        h = F.leaky_relu(self.bn2(self.c2(h)))
        return self.l3(h)
