"""Small files the scoring side keeps per run (``<store dir>/artifacts/<run_uid>/``), and finding them again.

A run's ``artifacts`` maps a name to a path: ``samples_grid`` (PNG, generate), ``confusion_matrix``
(JSON, classify), ``roc_curves`` (JSON, anomaly), ``log`` (text: the last lines the student's code
logged). Paths are stored as written, usually relative to the folder the grade ran in; readers
resolve them with :func:`resolve` so that a store moved (or merged) with its ``artifacts/`` folder
still finds them.

Every file is written to a temporary name beside it and renamed into place (:func:`write_atomic`), and
the run's row is stored only after its scorer returned: a grader killed at any point leaves no
half-written file under a name a row points to (a killed run's folder is named by no row, so
nothing shows it).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

LOG_LINES = 60
LOG_LINE_CHARS = 400
MAX_ARTIFACT_BYTES = 8 << 20


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed and renamed:
    ``path`` holds the old content or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json(folder: Path, name: str, obj) -> str:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_atomic(path, json.dumps(obj, separators=(",", ":")).encode())
    return str(path)


def log_tail(lines, n: int = LOG_LINES) -> list[str]:
    """The last ``n`` lines of an untrusted log list, as plain strings of bounded length."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, (list, tuple)):
        return []
    out = []
    for line in list(lines)[-n:]:
        text = str(line).replace("\r", "")
        for part in text.split("\n"):
            out.append(part[:LOG_LINE_CHARS])
    return out[-n:]


def save_log(folder: Path, lines, name: str = "log.txt") -> dict:
    """Keep the last lines of the student's log (meta.json's ``log``, or captured stdout) as ``log``."""
    tail = log_tail(lines)
    if not tail:
        return {}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_atomic(path, ("\n".join(tail) + "\n").encode("utf-8", errors="replace"))
    return {"log": str(path)}


def resolve(path: str | os.PathLike | None, store_path: str | os.PathLike | None = None) -> Path | None:
    """An existing artifact file: the stored path itself, else under ``<store dir>/artifacts/`` by its
    run folder and name (a store moved or merged together with its artifacts folder); None if gone."""
    if not path:
        return None
    p = Path(path)
    candidates = [p]
    if store_path is not None:
        root = Path(store_path).parent / "artifacts"
        parts = p.parts
        if len(parts) >= 2:
            candidates.append(root / parts[-2] / parts[-1])
        candidates.append(root / p.name)
        if not p.is_absolute():
            candidates.append(Path(store_path).parent / p)
    for c in candidates:
        try:
            if c.is_file() and not c.is_symlink():
                return c
        except OSError:
            continue
    return None


def read_json_artifact(path, store_path=None):
    p = resolve(path, store_path)
    if p is None or p.stat().st_size > MAX_ARTIFACT_BYTES:
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def read_text_artifact(path, store_path=None) -> str | None:
    p = resolve(path, store_path)
    if p is None or p.stat().st_size > MAX_ARTIFACT_BYTES:
        return None
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def png_data_uri(path, store_path=None) -> str | None:
    """``data:image/png;base64,...`` of a PNG artifact (checked by its signature), or None."""
    p = resolve(path, store_path)
    if p is None or p.stat().st_size > MAX_ARTIFACT_BYTES:
        return None
    data = p.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
