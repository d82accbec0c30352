"""Hostile submission read_chainer_cache: expected CRASH."""

import os

import chainer
from hostile import HOST, hostile_model, read_everything, succeeded

PATHS = HOST["chainer_cache"] + [os.path.expanduser("~/.chainer/dataset/pfnet/chainer/mnist/test.npz")]
GLOBS = ["/root/.chainer/**/*.npz"]


def attack(x=None):
    read_everything(PATHS, GLOBS, extra)


def extra(errors):
    try:
        _train, test = chainer.datasets.get_mnist()  # would download, or read a cache
    except Exception as e:  # noqa: BLE001  (whatever stops it)
        errors.append(f"chainer.datasets.get_mnist(): {type(e).__name__}")
        return
    succeeded(f"get_mnist() gave {len(test)} labelled test images")


Model, fit = hostile_model(attack, 'train')
