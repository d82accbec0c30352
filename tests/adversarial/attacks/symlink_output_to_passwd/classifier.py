"""Hostile submission symlink_output_to_passwd: expected INVALID_OUTPUT."""

import atexit
import os

from hostile import hostile_model


def tamper():
    os.remove("/output/test_logits.npy")
    os.symlink("/etc/passwd", "/output/test_logits.npy")


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
