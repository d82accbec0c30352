"""The leaderboard store: a SQLite database that keeps every run, never only the latest.

Writers from parallel jobs and processes are safe: WAL journal, a busy timeout, one short
``BEGIN IMMEDIATE`` transaction per insert, and a unique ``run_uid`` so a merge never duplicates.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.text import clip_text

DEFAULT_DB = Path("leaderboard") / "leaderboard.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_uid TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'submission',   -- submission | baseline | reference
    track TEXT NOT NULL,
    profile TEXT NOT NULL,                     -- full | quick
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    seconds REAL,
    device TEXT,
    seed INTEGER,
    isolation TEXT,
    clamped TEXT NOT NULL DEFAULT '{}',
    artifacts TEXT NOT NULL DEFAULT '{}',
    harness_version TEXT,
    versions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_track ON runs (track, profile, submission_id, id);
CREATE INDEX IF NOT EXISTS runs_by_sha ON runs (submission_id, sha256, track, profile);
CREATE INDEX IF NOT EXISTS runs_by_kind ON runs (kind, track, profile);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# The keys of one track of a ``--json`` results file (SPEC: Results), plus what ``harness merge`` needs
# to store the run exactly once (run_uid, created_at, profile, kind).
RESULT_KEYS = ("status", "message", "metrics", "seconds", "device", "seed", "isolation", "clamped", "artifacts",
               "run_uid", "created_at", "profile", "kind")


@dataclass
class Run:
    """One graded track of one submission: the one record of a run, from the grade (which fills in the
    outcome first, :meth:`outcome`, and the submission's identity when it records the run) to the store,
    the ``--json`` results (:meth:`result_json`), ``harness merge`` (:meth:`from_result_json`) and
    every export."""

    submission_id: str = ""
    name: str = ""
    path: str = ""
    sha256: str = ""
    track: str = ""
    profile: str = ""
    status: str = ""
    message: str = ""
    metrics: dict = field(default_factory=dict)
    seconds: float | None = None
    device: str | None = None
    seed: int | None = None
    isolation: str | None = None
    clamped: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    kind: str = "submission"
    harness_version: str | None = None
    versions: dict = field(default_factory=dict)  # python, numpy, chainer, the config hash, the convolution
    run_uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    id: int | None = None

    @classmethod
    def outcome(cls, status: str, message: str = "", **fields) -> "Run":
        """A run as grading first knows it: its status and message (and what else is known). A run that
        never started reports 0 seconds on no device (as ``--json`` always has)."""
        return cls(status=status, message=message, **{"seconds": 0.0, "device": "", "isolation": "", **fields})

    @property
    def convolution(self) -> str:
        """The CPU convolution the ingestion ran (``harness-fast-conv`` or ``chainer``; "" if unknown)."""
        return str(self.versions.get("convolution", ""))

    def as_json(self) -> dict:
        d = asdict(self)
        d.pop("id")
        return d

    def result_json(self) -> dict:
        """This run as one track of a ``--json`` results file."""
        d = {k: getattr(self, k) for k in RESULT_KEYS}
        if self.convolution:
            d["convolution"] = self.convolution
        return d

    @classmethod
    def from_result_json(cls, sub: dict, track: str, t: dict, harness_version: str | None, run_uid: str) -> "Run":
        """The run one track of a results file describes (``sub``: its submission entry)."""
        run = cls(submission_id=str(sub.get("id", "")), name=str(sub.get("name", sub.get("id", ""))),
                  path=str(sub.get("path", "")), sha256=str(sub.get("sha256", "")), track=track,
                  profile=str(t.get("profile") or "full"), status=str(t["status"]),
                  message=str(t.get("message", "")), metrics=dict(t.get("metrics") or {}),
                  seconds=t.get("seconds"), device=t.get("device"), seed=t.get("seed"),
                  isolation=t.get("isolation"), clamped=dict(t.get("clamped") or {}),
                  artifacts=dict(t.get("artifacts") or {}), kind=str(t.get("kind") or "submission"),
                  harness_version=sub.get("harness_version") or harness_version, run_uid=run_uid,
                  versions={"convolution": str(t["convolution"])} if t.get("convolution") else {})
        if t.get("created_at"):
            run.created_at = str(t["created_at"])
        return run


JSON_COLUMNS = ("metrics", "clamped", "artifacts", "versions")


def db_path(explicit: str | os.PathLike | None = None) -> Path:
    """``--db`` > ``$HARNESS_DB`` > ``leaderboard/leaderboard.db``."""
    return Path(explicit or os.environ.get("HARNESS_DB") or DEFAULT_DB)


class Store:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = db_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 60000")
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # a read-only or network file system: fall back to the default journal
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute("INSERT OR IGNORE INTO settings VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def add(self, run: Run) -> Run:
        """Insert a run (ignored if its run_uid is already stored); returns it with its id."""
        run.message, run.name = clip_text(run.message), clip_text(run.name, 200)
        d = run.as_json()
        for key in JSON_COLUMNS:
            d[key] = json.dumps(d[key], sort_keys=True)
        cols = ", ".join(d)
        marks = ", ".join("?" for _ in d)
        with self.transaction():
            cur = self.db.execute(f"INSERT OR IGNORE INTO runs ({cols}) VALUES ({marks})", list(d.values()))
            run.id = cur.lastrowid if cur.rowcount else self.db.execute(
                "SELECT id FROM runs WHERE run_uid = ?", (run.run_uid,)).fetchone()[0]
        return run

    def runs(self, track: str | None = None, profile: str | None = None, submission_id: str | None = None,
             path: str | None = None) -> list[Run]:
        """Every stored run matching the filters, oldest first."""
        where, args = [], []
        for col, value in (("track", track), ("profile", profile), ("submission_id", submission_id), ("path", path)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at, id"
        return [_row_to_run(r) for r in self.db.execute(sql, args)]

    def stored_run(self, submission_id: str, sha256: str, track: str, profile: str, kind: str,
                   config: str | None, skip_statuses=("SANDBOX_UNAVAILABLE", "SKIPPED")) -> Run | None:
        """The latest stored run of exactly this tree (``sha256``) for the track, profile and kind whose
        ``versions["config"]`` is ``config`` (the effective competition config, see
        :func:`harness.grading.plan.config_sha256`), and whose status is a verdict on the submission
        (OK or a failure of its own, not an unavailable sandbox); None when it must be graded."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE submission_id = ? AND sha256 = ? AND track = ? AND profile = ? AND kind = ? "
            "ORDER BY created_at DESC, id DESC", (submission_id, sha256, track, profile, kind))
        for row in rows:
            run = _row_to_run(row)
            if run.status not in skip_statuses and run.versions.get("config") == config:
                return run
        return None

    def last_seconds(self, submission_id: str, track: str, profile: str, kind: str = "submission") -> float | None:
        """How long the latest timed run of a submission's track took (seconds), or None without history."""
        row = self.db.execute(
            "SELECT seconds FROM runs WHERE submission_id = ? AND track = ? AND profile = ? AND kind = ? "
            "AND seconds > 0 AND status != 'SANDBOX_UNAVAILABLE' ORDER BY created_at DESC, id DESC LIMIT 1",
            (submission_id, track, profile, kind)).fetchone()
        return float(row[0]) if row else None

    def seconds_of_kind(self, track: str, profile: str, kind: str = "baseline") -> list[float]:
        """The run time of every timed OK run of ``kind`` (baselines by default) for a track and profile."""
        return [float(r[0]) for r in self.db.execute(
            "SELECT seconds FROM runs WHERE kind = ? AND track = ? AND profile = ? AND status = 'OK' "
            "AND seconds > 0 ORDER BY id", (kind, track, profile))]

    def run_uids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT run_uid FROM runs")}

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))

    @property
    def revealed(self) -> bool:
        return self.get_setting("revealed", "0") == "1"


def _row_to_run(row: sqlite3.Row) -> Run:
    d = dict(row)
    for key in JSON_COLUMNS:
        d[key] = json.loads(d[key] or "{}")
    return Run(**d)
