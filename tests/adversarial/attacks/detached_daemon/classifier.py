"""Hostile submission detached_daemon: expected OK."""

import os
import signal
import time

import numpy as np
from hostile import HOST, hostile_model


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def attack(x=None):
    main = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)
                while not gone(main):
                    time.sleep(0.005)
                time.sleep(1.0)  # the run is over: the harness is scoring (if this process still lives)
                bad = np.full((10000, 10), np.nan, np.float32)
                for i in range(12000):  # ~2 minutes: spoils the score, and outlives the run
                    for p in (os.path.join(HOST["marker_dir"], "daemon-alive"), "/output/daemon-alive"):
                        try:
                            with open(p, "w") as f:
                                f.write(str(i))
                        except OSError:
                            pass
                    try:
                        np.save("/output/test_logits.npy", bad)
                    except OSError:
                        pass
                    time.sleep(0.01)
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)


Model, fit = hostile_model(attack, 'train')
