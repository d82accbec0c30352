"""Hostile submission nan_outputs: expected INVALID_OUTPUT."""


import chainer
import numpy as np
from hostile import hostile_model


def attack(x):
    return chainer.Variable(np.full((len(x), 10), np.nan, np.float32))


Model, fit = hostile_model(attack, 'forward')
