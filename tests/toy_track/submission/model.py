import chainer
import chainer.links as L


class Parity(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 64)
            self.l2 = L.Linear(64, 2)

    def forward(self, x):
        return self.l2(chainer.functions.relu(self.l1(x)))
