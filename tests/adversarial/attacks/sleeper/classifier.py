"""Hostile submission sleeper: expected TIMEOUT."""

import signal
import time

from hostile import hostile_model, succeeded


def attack(x=None):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(3600)
    succeeded("slept an hour")


Model, fit = hostile_model(attack, 'train')
