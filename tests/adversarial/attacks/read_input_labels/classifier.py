"""Hostile submission read_input_labels: expected INVALID_SUBMISSION."""

import os

import numpy as np
from hostile import blocked, hostile_model, succeeded


def attack(x=None):
    names = sorted(os.listdir("/input"))
    n_test = len(np.load("/input/test_x.npy", mmap_mode="r"))
    for n in names:
        if "label" in n or (n.startswith("test") and n != "test_x.npy"):
            succeeded(f"/input/{n}")
        if n.endswith(".npy") and n != "train_y.npy":
            a = np.load("/input/" + n, allow_pickle=False)
            if a.ndim == 1 and len(a) == n_test:
                succeeded(f"/input/{n} holds one value per test image: {a[:10]}")
    blocked(f"/input holds only {names}")


Model, fit = hostile_model(attack, 'init')
