"""Hostile submission symlink_output_to_labels: expected INVALID_OUTPUT."""

import atexit
import os

from hostile import HOST, hostile_model


def tamper():
    for name in ("train_logits.npy", "test_logits.npy", "meta.json", "progress.json"):
        if os.path.lexists("/output/" + name):
            os.remove("/output/" + name)
        os.symlink(HOST["harness_cache"][0], "/output/" + name)


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
