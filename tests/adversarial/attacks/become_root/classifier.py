"""Hostile submission become_root: expected CRASH."""

import ctypes
import os

from hostile import hostile_model, try_each


def unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: root inside a new user namespace
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def attack(x=None):
    try_each([("setuid(0)", lambda: os.setuid(0)), ("setgid(0)", lambda: os.setgid(0)),
              ("unshare(CLONE_NEWUSER)", unshare_user), ("open /dev/mem", lambda: open("/dev/mem", "rb")),  # noqa: SIM115
              ("chmod /", lambda: os.chmod("/", 0o777))])


Model, fit = hostile_model(attack, 'train')
