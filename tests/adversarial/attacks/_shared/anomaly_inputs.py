"""Shared by the anomaly-track attacks (anomaly_lookup, anomaly_spy): where the job's inputs are, and
a model that trains nothing and returns its input (the attack is in its ``anomaly_score`` or its
``train:`` function). Copied beside each attack's code by ``conftest.copy_attack``."""

import sys

from harness.chainer_env import chainer

L = chainer.links


def input_dir() -> str:
    argv = sys.argv
    return argv[argv.index("--input") + 1] if "--input" in argv else "/input"


class Passthrough(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.unused = L.Linear(1, 1)

    def forward(self, x):
        return x
