"""Hostile submission memory_hog: expected OUT_OF_MEMORY."""


import numpy as np
from hostile import hostile_model, succeeded


def attack(x=None):
    hog = []
    for i in range(64):  # 8 GiB, every page touched
        hog.append(np.ones(128 << 20, np.uint8))
    succeeded(f"allocated {len(hog) * 128} MiB")


Model, fit = hostile_model(attack, 'train')
