"""Hostile submission overwrite_harness: expected INVALID_SUBMISSION."""

import errno
import os
import sys

import numpy as np
from hostile import HOST, blocked, hostile_model, succeeded


def attack(x=None):
    targets = ["/submission/classifier.py", "/submission/pwned.py",
               os.path.join(HOST["harness_dir"], "grading", "grade.py"), os.path.join(HOST["harness_dir"], "pwned.py"),
               os.path.join(os.path.dirname(np.__file__), "__init__.py"), os.path.join(HOST["mnist_dir"], "pwned.py"),
               "/input/job.json", "/input/test_x.npy", "/etc/passwd", sys.executable, "/pwned", "/usr/lib/pwned"]
    errors = []
    for t in targets:
        try:
            with open(t, "a") as f:
                f.write("\n# PWNED\n")
        except OSError as e:
            errors.append(f"{t}: {errno.errorcode.get(e.errno, e.errno)}")  # EACCES (root), EROFS
            continue
        succeeded(f"appended to {t}")
    blocked("; ".join(errors))


Model, fit = hostile_model(attack, 'init')
