"""The terminal the ``harness`` command writes to, and its exit codes (SPEC: Commands)."""

from __future__ import annotations

import sys

from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3
# Logs (CI, files) get a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
