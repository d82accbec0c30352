import json
import os
import sys
import time

import chainer
import chainer.links as L

HOSTILE = ("\x1b[2J\x1b[H\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b]52;c;ZXZpbA==\x07\x9b31m "
           "[/] [bold red]x [x](http://evil.example) ![](http://evil.example/i.png) <img src=x>")


def publish_hostile_progress(seconds=1.2):
    """Overwrite the harness's progress file with a hostile phase long enough for the grader to read it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tmp = "/output/.hostile-progress"
        try:
            with open(tmp, "w") as f:
                json.dump({"phase": "[/]" + HOSTILE, "done": 1, "total": 2}, f)
            os.replace(tmp, "/output/progress.json")
        except OSError:
            return
        time.sleep(0.05)


class Model(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(784, 10)
        sys.stderr.write("stderr says " + HOSTILE + "\n")
        publish_hostile_progress()
        raise RuntimeError("hostile message " + HOSTILE)

    def forward(self, x):
        return self.linear(x)
