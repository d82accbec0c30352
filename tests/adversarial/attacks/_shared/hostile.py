"""Shared by the hostile submissions of tests/test_adversarial.py: ``conftest.copy_attack`` copies this
file beside each one's classifier.py together with host.json (the host paths, sockets and pids the
attack goes for).

An attack that works says so (``ATTACK SUCCEEDED: ...``); one that is stopped raises
``attack blocked: <what stopped it>``. ``hostile_model(attack, when)`` gives the submission's Model
and train function, running the attack in ``__init__`` ("init"), ``forward`` or the train function.
"""

import glob
import json
import os

import chainer
import chainer.links as L

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "host.json")) as _f:
    HOST = json.load(_f)


def succeeded(what):
    raise RuntimeError("ATTACK SUCCEEDED: " + str(what)[:500])


def blocked(what):
    raise RuntimeError("attack blocked: " + str(what)[:1500])


def err(exc):
    return f"{type(exc).__name__}: {exc}"


def try_each(steps):
    """Run each ``(name, fn)``; succeed at the first that raises no OSError, else block naming them all."""
    errors = []
    for name, fn in steps:
        try:
            fn()
        except OSError as e:
            errors.append(f"{name}: {err(e)}")
            continue
        succeeded(name)
    blocked("; ".join(errors))


def fill_file(target, limit=2 << 30):
    """Write 1 MiB chunks of 0xff to ``target`` up to ``limit`` bytes: succeeds only if nothing stops it."""
    chunk = b"\xff" * (1 << 20)
    written = 0
    with open(target, "wb") as f:
        while written < limit:
            f.write(chunk)
            f.flush()
            written += len(chunk)
    succeeded(f"wrote {written >> 20} MiB to {target}")


def read_everything(paths, globs, extra=None):
    """Try to read every path and match every glob; succeed at the first hit, else block."""
    errors = []
    for p in paths:
        try:
            if os.path.isdir(p):
                found = os.listdir(p)
                if found:
                    succeeded(f"listed {p}: {found[:5]}")
                errors.append(f"{p}: empty folder")
                continue
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError as e:
            errors.append(f"{p}: {type(e).__name__}")
            continue
        succeeded(f"read {p}: {head!r}")
    for pattern in globs:
        hits = glob.glob(pattern, recursive=True)
        if hits:
            succeeded(f"found {hits[:3]}")
        errors.append(f"{pattern}: nothing")
    if extra is not None:
        extra(errors)
    blocked("; ".join(errors))


def hostile_model(attack, when):
    class Model(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.linear = L.Linear(784, 10)
            if when == "init":
                attack()

        def forward(self, x):
            if when == "forward":
                out = attack(x)
                if out is not None:
                    return out
            return self.linear(x)

    def fit(model, data, settings):
        if when == "train":
            attack()

    return Model, fit
