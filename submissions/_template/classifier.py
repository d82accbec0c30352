"""Your classifier. The harness owns data, device and training (unless you set `train:`).

Rules that keep a model portable between CPU and GPU:
- build every layer in __init__ (no arguments) inside `with self.init_scope():`
- in forward, use chainer.functions and self.xp; never numpy, to_gpu or to_cpu
"""

import chainer
import chainer.functions as F
import chainer.links as L


class Classifier(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 256)
            self.l2 = L.Linear(256, 10)

    def forward(self, x):
        # x: float32 (N, 1, 28, 28) in [0, 1]; return logits (N, 10)
        return self.l2(F.relu(self.l1(x)))
