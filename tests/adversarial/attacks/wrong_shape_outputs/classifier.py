"""Hostile submission wrong_shape_outputs: expected INVALID_OUTPUT."""


import numpy as np
from hostile import hostile_model


def attack(x):
    return np.zeros((len(x), 9), np.float32)


Model, fit = hostile_model(attack, 'forward')
