"""Scoring side of each track: what goes into the ingestion process, and how what comes back is scored.

A track module defines ``NAME``, ``RANK_KEY``, ``HIGHER_IS_BETTER``, ``COLUMNS`` (leaderboard
columns as (metric key, header, format)), ``write_inputs(ctx, input_dir)`` and
``score(ctx, output_dir) -> (metrics, artifacts)``. None of them imports student code.
"""

import importlib

from harness.competition import TRACKS


def track_module(name: str):
    if name not in TRACKS:
        raise ValueError(f"unknown track '{name}' (known: {', '.join(TRACKS)})")
    return importlib.import_module(f"harness.tracks.{name}")
