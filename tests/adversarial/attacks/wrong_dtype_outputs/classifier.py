"""Hostile submission wrong_dtype_outputs: expected INVALID_OUTPUT."""


import numpy as np
from hostile import hostile_model


def attack(x):
    return np.zeros((len(x), 10), np.float64)


Model, fit = hostile_model(attack, 'forward')
