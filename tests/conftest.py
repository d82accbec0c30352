import json
import shutil
from pathlib import Path

import pytest

from harness import data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist():
    return data.load_or_prepare()


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "store.db")


@pytest.fixture
def make_submission(tmp_path):
    """Copy a baseline or the template into tmp_path/<name>, optionally rewriting files."""

    def make(source: str, name: str | None = None, files: dict | None = None, manifest: str | None = None) -> Path:
        src = ROOT / source
        dst = tmp_path / "subs" / (name or src.name)
        shutil.copytree(src, dst)
        for rel, text in (files or {}).items():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_text(text)
        if manifest is not None:
            (dst / "submission.yaml").write_text(manifest)
        return dst

    return make


@pytest.fixture
def harness_cli(capsys):
    """Run the harness command in-process; returns (exit code, stdout, stderr)."""
    from harness.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def read_results(path) -> dict:
    return json.loads(Path(path).read_text())
