"""``harness merge``: import runs into a store from ``--json`` result files (or other stores), each exactly once.

A run whose submission id is already stored for another folder is refused (``MergeReport.refused``),
as ``harness grade`` refuses it. Every run is keyed by its ``run_uid`` (the store's UNIQUE column): a file merged twice, or the same run
arriving through two files, adds it once. Result files written before ``run_uid`` was part of the JSON
get a deterministic uid from a hash of the run's content, so merging them twice is harmless too.
SKIPPED tracks are not runs and are not imported. Artifacts (sample grids, curves, logs) that exist
next to the result file or at their recorded path are copied into ``<store dir>/artifacts/<run_uid>/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from harness import tracks
from harness.manifest import same_submission
from harness.store import Run, Store


class MergeError(ValueError):
    pass


@dataclass
class MergeReport:
    added: int = 0
    present: int = 0
    skipped: int = 0
    refused: list[str] = field(default_factory=list)  # runs whose id belongs to another folder in the store
    per_file: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> (added, already present)


def _uid_for(sub: dict, track: str, t: dict) -> str:
    body = json.dumps({"sub": {k: sub.get(k) for k in ("id", "path", "sha256")}, "track": track, "run": t},
                      sort_keys=True, default=str)
    return "json-" + hashlib.sha256(body.encode()).hexdigest()[:32]


def runs_from_results(doc: dict, source: Path | None = None) -> list[Run]:
    """The runs recorded in one ``--json`` results object (SKIPPED tracks left out)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("submissions"), list):
        raise MergeError("not a harness results file (expected an object with a 'submissions' list)")
    runs = []
    for sub in doc["submissions"]:
        if not isinstance(sub, dict) or not isinstance(sub.get("tracks"), dict):
            raise MergeError("a submission entry has no 'tracks' object")
        for track, t in sub["tracks"].items():
            if track not in tracks.names():
                raise MergeError(f"{sub.get('id')}: unknown track '{track}'")
            if not isinstance(t, dict) or "status" not in t:
                raise MergeError(f"{sub.get('id')} {track}: no 'status'")
            if t["status"] == "SKIPPED":
                continue
            run = Run.from_result_json(sub, track, t, doc.get("harness_version"),
                                       str(t.get("run_uid") or _uid_for(sub, track, t)))
            runs.append(run)
    return runs


def _copy_artifacts(run: Run, source: Path | None, store: Store) -> None:
    """Copy the run's artifacts that can be found into the store's artifacts folder; keep the rest as is."""
    if not run.artifacts:
        return
    dest_dir = Path(store.path).parent / "artifacts" / run.run_uid
    new = {}
    for name, path in run.artifacts.items():
        p = Path(str(path))
        candidates = [p]
        if source is not None and not p.is_absolute():
            candidates.append(source.parent / p)
            if len(p.parts) >= 2:
                candidates.append(source.parent / "artifacts" / p.parts[-2] / p.parts[-1])
        found = next((c for c in candidates if c.is_file() and not c.is_symlink()), None)
        if found is None:
            new[name] = str(path)
            continue
        target = dest_dir / found.name
        if found.resolve() != target.resolve():
            dest_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, target)
        new[name] = str(target)
    run.artifacts = new


def _identity_owner(store: Store, run: Run) -> str | None:
    """The path of another folder that owns ``run``'s id in ``store`` (SPEC: another folder claiming a
    stored id is refused, never merged into that row), or None. Runs of the same path relative to a
    submissions root (a CI checkout of the course, another clone) are the same submission."""
    if not run.path:
        return None
    for other in store.runs(submission_id=run.submission_id):
        if other.kind == run.kind and other.path and other.path != run.path \
                and not same_submission(other.path, run.path):
            return other.path
    return None


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def merge_files(paths, store: Store) -> MergeReport:
    """Import every run of every file into ``store``; a run already there (same run_uid) is left alone."""
    report = MergeReport()
    for path in paths:
        path = Path(path)
        if _is_sqlite(path):
            if path.resolve() == Path(store.path).resolve():
                raise MergeError(f"{path}: is the target store itself")
            try:
                with Store(path) as other:
                    runs = other.runs()
            except sqlite3.DatabaseError as exc:
                raise MergeError(f"{path}: not a readable store ({exc})") from exc
            for r in runs:
                r.id = None
        else:
            try:
                doc = json.loads(path.read_text())
            except OSError as exc:
                raise MergeError(f"{path}: cannot read ({exc.strerror})") from exc
            except ValueError as exc:
                raise MergeError(f"{path}: not valid JSON ({exc})") from exc
            try:
                runs = runs_from_results(doc, path)
            except MergeError as exc:
                raise MergeError(f"{path}: {exc}") from exc
        added = present = 0
        for run in runs:
            if store.db.execute("SELECT 1 FROM runs WHERE run_uid = ?", (run.run_uid,)).fetchone():
                present += 1
                continue
            owner = _identity_owner(store, run)
            if owner is not None:
                report.refused.append(f"{path}: {run.track} run of '{run.submission_id}' from {run.path} refused: "
                                      f"that id already belongs to {owner}")
                continue
            _copy_artifacts(run, path, store)
            before = store.db.total_changes
            store.add(run)
            if store.db.total_changes > before:
                added += 1
            else:  # a parallel merge inserted it meanwhile
                present += 1
        report.added += added
        report.present += present
        report.per_file[str(path)] = (added, present)
    return report
