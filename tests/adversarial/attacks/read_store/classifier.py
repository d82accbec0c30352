"""Hostile submission read_store: expected CRASH."""

import os

from hostile import HOST, hostile_model, read_everything

PATHS = [HOST["db"], HOST["db"] + "-wal", HOST["leaderboard"], HOST["artifacts"]]
GLOBS = [os.path.join(HOST["leaderboard"], "*.db"), os.path.join(os.path.dirname(HOST["db"]), "*")]


def attack(x=None):
    read_everything(PATHS, GLOBS)


Model, fit = hostile_model(attack, 'train')
