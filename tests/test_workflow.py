"""The instructor's and CI's workflow, end to end on tiny real submissions (issue 6).

Seven softmax-regression submissions (one broken) are graded as two shards by two `harness grade`
PROCESSES at once, each with `--jobs 2` (threads), all writing the same store; each shard also writes
its own results JSON, JUnit XML, Gradescope JSON and Markdown summary. Then: merge (exactly once),
the CI files against their schemas, thresholds, reveal, history, and the HTML pages in headless
Chromium. The quick profile is shrunk to 2,000 training images by a course competition.yaml.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli, small_quick_config, softmax_submission
from harness.store import Run, Store

DATA = Path(__file__).resolve().parent / "data"
OK_IDS = [f"s{i}" for i in range(1, 7)]
BROKEN = "zz-broken"


@pytest.fixture
def cli(capsys):
    """The harness command in-process (fast); returns a CompletedProcess-like result."""
    from harness.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def klass(tmp_path_factory, mnist):
    """Grade the class: two shard processes at once, --jobs 2 each, one shared store."""
    tmp = tmp_path_factory.mktemp("class")
    cfg = small_quick_config(tmp)
    subs = tmp / "submissions"
    for i, sid in enumerate(OK_IDS, 1):
        softmax_submission(subs / sid, name=f"Student {i}", lr=[0.05, 0.1, 0.15, 0.2, 0.3, 0.5][i - 1])
    softmax_submission(subs / BROKEN, name="Student 9", lr=0.1)
    (subs / BROKEN / "classifier.py").write_text("raise RuntimeError('this submission is broken on purpose')\n")
    shared = tmp / "shared" / "leaderboard.db"
    paths = sorted(str(p) for p in subs.iterdir())
    procs = []
    for k in (1, 2):
        # --private: the instructor grades the class in shards to merge them, so the shard files carry every
        # metric (without it they carry only what a student may see, and the private half would be lost)
        argv = [sys.executable, "-m", "harness.cli", "grade", *paths, "--quick", "--no-sandbox", "--jobs", "2", "--private",
                "--shard", f"{k}/2", "--db", shared, "--config", cfg, "--json", tmp / f"results-{k}.json",
                "--junit", tmp / f"junit-{k}.xml", "--gradescope", tmp / f"gradescope-{k}.json",
                "--summary-md", tmp / f"summary-{k}.md"]
        procs.append(subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=tmp))
    outs = [p.communicate(timeout=600) for p in procs]
    return {"tmp": tmp, "cfg": cfg, "subs": subs, "shared": shared, "codes": [p.returncode for p in procs],
            "outs": outs, "results": [json.loads((tmp / f"results-{k}.json").read_text()) for k in (1, 2)]}


def uids_of(results: dict) -> set[str]:
    return {t["run_uid"] for s in results["submissions"] for t in s["tracks"].values() if t["status"] != "SKIPPED"}


@pytest.fixture(scope="module")
def merged(klass):
    db = klass["tmp"] / "merged" / "leaderboard.db"
    r = run_cli("merge", klass["tmp"] / "results-1.json", klass["tmp"] / "results-2.json", "--db", db)
    assert r.returncode == 0, r.stderr
    return db


# ----------------------------------------------------------------- sharding, parallel writers, merge

def test_shards_partition_the_sorted_submissions(klass):
    ids = [[s["id"] for s in res["submissions"]] for res in klass["results"]]
    everything = sorted(OK_IDS + [BROKEN])
    assert ids[0] == everything[0::2] and ids[1] == everything[1::2]  # sorted[K-1::N]
    assert not set(ids[0]) & set(ids[1])
    # the shard holding the broken submission fails; the other, with low scores only, passes
    assert klass["codes"] == [1, 0], klass["outs"]
    broken = next(s for s in klass["results"][0]["submissions"] if s["id"] == BROKEN)
    assert broken["tracks"]["classify"]["status"] in ("CRASH", "INVALID_SUBMISSION")
    assert "broken on purpose" in broken["tracks"]["classify"]["message"]
    for res in klass["results"]:
        for s in res["submissions"]:
            t = s["tracks"]["classify"]
            assert len(t["run_uid"]) == 32 and t["created_at"] and t["profile"] == "quick" and t["kind"] == "submission"


def test_parallel_processes_and_jobs_lose_or_corrupt_no_row(klass):
    expected = uids_of(klass["results"][0]) | uids_of(klass["results"][1])
    assert len(expected) == 7
    con = sqlite3.connect(klass["shared"])
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT run_uid, submission_id, status, metrics FROM runs").fetchall()
    finally:
        con.close()
    assert sorted(r[0] for r in rows) == sorted(expected)  # every run, once
    by_id = {r[1]: r for r in rows}
    for sid in OK_IDS:
        assert by_id[sid][2] == "OK" and 0.5 < json.loads(by_id[sid][3])["test_accuracy"] < 1


def test_store_survives_many_concurrent_writers(tmp_path):
    """8 threads and 4 processes insert 50 runs each into one store: 600 rows, none lost, none doubled."""
    import threading

    db = tmp_path / "store.db"
    Store(db).close()
    code = ("import sys\nfrom harness.store import Store, Run\n"
            "with Store(sys.argv[1]) as s:\n"
            "    for i in range(50):\n"
            "        s.add(Run(f'p{sys.argv[2]}-{i}', 'n', 'p', '', 'classify', 'quick', 'OK', metrics={'i': i}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(k)]) for k in range(4)]

    def writer(k):
        with Store(db) as s:
            for i in range(50):
                s.add(Run(f"t{k}-{i}", "n", "p", "", "classify", "quick", "OK", metrics={"i": i}))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with Store(db) as s:
        runs = s.runs()
        assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(runs) == 600 and len({r.run_uid for r in runs}) == 600
    assert {r.submission_id for r in runs} == {f"p{k}-{i}" for k in range(4) for i in range(50)} | \
        {f"t{k}-{i}" for k in range(8) for i in range(50)}


def test_merge_imports_every_run_exactly_once(cli, klass, merged):
    expected = uids_of(klass["results"][0]) | uids_of(klass["results"][1])
    with Store(merged) as s:
        first = s.runs()
    assert sorted(r.run_uid for r in first) == sorted(expected)
    by_uid = {t["run_uid"]: t for res in klass["results"] for s in res["submissions"] for t in s["tracks"].values()}
    for r in first:  # the run as graded: same uid, date, metrics
        assert r.created_at == by_uid[r.run_uid]["created_at"] and r.metrics == by_uid[r.run_uid]["metrics"]
    again = cli("merge", klass["tmp"] / "results-1.json", klass["tmp"] / "results-2.json", "--db", merged)
    assert again.returncode == 0 and "0 added, 7 already stored" in again.stdout
    into_shared = cli("merge", klass["tmp"] / "results-2.json", "--db", klass["shared"])
    assert "0 added" in into_shared.stdout
    # a whole store merges too, and a result file after it adds nothing
    other = klass["tmp"] / "from-store" / "leaderboard.db"
    assert cli("merge", klass["shared"], "--db", other).returncode == 0
    assert cli("merge", klass["tmp"] / "results-1.json", "--db", other).returncode == 0
    for db in (merged, klass["shared"], other):
        with Store(db) as s:
            runs = s.runs()
        assert sorted(r.run_uid for r in runs) == sorted(expected), db
    # artifacts come along: the confusion matrices are readable from the merged store
    from harness.store.artifacts import read_json_artifact

    r = next(r for r in first if r.submission_id == "s1")
    assert read_json_artifact(r.artifacts["confusion_matrix"], merged)["public"]


def test_merge_rejects_what_is_not_a_results_file(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    r = cli("merge", bad, "--db", tmp_path / "x.db")
    assert r.returncode == 2 and "not a harness results file" in r.stderr
    # an old results file without run_uid still merges once (a uid from its content)
    doc = {"harness_version": "0", "submissions": [{"id": "old", "name": "Old", "path": "p", "sha256": "a" * 64,
           "tracks": {"classify": {"status": "OK", "message": "", "metrics": {"test_accuracy_public": 0.9},
                                   "seconds": 1, "device": "@numpy", "seed": 0, "isolation": "none", "clamped": {}}}}]}
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    for _ in range(2):
        assert cli("merge", old, "--db", tmp_path / "x.db").returncode == 0
    with Store(tmp_path / "x.db") as s:
        assert len(s.runs()) == 1


# ----------------------------------------------------------------- CI artefacts

def test_junit_is_valid_and_has_one_testcase_per_submission_and_track(klass):
    from harness.competition import TRACKS

    for k, res in zip((1, 2), klass["results"]):
        path = klass["tmp"] / f"junit-{k}.xml"
        root = ET.parse(path).getroot()
        assert root.tag == "testsuites"
        suites = root.findall("testsuite")
        assert [s.get("name") for s in suites] == [s["id"] for s in res["submissions"]]
        for suite, sub in zip(suites, res["submissions"]):
            cases = suite.findall("testcase")
            assert [c.get("name") for c in cases] == list(TRACKS)
            for case in cases:
                status = sub["tracks"][case.get("name")]["status"]
                if status == "SKIPPED":
                    assert case.find("skipped") is not None
                elif status == "OK":
                    assert case.find("failure") is None and case.find("skipped") is None
                    assert json.loads(case.find("system-out").text)["status"] == "OK"
                else:
                    assert case.find("failure").get("type") == status
        failures = sum(int(s.get("failures")) for s in suites)
        assert int(root.get("failures")) == failures == (1 if k == 1 else 0)
        assert int(root.get("tests")) == 3 * len(suites)
        xmlschema = pytest.importorskip("xmlschema", reason="pip install xmlschema (the test extra) to validate the XSD")
        xmlschema.XMLSchema(str(DATA / "junit.xsd")).validate(str(path))


def test_gradescope_results_validate(klass):
    jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (the test extra)")
    schema = json.loads((DATA / "gradescope_results.schema.json").read_text())
    for k in (1, 2):
        doc = json.loads((klass["tmp"] / f"gradescope-{k}.json").read_text())
        jsonschema.validate(doc, schema)
        assert {t["status"] for t in doc["tests"]} == ({"passed", "failed"} if k == 1 else {"passed"})
        assert doc["score"] == sum(t["score"] for t in doc["tests"])
        board = doc["leaderboard"]
        assert board and all(b["order"] == "desc" and b["name"] == "classify: test_accuracy_public" for b in board)
    summary = (klass["tmp"] / "summary-1.md").read_text()
    assert "| zz-broken | classify | ❌" in summary and "| s1 | classify | ✅ OK |" in summary


@pytest.fixture(scope="module")
def regraded(klass, tmp_path_factory):
    """s2 once more, with a threshold it cannot meet, into a store that already holds its first run."""
    tmp = tmp_path_factory.mktemp("regrade")
    db = tmp / "leaderboard.db"
    assert run_cli("merge", klass["tmp"] / "results-2.json", "--db", db).returncode == 0
    r = run_cli("grade", klass["subs"] / "s2", "--quick", "--no-sandbox", "--db", db, "--config", klass["cfg"],
                "--min", "test_accuracy_public=0.99", "--max", "classify.test_loss_public=100", "--junit", tmp / "junit.xml",
                "--json", tmp / "r.json")
    return {"tmp": tmp, "db": db, "proc": r}


def test_thresholds_change_the_exit_code_only_when_given(klass, regraded):
    assert klass["codes"][1] == 0  # the same low scores, no threshold: exit 0
    r = regraded["proc"]
    assert r.returncode == 1, r.stderr
    assert "THRESHOLD s2 classify: test_accuracy_public" in r.stderr and "below the minimum 0.99" in r.stderr
    case = ET.parse(regraded["tmp"] / "junit.xml").getroot().find("testsuite/testcase[@name='classify']")
    assert case.find("failure").get("type") == "THRESHOLD"
    track = json.loads((regraded["tmp"] / "r.json").read_text())["submissions"][0]["tracks"]["classify"]
    assert track["status"] == "OK"
    # a student's --json (no --private, not revealed): the public half only, losses to 4 significant digits
    assert set(track["metrics"]) == {"test_accuracy_public", "accuracy_gap_public", "test_loss_public",
                                     "loss_gap_public", "train_accuracy", "train_loss", "params", "train_seconds"}
    assert track["metrics"]["test_loss_public"] == float(f"{track['metrics']['test_loss_public']:.4g}")
    assert "private" not in r.stdout and "test_accuracy " not in r.stdout


def test_threshold_logic_without_grading():
    from argparse import ArgumentTypeError, Namespace

    from harness.cli import ci
    from harness.grading.grade import SubmissionResult

    def result(acc):
        return SubmissionResult("a", "A", "p", "0" * 64, {
            "classify": Run.outcome("OK", metrics={"test_accuracy": acc, "test_loss": 0.3}),
            "generate": Run.outcome("SKIPPED")})

    res = [result(0.97)]
    assert ci.finish(res, Namespace(thresholds=[]), 0) == 0
    assert ci.finish(res, Namespace(thresholds=[ci.parse_min("test_accuracy=0.98")]), 0) == 1
    assert ci.finish(res, Namespace(thresholds=[ci.parse_min("test_accuracy=0.96"), ci.parse_max("test_loss=0.5")]), 0) == 0
    assert ci.finish(res, Namespace(thresholds=[ci.parse_max("classify.test_loss=0.1")]), 0) == 1
    assert ci.finish(res, Namespace(thresholds=[ci.parse_min("generate.test_accuracy=0.99")]), 0) == 2  # matches nothing
    assert ci.finish(res, Namespace(thresholds=[ci.parse_min("tset_accuracy=0.5")]), 0) == 2  # a typo is an error
    assert ci.finish(res, Namespace(thresholds=[]), 1) == 1  # a failed submission stays a failure
    # what a student sees has no whole-test figure: a threshold on one is a usage error that says why
    said = []
    view = ci.visible_results(res, revealed=False, private=False)
    assert ci.finish(view, Namespace(thresholds=[ci.parse_min("test_accuracy=0.5")]), 0, Namespace(print=lambda t, **k: said.append(t))) == 2
    assert "use 'test_accuracy_public'" in said[-1] and "--private" in said[-1]
    for bad in ("test_accuracy", "test_accuracy=high", "nope.test_accuracy=1", "x=nan"):
        with pytest.raises(ArgumentTypeError):
            ci.parse_min(bad)


def test_cli_usage_errors(tmp_path, klass):
    r = run_cli("grade", klass["subs"] / "s1", "--shard", "3/2", "--db", tmp_path / "x.db")
    assert r.returncode == 2 and "K must lie in 1..N" in r.stderr
    r = run_cli("grade", klass["subs"] / "s1", "--min", "accuracy", "--db", tmp_path / "x.db")
    assert r.returncode == 2 and "expected METRIC=VALUE" in r.stderr


# ----------------------------------------------------------------- reveal, history, leaderboard exports

def standings_order(cli, db, *extra):
    r = cli("leaderboard", "--quick", "--db", db, "--format", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_reveal_switches_the_ranking_to_the_private_half(cli, merged):
    def check(doc, key):
        st = doc["standings"][0]
        assert st["track"] == "classify" and st["ranked_by"] == key
        ranked = [row for row in st["rows"] if row["rank"] is not None]
        with Store(merged) as s:
            by_id = {r.submission_id: r.metrics for r in s.runs(track="classify")}
        values = [by_id[row["submission"]][key] for row in ranked]
        assert values == sorted(values, reverse=True) and len(ranked) == 6
        assert doc["overall"]["private"] == (key.endswith("private"))

    before = standings_order(cli, merged)
    assert before["revealed"] is False
    check(before, "test_accuracy_public")
    assert "private acc" not in cli("leaderboard", "--quick", "--db", merged, "--format", "md").stdout
    r = cli("reveal", "--db", merged)
    assert r.returncode == 0 and "private half" in r.stdout
    after = standings_order(cli, merged)
    assert after["revealed"] is True
    check(after, "test_accuracy_private")
    assert "private acc" in cli("leaderboard", "--quick", "--db", merged, "--format", "md").stdout
    assert "revealed: yes" in cli("reveal", "--status", "--db", merged).stdout
    assert cli("reveal", "--undo", "--db", merged).returncode == 0
    check(standings_order(cli, merged), "test_accuracy_public")


def test_history_lists_every_run(cli, regraded, klass):
    r = cli("history", klass["subs"] / "s2", "--db", regraded["db"], "--json")
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)["runs"]
    assert len(runs) == 2 and [x["status"] for x in runs] == ["OK", "OK"]
    assert runs[0]["sha256"] == runs[1]["sha256"] and runs[0]["run_uid"] != runs[1]["run_uid"]
    assert [x["standing"] for x in runs] == [False, True]  # selection: latest
    table = cli("history", "s2", "--db", regraded["db"])
    assert table.returncode == 0
    for x in runs:
        assert x["sha256"][:12] in table.stdout and "quick" in table.stdout and "test_accuracy_public" in table.stdout
    assert cli("history", "nobody", "--db", regraded["db"]).returncode == 1


def test_csv_md_json_exports(cli, merged, tmp_path):
    out = tmp_path / "lb.csv"
    assert cli("leaderboard", "--quick", "--db", merged, "--format", "csv", "-o", out).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["track"] for r in rows} == {"classify", "overall"}
    assert len([r for r in rows if r["track"] == "classify"]) == 7
    assert [r["submission"] for r in rows if r["track"] == "overall" and r["rank"]] == \
        [r["submission"] for r in rows if r["track"] == "classify" and r["rank"]]
    md = cli("leaderboard", "--quick", "--db", merged, "--format", "md").stdout
    assert "### overall" in md and "### classify" in md and "| zz-broken |" in md
    doc = standings_order(cli, merged)
    assert doc["overall"]["method"] == "mean_rank" and len(doc["overall"]["rows"]) == 7


# ----------------------------------------------------------------- HTML in a real browser

def chromium_exe() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium): the HTML pages cannot be rendered")


def chromium(page: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    argv = [chromium_exe(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp / 'chromium-profile'}", *mode,
            page.resolve().as_uri()]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def assert_self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I), "an external resource"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", text, re.I)
    assert not re.search(r"<link\b", text, re.I)


def add_generate_and_anomaly_rows(db: Path) -> None:
    """Generate rows with sample grids and anomaly rows with ROC curves (scorer-made artifacts)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    art = db.parent / "artifacts"
    with Store(db) as s:
        for i, sid in enumerate(["s1", "s2", "s3"]):
            d = art / f"gen-{sid}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((280, 280)) * 255).astype(np.uint8)).save(d / "samples.png")
            s.add(Run(sid, f"Student {sid}", "p", "a" * 64, "generate", "quick", "OK", run_uid=f"gen-{sid}",
                      metrics={"fcd": 30.0 + 10 * i, "classifier_score": 7.0 - i},
                      artifacts={"samples_grid": str(d / "samples.png")}))
            d = art / f"an-{sid}"
            d.mkdir(parents=True, exist_ok=True)
            fpr = np.linspace(0, 1, 40)
            cases = {c: {"fpr": fpr.tolist(), "tpr": (fpr ** (0.3 + 0.2 * j)).tolist(), "auroc": 0.8 - 0.1 * j}
                     for j, c in enumerate(["salt", "vbar", "digit0"])}
            (d / "roc_curves.json").write_text(json.dumps({"cases": cases}))
            s.add(Run(sid, f"Student {sid}", "p", "a" * 64, "anomaly", "quick", "OK", run_uid=f"an-{sid}",
                      metrics={"auroc": 0.7 - 0.05 * i, "auroc_salt": 0.8},
                      artifacts={"roc_curves": str(d / "roc_curves.json")}))
        s.add(Run("reference-noise", "Reference: uniform noise (floor)", "(scorer)", "", "generate", "quick", "OK",
                  kind="reference", metrics={"fcd": 400.0}))


