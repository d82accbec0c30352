import atexit

import chainer
import chainer.links as L


def tamper():
    with open("/output/error.json", "w") as f:
        f.write("[" * 8000)


atexit.register(tamper)


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)
