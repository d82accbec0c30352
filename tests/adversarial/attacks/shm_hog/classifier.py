"""Hostile submission shm_hog (issue 10, item 7): shared anonymous mmap, every page touched, which
RLIMIT_DATA does not count. Prints how much it holds as it goes. Expected: OUT_OF_MEMORY (a memory
cgroup, or RLIMIT_AS), never more than the limit held."""

import mmap
import sys

from hostile import hostile_model, succeeded


def attack(x=None):
    maps = []
    for _ in range(24):  # 3 GiB
        m = mmap.mmap(-1, 128 << 20, flags=mmap.MAP_SHARED)
        for off in range(0, len(m), 4096):
            m[off] = 1
        maps.append(m)
        print(f"held {len(maps) * 128} MiB", file=sys.stderr, flush=True)
    succeeded(f"held {len(maps) * 128} MiB of shared anonymous memory")


Model, fit = hostile_model(attack, "train")
