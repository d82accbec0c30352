"""Hostile submission import_reference_classifier (issue 10, item 2): wrap the grader's own reference
classifier (99.46% on the test set, no training) as the model. Expected: INVALID_SUBMISSION, as no
module of the harness but the ingestion runtime exists in the sandbox."""

import importlib
import os

from hostile import HOST, blocked, hostile_model, succeeded

MODULES = ["harness.scoring.reference_classifier", "harness.scoring", "harness.reference",
           "harness.grading.grade", "harness.store", "harness.data", "harness.competition"]


def attack(x=None):
    errors = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            errors.append(f"{name}: {type(e).__name__}")
            continue
        succeeded(f"imported {name} from {getattr(module, '__file__', '?')}")
    import harness

    found = sorted(os.listdir(os.path.dirname(harness.__file__)))
    if set(found) - {"__init__.py", "compat.py", "chainer_env.py", "ingestion", "__pycache__"}:
        succeeded(f"the harness package holds {found}")
    errors.append(f"harness/ holds only {found}")
    if os.path.exists(os.path.join(HOST["harness_dir"], "scoring")):
        succeeded("harness/scoring is visible")
    blocked("; ".join(errors))


Model, fit = hostile_model(attack, "init")
