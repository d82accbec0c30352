"""The plain model of the hostile weights cases (pickle_weights, zip_bomb_weights): the attack is in
the weights file the test builds beside it (a pickle, a zip bomb), not in this code."""

import chainer
import chainer.links as L


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)
