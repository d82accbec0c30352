"""The leaderboard store: every run in SQLite (`db`), shard results merged in (`merge`), and the files
a run keeps beside the database (`artifacts`)."""

from harness.store.db import Run, Store, db_path

__all__ = ["Run", "Store", "db_path"]
