"""Hostile submission output_many_files: expected OUTPUT_LIMIT."""

import time

from hostile import hostile_model, succeeded


def attack(x=None):
    for i in range(5000):
        open(f"/output/f{i}", "w").close()
    time.sleep(30)
    succeeded("created 5000 files in /output and was not stopped")


Model, fit = hostile_model(attack, 'train')
