"""Hostile submission good_output_then_hang: expected TIMEOUT."""

import atexit
import time

from hostile import hostile_model


def tamper():
    time.sleep(3600)


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
