import chainer
import chainer.functions as F
import chainer.links as L


class CourseCNN(chainer.Chain):
    """conv3x3(32)-conv3x3(32)-maxpool2-conv3x3(32)-conv3x3(32)-linear(10), ReLU, padding 1."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.c1 = L.Convolution2D(1, 32, 3, pad=1)
            self.c2 = L.Convolution2D(32, 32, 3, pad=1)
            self.c3 = L.Convolution2D(32, 32, 3, pad=1)
            self.c4 = L.Convolution2D(32, 32, 3, pad=1)
            self.out = L.Linear(32 * 14 * 14, 10)

    def forward(self, x):
        h = F.relu(self.c1(x))
        h = F.max_pooling_2d(F.relu(self.c2(h)), 2)
        h = F.relu(self.c3(h))
        h = F.relu(self.c4(h))
        return self.out(h)
