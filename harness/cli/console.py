"""The terminal the ``harness`` command writes to, and its exit codes (SPEC: Commands)."""

from __future__ import annotations

import sys

from rich.console import Console

from harness import tracks

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3
# Logs (CI, files) get a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class UnknownTrack(ValueError):
    """``--track`` names no registered track (exit code 2)."""


def known_tracks(asked) -> tuple[str, ...]:
    """The tracks ``--track`` asks for (every registered one when none), each checked by name. Tracks
    come from the registry at run time, so a track folder listed in competition.yaml counts too."""
    known = tracks.names()
    if not asked:
        return known
    bad = [t for t in asked if t not in known]
    if bad:
        raise UnknownTrack(f"--track {bad[0]}: unknown track (known: {', '.join(known)})")
    return tuple(asked)
