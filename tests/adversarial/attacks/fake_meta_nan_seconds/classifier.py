"""Hostile submission fake_meta_nan_seconds: expected INVALID_OUTPUT."""

import atexit

from hostile import hostile_model


def tamper():
    with open("/output/meta.json", "w") as f:
        f.write('{"train_seconds": NaN, "params": -1, "log": "a string, not a list"}')


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
