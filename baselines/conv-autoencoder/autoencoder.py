import chainer
import chainer.functions as F
import chainer.links as L


class ConvAutoEncoder(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.e1 = L.Convolution2D(1, 16, 4, 2, 1)    # 28 -> 14
            self.e2 = L.Convolution2D(16, 32, 4, 2, 1)   # 14 -> 7
            self.d1 = L.Deconvolution2D(32, 16, 4, 2, 1)  # 7 -> 14
            self.d2 = L.Deconvolution2D(16, 1, 4, 2, 1)   # 14 -> 28

    def forward(self, x):
        h = F.relu(self.e1(x))
        h = F.relu(self.e2(h))
        h = F.relu(self.d1(h))
        return F.sigmoid(self.d2(h))
