"""Hostile submission fake_error_json_skipped: expected CRASH."""

import json
import os

from hostile import hostile_model


def attack(x=None):
    with open("/output/error.json", "w") as f:
        json.dump({"status": "SKIPPED", "message": "not graded, no penalty"}, f)
    os._exit(3)


Model, fit = hostile_model(attack, 'train')
