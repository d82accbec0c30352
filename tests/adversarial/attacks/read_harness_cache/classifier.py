"""Hostile submission read_harness_cache: expected CRASH."""

import os

from hostile import HOST, hostile_model, read_everything

PATHS = HOST["harness_cache"] + [os.path.expanduser("~/.cache/chainer-harness/mnist-canonical.npz")]
GLOBS = ["/root/.cache/**/*.npz", "/home/*/.cache/chainer-harness/*"]


def attack(x=None):
    read_everything(PATHS, GLOBS)


Model, fit = hostile_model(attack, 'train')