def test_html_leaderboard_renders_in_headless_chromium(cli, merged, tmp_path):
    db = tmp_path / "lb" / "leaderboard.db"
    db.parent.mkdir()
    assert cli("merge", merged, "--db", db).returncode == 0
    add_generate_and_anomaly_rows(db)
    page = tmp_path / "leaderboard.html"
    r = cli("leaderboard", "--quick", "--db", db, "--format", "html", "-o", page)
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    assert_self_contained(text)
    assert text.count('src="data:image/png;base64,') == 3

    dom = chromium(page, tmp_path, "--dump-dom").stdout
    for sid in OK_IDS + [BROKEN]:
        assert f'data-track="classify" data-submission="{sid}"' in dom
        assert f'data-track="overall" data-submission="{sid}"' in dom
    for sid in ("s1", "s2", "s3"):
        assert f'data-track="generate" data-submission="{sid}"' in dom
        assert f'data-track="anomaly" data-submission="{sid}"' in dom
    assert 'data-submission="reference-noise" data-kind="reference" data-rank=""' in dom
    assert dom.count('class="roc-curve"') == 9 and dom.count("<svg") == 3
    assert re.search(r'data-track="overall" data-submission="s\d" data-rank="1"', dom)
    shot = tmp_path / "leaderboard.png"
    chromium(page, tmp_path, "--screenshot=" + str(shot), "--window-size=1280,2000", "--hide-scrollbars")
    assert png_size(shot) == (1280, 2000) and shot.stat().st_size > 20_000


