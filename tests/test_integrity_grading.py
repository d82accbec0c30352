"""Integrity of one class's grading (issue 10, items 1, 6 and 9): hostile files in a submission, or
written by its run, end as a status on that submission's own row with a short message, never as a
harness traceback; the results file is always written; the good submission beside them scores
exactly what it scores alone.

The attacks are real submission folders under ``tests/adversarial/attacks/<name>/``. What cannot be
committed is made here, at test time: the 1,100-deep folder chain (deep_tree) and the 32 GiB sparse
file (sparse_file, ``truncate -s 32G``: no blocks on disk). The 2.3-million-member npz is written by
the student's own code at exit (npz_member_bomb). All are graded in ONE ``harness grade --quick
--track classify`` call, through the real sandbox, with the short limits of
``tests/adversarial/competition.yaml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ADVERSARIAL_CONFIG as CONFIG, ROOT, copy_attack, read_results, softmax_submission
from harness import manifest, sandbox
from harness.store import Store
from harness.store.merge import merge_files


# attack -> (status, words the message must contain)
EXPECTED = {
    # an unreadable error.json claims nothing (as a FIFO there does): the run ended well and is scored
    "nested_error_json": ("OK", ""),
    "deep_tree": ("INVALID_SUBMISSION", "folders nested more than 32 deep"),
    # good outputs, then 1,100 nested folders left in /output: scored, and the work folder removed
    "deep_output_tree": ("OK", ""),
    "yaml_alias_bomb": ("INVALID_SUBMISSION", "anchors (&name) and aliases (*name) are not allowed"),
    "sparse_file": ("INVALID_SUBMISSION", "data.bin: the submission is larger than 256.0 MiB"),
    "forged_params_atexit": ("INVALID_OUTPUT", "model.npz: member 'linear/W.npy' declares shape (-123456,)"),
    "npz_member_bomb": ("INVALID_OUTPUT", "model.npz: the archive lists 2,300,000 members"),
}

pytestmark = pytest.mark.skipif(not sandbox.sandbox_available()[0],
                                reason=f"bubblewrap sandbox unavailable: {sandbox.sandbox_available()[1]}")


def rm_rf(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=True)  # shutil.rmtree recurses: not for 1,100 levels


@pytest.fixture
def attack_folders(tmp_path):
    subs = tmp_path / "subs"
    good = softmax_submission(subs / "good")
    folders = {"good": good}
    for name in EXPECTED:
        folders[name] = copy_attack(name, subs / name)
    d = folders["deep_tree"]
    for _ in range(1100):
        d = d / "d"
        os.mkdir(d)
    subprocess.run(["truncate", "-s", "32G", str(folders["sparse_file"] / "data.bin")], check=True)
    # a second folder named `good`, outside any submissions root: the same id as the first
    folders["identity_clash"] = copy_attack("identity_clash/good", tmp_path / "elsewhere" / "good")
    yield folders
    rm_rf(tmp_path / "subs")


def test_one_grade_call_isolates_every_attack(attack_folders, harness_cli, tmp_path):
    good = attack_folders["good"]
    db, alone_db = tmp_path / "class.db", tmp_path / "alone.db"
    code, _, _ = harness_cli("grade", good, "--quick", "--track", "classify", "--config", CONFIG,
                             "--db", alone_db, "--json", tmp_path / "alone.json")
    assert code == 0
    alone = read_results(tmp_path / "alone.json")["submissions"][0]["tracks"]["classify"]

    order = ["good"] + list(EXPECTED) + ["identity_clash"]
    started = time.monotonic()
    code, out, err = harness_cli("grade", *[attack_folders[n] for n in order], "--quick", "--track", "classify",
                                 "--config", CONFIG, "--db", db, "--json", tmp_path / "class.json")
    elapsed = time.monotonic() - started
    assert code == 1  # some submissions failed; none stopped the call
    assert "Traceback" not in out + err
    results = read_results(tmp_path / "class.json")["submissions"]  # the results file is written
    assert [Path(r["path"]) for r in results] == [attack_folders[n].resolve() for n in order]
    by_name = dict(zip(order, results))

    # the good submission: OK, with exactly the metrics it scores alone
    mine = by_name["good"]["tracks"]["classify"]
    assert mine["status"] == "OK", mine["message"]
    for key in set(alone["metrics"]) - {"train_seconds"}:
        assert mine["metrics"][key] == alone["metrics"][key], key
    assert mine["metrics"]["params"] == 7850
    for name in ("nested_error_json", "deep_output_tree"):  # the attack gained nothing: the same scores
        assert by_name[name]["tracks"]["classify"]["metrics"]["test_accuracy_public"] == \
            mine["metrics"]["test_accuracy_public"], name

    for name, (status, words) in EXPECTED.items():
        t = by_name[name]["tracks"]["classify"]
        assert (t["status"], name) == (status, name), t["message"]
        assert words in t["message"], (name, t["message"])
        assert len(t["message"]) < 2100, name
    for name in ("deep_tree", "yaml_alias_bomb", "sparse_file"):  # refused before any sandbox ran
        assert by_name[name]["tracks"]["classify"]["seconds"] == 0, name

    # identity: the second `good` is refused, naming both folders, and stored nowhere
    clash = by_name["identity_clash"]
    t = clash["tracks"]["classify"]
    assert clash["id"] == "good" and t["status"] == "INVALID_SUBMISSION"
    assert str(good.resolve()) in t["message"] and str(attack_folders["identity_clash"].resolve()) in t["message"]
    with Store(db) as store:
        rows = store.runs(submission_id="good")
        assert [(r.path, r.status) for r in rows] == [(str(good.resolve()), "OK")]
        # `harness merge` of the results file refuses the impostor's run the same way
        report = merge_files([tmp_path / "class.json"], store)
        assert report.added == 0 and len(report.refused) == 1 and "already belongs to" in report.refused[0]
        assert len(store.runs(submission_id="good")) == 1
    assert elapsed < 120, elapsed


def test_check_refuses_the_alias_bomb_at_once(harness_cli, tmp_path):
    started = time.monotonic()
    # a short folder (no longer than the attack's own path): check's terminal output must not wrap the words
    with tempfile.TemporaryDirectory(prefix="h") as short:
        bomb = copy_attack("yaml_alias_bomb", Path(short) / "yaml_alias_bomb")
        code, out, _ = harness_cli("check", bomb, "--config", CONFIG, "--db", tmp_path / "s.db")
    assert code == 1 and "anchors (&name) and aliases (*name) are not allowed" in out
    assert time.monotonic() - started < 10


def test_submission_ids_are_paths_relative_to_the_submissions_root(tmp_path):
    team = tmp_path / "course" / "submissions" / "team2" / "good"
    team.mkdir(parents=True)
    assert manifest.submission_id(team) == "team2/good"
    assert manifest.submission_id(tmp_path / "course" / "submissions" / "team2") == "team2"
    assert manifest.submission_id(ROOT / "baselines" / "softmax-regression") == "softmax-regression"
    assert manifest.submission_id(tmp_path) == tmp_path.name  # outside a root: the folder's name
    # a clone or CI checkout of the course is the same submission; another folder is not
    assert manifest.same_submission("/home/runner/work/c/c/submissions/team2/good", team)
    assert not manifest.same_submission("/home/runner/work/c/c/submissions/good", team)
    assert not manifest.same_submission(str(tmp_path / "good"), team)
    assert manifest.same_submission(str(team), team)


def test_results_json_is_valid_after_a_nested_error(tmp_path):
    """The nested error.json is refused by the bounded reader without recursion in the trusted process."""
    from harness.scoring.outputs import InvalidOutput, read_json

    (tmp_path / "error.json").write_text("[" * 8000)
    (tmp_path / "deep.json").write_text('{"a": ' * 40 + "1" + "}" * 40)
    (tmp_path / "ok.json").write_text(json.dumps({"status": "CRASH", "message": ["x"] * 3}))
    for name in ("error.json", "deep.json"):
        with pytest.raises(InvalidOutput, match="nested"):
            read_json(tmp_path, name)
    assert read_json(tmp_path, "ok.json")["status"] == "CRASH"
