"""Hostile submission flood_stderr: expected OUTPUT_LIMIT."""

import sys

from hostile import hostile_model


def attack(x=None):
    while True:
        sys.stderr.write("flood " * 1000 + "\n")


Model, fit = hostile_model(attack, 'forward')
