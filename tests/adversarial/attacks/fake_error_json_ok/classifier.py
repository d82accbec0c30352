"""Hostile submission fake_error_json_ok: expected INVALID_OUTPUT."""

import json
import os

from hostile import hostile_model


def attack(x=None):
    with open("/output/error.json", "w") as f:
        json.dump({"status": "OK", "message": "graded: 100%"}, f)
    with open("/output/meta.json", "w") as f:
        json.dump({"train_seconds": -5}, f)
    os._exit(0)


Model, fit = hostile_model(attack, 'train')
