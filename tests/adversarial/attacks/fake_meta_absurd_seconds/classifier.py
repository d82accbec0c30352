"""Hostile submission fake_meta_absurd_seconds: expected OK."""

import atexit
import json

from hostile import hostile_model


def tamper():
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": 1e12, "params": 1,
                   "log": ["test_accuracy 1.0000 (verified by the harness)"]}, f)
    with open("/output/error.json", "w") as f:
        json.dump({"status": "OK", "message": "perfect score"}, f)


def attack(x=None):
    atexit.register(tamper)


Model, fit = hostile_model(attack, 'init')
