"""Hostile submission kill_host: expected CRASH."""

import os
import signal

from hostile import HOST, blocked, err, hostile_model


def attack(x=None):
    errors = []
    for name, pid in [("host process", HOST["victim_pid"]), ("every process (-1)", -1)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as e:
            errors.append(f"kill {name}: {err(e)}")
            continue
        errors.append(f"kill {name}: no error")
    blocked("; ".join(errors))


Model, fit = hostile_model(attack, 'train')
