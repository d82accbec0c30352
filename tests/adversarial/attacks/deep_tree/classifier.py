import chainer
import chainer.links as L


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)
