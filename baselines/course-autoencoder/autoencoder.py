import chainer
import chainer.functions as F
import chainer.links as L

SIZES = (784, 500, 300, 200, 100, 50)


class DeepAutoEncoder(chainer.Chain):
    """784-500-300-200-100-50-100-200-300-500-784, ReLU between layers, linear output."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.encoder = chainer.ChainList(*[L.Linear(a, b) for a, b in zip(SIZES, SIZES[1:])])
            rev = SIZES[::-1]
            self.decoder = chainer.ChainList(*[L.Linear(a, b) for a, b in zip(rev, rev[1:])])

    def forward(self, x):
        h = F.reshape(x, (len(x), -1))
        for layer in self.encoder:
            h = F.relu(layer(h))
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = F.relu(h)
        return F.reshape(h, x.shape)