def test_report_renders_confusion_matrix_and_log(cli, merged, klass, tmp_path):
    page = tmp_path / "s1.html"
    r = cli("report", klass["subs"] / "s1", "--db", merged, "-o", page)
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    assert_self_contained(text)
    with Store(merged) as s:
        run = s.runs(submission_id="s1")[-1]
    cm = json.loads(Path(run.artifacts["confusion_matrix"]).read_text())
    pub, priv = np.array(cm["public"]), np.array(cm["private"])
    assert pub.shape == priv.shape == (10, 10) and pub.sum() + priv.sum() == 10000
    assert np.trace(pub) / pub.sum() == pytest.approx(run.metrics["test_accuracy_public"])
    assert (np.trace(pub) + np.trace(priv)) / 10000 == pytest.approx(run.metrics["test_accuracy"])
    assert "epoch 1" in Path(run.artifacts["log"]).read_text()
    dom = chromium(page, tmp_path, "--dump-dom").stdout
    assert dom.count("<tr data-digit=") == 10 and 'id="confusion"' in dom and re.search(r"epoch 1(/1)?: loss=", dom)
    assert "the public half of the test set" in dom
    assert "test_accuracy_private" not in dom and "hidden until the reveal" in dom  # nothing private before it
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, "--screenshot=" + str(shot), "--window-size=1280,2000")
    assert png_size(shot) == (1280, 2000)
    assert cli("report", "nobody", "--db", merged).returncode == 1


