"""Hostile submission fake_meta_wrong_types: expected INVALID_OUTPUT."""

import atexit
import json

from hostile import hostile_model


def tamper():
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": [1, 2], "log": {"not": "a list"}}, f)


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
