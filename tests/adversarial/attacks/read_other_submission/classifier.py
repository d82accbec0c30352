"""Hostile submission read_other_submission: expected CRASH."""

import os

from hostile import HOST, hostile_model, read_everything

PATHS = [os.path.join(HOST["good"], "classifier.py"), os.path.join(HOST["good"], "submission.yaml"),
         HOST["subs_root"]]
GLOBS = ["/tmp/harness-job-*/**", "/tmp/pytest-of-*/**/submission.yaml"]


def attack(x=None):
    read_everything(PATHS, GLOBS)


Model, fit = hostile_model(attack, 'train')
