"""The plain model (an untrained 784 -> 10 linear layer) of the attacks whose attack is not in the
model: a hostile folder tree or manifest (deep_tree, sparse_file, yaml_alias_bomb), an ``atexit``
hook that tampers with the outputs (nested_error_json, forged_params_atexit, npz_member_bomb,
deep_output_tree), or the weights file the test builds beside it (pickle_weights, zip_bomb_weights,
which get this file as their classifier.py). Copied beside each attack's code by
``conftest.copy_attack``; the others import it: ``from plain_model import Model``."""

import chainer
import chainer.links as L


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)
