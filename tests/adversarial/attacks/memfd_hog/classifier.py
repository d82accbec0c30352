"""Hostile submission memfd_hog (issue 10, item 7): pages written to a memfd count against neither
RLIMIT_DATA nor RLIMIT_AS; a run under memory_mb 512 held 4.9 GiB this way. Prints how much it holds
as it goes (the harness keeps the last lines of stderr). Expected: OUT_OF_MEMORY (a memory cgroup)
or CRASH (memfd_create refused by the seccomp filter), never more than the limit held."""

import os
import sys

from hostile import blocked, err, hostile_model, succeeded


def attack(x=None):
    chunk = b"\1" * (32 << 20)
    held, fds = 0, []
    while held < (3 << 30):
        try:  # one memfd per chunk: RLIMIT_FSIZE caps each memfd, not their sum
            fds.append(os.memfd_create("hog"))
        except OSError as e:
            blocked(f"memfd_create: {err(e)}")
        os.write(fds[-1], chunk)
        held += len(chunk)
        print(f"held {held >> 20} MiB", file=sys.stderr, flush=True)
    succeeded(f"held {held >> 20} MiB in a memfd")


Model, fit = hostile_model(attack, "train")
