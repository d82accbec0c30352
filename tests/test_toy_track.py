"""Adding a track is one folder plus configuration: tests/toy_track/ declares a "parity" track
(track.py, scorer.py, ingestion.py) and its competition.yaml lists it. Graded end to end through the
CLI, in the real sandbox, next to the built-in tracks, and shown on its own leaderboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import sandbox, tracks

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "toy_track"


def harness(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not sandbox.sandbox_available()[0], reason="bubblewrap is not available here")
def test_a_track_folder_grades_end_to_end_through_the_cli(tmp_path):
    sub = tmp_path / "submissions" / "parity-student"
    shutil.copytree(TOY / "submission", sub)
    db, out = tmp_path / "store.db", tmp_path / "results.json"
    config = TOY / "competition.yaml"
    r = harness("grade", sub, "--quick", "--config", config, "--db", db, "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())["submissions"][0]
    parity = result["tracks"]["parity"]
    assert parity["status"] == "OK", parity
    assert parity["isolation"] == "bubblewrap"
    assert 0.75 < parity["metrics"]["parity_accuracy"] <= 1.0  # a real model, trained seconds, beats chance (0.5)
    assert result["tracks"]["classify"]["status"] == "SKIPPED"  # the built-in tracks are still there
    board = harness("leaderboard", "--quick", "--track", "parity", "--format", "json", "--config", config, "--db", db)
    assert board.returncode == 0, board.stderr
    assert "parity-student" in board.stdout and "parity_accuracy" in board.stdout
    # without the configuration the track does not exist: a clear usage error, not a traceback
    r = harness("grade", sub, "--quick", "--track", "parity", "--db", db)
    assert r.returncode == 2 and "unknown track" in r.stderr, r.stderr


def test_a_track_folder_registers_one_track_with_its_files(tmp_path):
    track = tracks.load_folder(TOY)
    try:
        assert track.name == "parity" and track.is_plugin
        assert Path(track.scorer).is_file() and Path(track.ingestion).is_file()
        assert track.ingestion_module() == "harness.ingestion.plugin_parity"
        assert hasattr(track.scorer_module(), "score")
        bad = tmp_path / "bad"
        bad.mkdir()
        with pytest.raises(ValueError, match="track.py"):
            tracks.load_folder(bad)
    finally:
        tracks.unregister("parity")
    assert "parity" not in tracks.names()
