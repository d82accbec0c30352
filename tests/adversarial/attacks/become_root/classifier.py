"""Hostile submission become_root: expected CRASH."""

import ctypes
import os

from hostile import blocked, err, hostile_model, succeeded


def unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: root inside a new user namespace
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def attack(x=None):
    errors = []
    for name, fn in [("setuid(0)", lambda: os.setuid(0)), ("setgid(0)", lambda: os.setgid(0)),
                     ("unshare(CLONE_NEWUSER)", unshare_user), ("open /dev/mem", lambda: open("/dev/mem", "rb")),  # noqa: SIM115
                     ("chmod /", lambda: os.chmod("/", 0o777))]:
        try:
            fn()
        except OSError as e:
            errors.append(f"{name}: {err(e)}")
            continue
        succeeded(name)
    blocked("; ".join(errors))


Model, fit = hostile_model(attack, 'train')
