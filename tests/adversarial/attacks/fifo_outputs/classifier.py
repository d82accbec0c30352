"""Hostile submission fifo_outputs: expected INVALID_OUTPUT."""

import atexit
import os

from hostile import hostile_model


def tamper():
    for name in ("test_logits.npy", "progress.json"):
        os.remove("/output/" + name)
        os.mkfifo("/output/" + name)
    os.mkfifo("/output/error.json")  # read first, by failure_from


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
