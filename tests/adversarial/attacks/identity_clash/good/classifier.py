import chainer
import chainer.links as L


class SoftmaxRegression(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)


def fit(model, data, settings):
    """No training at all: the untrained model scores about 0.1."""
