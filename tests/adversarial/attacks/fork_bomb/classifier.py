"""Hostile submission fork_bomb: expected CRASH."""

import subprocess
import sys

from hostile import blocked, hostile_model, succeeded

BOMB = """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(60)
        n += 1
except OSError as e:
    time.sleep(0.5)
    print(sum(p.isdigit() for p in os.listdir("/proc")), e.strerror, flush=True)
"""


def attack(x=None):
    with open("/tmp/bomb.out", "w") as out:
        subprocess.Popen([sys.executable, "-c", BOMB], stdout=out, stderr=subprocess.DEVNULL).wait(30)
    most, why = open("/tmp/bomb.out").read().strip().split(" ", 1)  # noqa: SIM115
    if int(most) > 600:
        succeeded(f"{most} processes")
    blocked(f"the fork bomb stopped at {most} processes: {why}")


Model, fit = hostile_model(attack, 'train')
