"""Hostile submission pickle_in_outputs: expected INVALID_OUTPUT."""

import atexit
import json
import os

import numpy as np
from hostile import HOST, hostile_model


class Evil:
    def __reduce__(self):
        return (open, (os.path.join(HOST["marker_dir"], "unpickled-output"), "w"))


def tamper():
    np.save("/output/test_logits.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    np.savez("/output/model.npz", W=np.array([Evil()], dtype=object))
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": 1.0, "log": ["x"]}, f)


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
