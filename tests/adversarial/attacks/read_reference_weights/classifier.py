"""Hostile submission read_reference_weights (issue 10, item 2): open the reference classifier's
weights and the cached reference features by their host paths, or find them by globbing.
Expected: CRASH with "attack blocked" (none of them exists in the sandbox)."""

import os

from hostile import HOST, hostile_model, read_everything

PATHS = HOST["reference_weights"] + [os.path.join(HOST["harness_dir"], "scoring"), HOST["cache_dir"]]
GLOBS = [os.path.join(HOST["harness_dir"], "**", "*.npz"), os.path.join(HOST["cache_dir"], "*"),
         os.path.join(HOST["repo"], "leaderboard", "**", "*"), "/tmp/**/reference*.npz"]


def attack(x=None):
    read_everything(PATHS, GLOBS)


Model, fit = hostile_model(attack, "train")