# ----------------------------------------------------------------- the GitHub Actions workflow

def test_github_workflow_grades_changed_submissions(tmp_path):
    import yaml

    from harness.cli.ci import changed_submissions

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "grade.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in on and wf["permissions"]["pull-requests"] == "write"
    steps = wf["jobs"]["grade"]["steps"]
    script = "\n".join(s.get("run", "") + s.get("with", {}).get("script", "") for s in steps)
    assert "diff --name-only" in script  # the changed files (grade.yml picks the submissions/ ids itself)
    assert "harness grade" in script and "--summary-md" in script and "--junit" in script
    assert "createComment" in script and "updateComment" in script
    for name in ("alice", "bob", "_template", "evil$(id)"):
        (tmp_path / "submissions" / name).mkdir(parents=True)
        (tmp_path / "submissions" / name / "submission.yaml").write_text("name: x\n")
    changed = ["submissions/bob/classifier.py", "submissions/alice/submission.yaml", "submissions/alice/x.py",
               "README.md", "submissions/_template/classifier.py", "submissions/gone/a.py",
               "submissions/evil$(id)/a.py", "submissions/top-level-file.txt"]
    assert changed_submissions(changed, tmp_path) == ["submissions/alice", "submissions/bob"]
    r = subprocess.run([sys.executable, "-m", "harness.cli.ci", "changed-submissions"], input="\n".join(changed),
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.split() == ["submissions/alice", "submissions/bob"]
