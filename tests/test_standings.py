"""Overall standings, selection, reveal, GPU/shard assignment and the scorer-made artifacts (no grading)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from harness import competition as competition_mod
from harness.competition import Competition, ConfigError
from harness.grading.jobs import (device_gpus, gpu_for_slot, ingestion_device, options_for_slot, parse_gpus, parse_shard,
                          select_shard)
from harness.standings.per_track import standings
from harness.standings.overall import compute_overall, overall_standings, track_standings
from harness.store import Run, Store


def comp_with(**overrides) -> Competition:
    base = competition_mod.load()
    raw = json.loads(json.dumps(base.raw))
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    return Competition(base.path, raw)


def add(store, sid, track, status="OK", kind="submission", created="2026-01-01T00:00:00+00:00", **metrics):
    return store.add(Run(sid, sid.upper(), "p", "0" * 64, track, "full", status, metrics=metrics, kind=kind,
                         created_at=created))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def fill(store):
    # classify: a > b > c; generate (fcd, lower is better): b < c; anomaly: c only; d failed classify
    add(store, "a", "classify", test_accuracy_public=0.99, test_accuracy_private=0.90)
    add(store, "b", "classify", test_accuracy_public=0.95, test_accuracy_private=0.97)
    add(store, "c", "classify", test_accuracy_public=0.90, test_accuracy_private=0.98)
    add(store, "d", "classify", status="CRASH")
    add(store, "base", "classify", kind="baseline", test_accuracy_public=0.999, test_accuracy_private=0.999)
    add(store, "b", "generate", fcd=10.0)
    add(store, "c", "generate", fcd=20.0)
    add(store, "reference-real", "generate", kind="reference", fcd=0.1)
    add(store, "c", "anomaly", auroc=0.9)


def test_mean_rank_counts_a_missing_track_as_one_below_the_last(store):
    fill(store)
    ov = overall_standings(store, comp_with())
    assert ov.tracks == ["classify", "generate", "anomaly"]
    got = {r.submission_id: (r.rank, r.value) for r in ov.rows}
    # a: 1, missing generate (2 ranked -> 3), missing anomaly (1 ranked -> 2): 2.0
    # b: 2, 1, 2 -> 1.667 ; c: 3, 2, 1 -> 2.0 ; d: failed everywhere -> unranked
    assert got["b"] == (1, pytest.approx(5 / 3))
    assert got["a"][1] == got["c"][1] == pytest.approx(2.0) and got["a"][0] == got["c"][0] == 2
    assert [r.submission_id for r in ov.rows][:3] == ["b", "c", "a"]  # the tie: more tracks ranked first
    assert got["d"] == (None, None)
    assert "base" not in got and "reference-real" not in got  # reference rows stay out of the overall


def test_mean_rank_ignore_missing_averages_over_entered_tracks(store):
    fill(store)
    ov = overall_standings(store, comp_with(overall={"missing": "ignore"}))
    got = {r.submission_id: r.value for r in ov.rows}
    assert got["a"] == 1.0 and got["b"] == 1.5 and got["c"] == 2.0
    assert ov.rows[0].submission_id == "a"


def test_weighted_normalises_each_track_to_0_1(store):
    fill(store)
    ov = overall_standings(store, comp_with(overall={"method": "weighted",
                                                     "weights": {"classify": 2.0, "generate": 1.0, "anomaly": 0.0}}))
    assert ov.tracks == ["classify", "generate"]  # weight 0: not counted
    got = {r.submission_id: r.value for r in ov.rows}
    # classify: a 1, b (0.95-0.90)/(0.09) = 0.5556, c 0 ; generate: b 1, c 0, a missing -> 0
    assert got["a"] == pytest.approx(2 / 3)
    assert got["b"] == pytest.approx((2 * 5 / 9 + 1) / 3)
    assert got["c"] == pytest.approx(0.0)
    assert [r.rank for r in ov.rows[:3]] == [1, 2, 3] and ov.rows[0].submission_id == "b"


def test_overall_config_is_validated():
    with pytest.raises(ConfigError, match="overall.method"):
        compute_overall([], comp_with(overall={"method": "borda"}))
    with pytest.raises(ConfigError, match="overall.missing"):
        compute_overall([], comp_with(overall={"missing": "zero"}))
    with pytest.raises(ConfigError, match="selection"):
        track_standings(None, comp_with(selection="first"))


def test_reveal_ranks_by_the_private_half(store):
    fill(store)
    assert [r.run.submission_id for r in standings(store, "classify").rows if r.rank] == ["a", "b", "c"]
    store.set_setting("revealed", "1")
    st = standings(store, "classify")
    assert st.private and [r.run.submission_id for r in st.rows if r.rank] == ["c", "b", "a"]
    assert overall_standings(store, comp_with()).private


def test_best_selection_picks_by_the_public_score_even_after_the_reveal(store):
    add(store, "a", "classify", created="2026-01-01T00:00:00+00:00", test_accuracy_public=0.95, test_accuracy_private=0.99)
    add(store, "a", "classify", created="2026-01-02T00:00:00+00:00", test_accuracy_public=0.97, test_accuracy_private=0.90)
    add(store, "a", "classify", created="2026-01-03T00:00:00+00:00", status="CRASH")
    assert standings(store, "classify", selection="latest").rows[0].run.status == "CRASH"
    assert standings(store, "classify", selection="best").rows[0].score == 0.97
    store.set_setting("revealed", "1")
    best = standings(store, "classify", selection="best").rows[0]
    assert best.score == 0.90  # the run chosen by its public score, ranked by its private one


def test_latest_follows_the_grading_date_not_the_merge_order(store):
    add(store, "a", "classify", created="2026-01-02T00:00:00+00:00", test_accuracy_public=0.5)
    add(store, "a", "classify", created="2026-01-01T00:00:00+00:00", test_accuracy_public=0.9)  # merged later
    assert standings(store, "classify").rows[0].score == 0.5


# ----------------------------------------------------------------- shards and GPUs

def test_shards_are_a_deterministic_partition():
    paths = [Path(f"submissions/s{i:02d}") for i in (5, 3, 9, 1, 7, 2, 8)] + [Path("submissions/s03")]
    everything = sorted({str(p) for p in paths})
    for n in (1, 2, 3, 8, 10):
        shards = [[str(p) for p in select_shard(paths, (k, n))] for k in range(1, n + 1)]
        assert sorted(sum(shards, [])) == everything  # each path in exactly one shard
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        assert shards == [[str(p) for p in select_shard(list(reversed(paths)), (k, n))] for k in range(1, n + 1)]
    assert select_shard(paths, None) == paths
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/2", "3/2", "2", "a/b", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_shard(bad)


def test_each_job_slot_gets_its_own_gpu():
    from harness.grading.grade import GradeOptions

    assert [gpu_for_slot(i, (0, 1)) for i in range(5)] == [0, 1, 0, 1, 0]
    assert [gpu_for_slot(i, (2, 5, 7)) for i in range(4)] == [2, 5, 7, 2]
    assert gpu_for_slot(3, ()) is None
    assert parse_gpus("0,1") == (0, 1) and device_gpus("@cupy:0,1") == (0, 1) and device_gpus("@cupy:3") == (3,)
    assert device_gpus("@numpy") == () and device_gpus("@numpy", (1,)) == (1,)
    for bad in ("", "a", "-1", "0,0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_gpus(bad)
    opts = GradeOptions(competition=comp_with(), device="@cupy:0,1")
    slots = [options_for_slot(opts, i) for i in range(4)]
    assert [(o.device, o.gpu_devices) for o in slots] == [("@cupy:0", (0,)), ("@cupy:1", (1,))] * 2
    cpu = GradeOptions(competition=comp_with())
    assert options_for_slot(cpu, 3) is cpu
    assert options_for_slot(cpu, 3, (4, 6)).gpu_devices == (6,)
    # inside the sandbox only the job's GPU is visible, as device 0
    assert ingestion_device("@cupy:1", (1,)) == "@cupy:0" and ingestion_device("@cupy:6", (4, 6)) == "@cupy:1"
    assert ingestion_device("@numpy", ()) == "@numpy" and ingestion_device("@cupy:0", ()) == "@cupy:0"
    assert dataclasses.replace(opts).device == "@cupy:0,1"


def test_cli_jobs_use_one_slot_per_worker_thread(monkeypatch, tmp_path):
    """grade_paths hands worker thread i the options of slot i (so GPU i % n)."""
    import threading
    import time

    from harness import cli
    from harness.cli import grading as cli_grading
    from harness.grading.grade import SubmissionResult

    seen = []

    def fake_grade(path, opts, store, progress=None):
        seen.append((threading.get_ident(), opts.device, opts.gpu_devices))
        time.sleep(0.05)
        return SubmissionResult(Path(path).name, "n", str(path), "", {})

    monkeypatch.setattr(cli_grading, "grade_submission", fake_grade)
    args = cli.build_parser().parse_args(["grade", *[str(tmp_path / f"x{i}") for i in range(6)], "--jobs", "2",
                                          "--gpus", "3,5", "--db", str(tmp_path / "s.db"), "--no-sandbox"])
    args.isolation = "none"
    args.db_path = str(tmp_path / "s.db")
    monkeypatch.setattr(cli_grading, "show_leaderboards", lambda *a, **k: None)
    assert cli_grading.grade_paths([tmp_path / f"x{i}" for i in range(6)], args) == 0
    by_thread = {}
    for ident, device, gpus in seen:
        by_thread.setdefault(ident, set()).add((device, gpus))
    assert all(len(v) == 1 for v in by_thread.values())  # a worker keeps its GPU
    assert {next(iter(v)) for v in by_thread.values()} <= {("@cupy:3", (3,)), ("@cupy:5", (5,))}
    if len(by_thread) == 2:
        assert {next(iter(v)) for v in by_thread.values()} == {("@cupy:3", (3,)), ("@cupy:5", (5,))}


# ----------------------------------------------------------------- scorer-made artifacts

def test_anomaly_score_keeps_roc_curves_per_case(tmp_path, mnist):
    from harness.scoring.tracks import anomaly
    from harness.scoring.tracks.context import ScoringContext

    comp = comp_with(quick={"oneclass_digits": [0, 1]})
    ctx = ScoringContext(mnist, comp, True, 0, tmp_path / "artifacts" / "uid")
    outs = {}
    for job in anomaly.jobs(ctx):  # one job per protocol and per one-class digit
        (tmp_path / job.name / "in").mkdir(parents=True)
        outs[job.name] = out = tmp_path / job.name / "out"
        out.mkdir()
        job.write_inputs(tmp_path / job.name / "in")
        np.savez(out / "model.npz", w=np.zeros(3, np.float32))
    rng = np.random.default_rng(1)
    n_eval = len(ctx.extra["secret_order"])
    np.save(outs["course"] / "scores_course.npy", rng.random(n_eval).astype(np.float32))
    for d in (0, 1):  # each job scores the test images in its own secret order
        y = mnist.test_y[ctx.extra[f"order_digit{d}"]]
        np.save(outs[f"digit{d}"] / f"scores_digit{d}.npy", (y != d) + rng.random(10000).astype(np.float32))
    metrics, artifacts = anomaly.score(ctx, outs, {name: {"train_seconds": 1.0} for name in outs})
    path = Path(artifacts["roc_curves"])
    assert path.parent == ctx.artifacts_dir and path.stat().st_size < 60_000
    cases = json.loads(path.read_text())["cases"]
    kinds = comp["anomaly"]["corruptions"]
    assert set(cases) == set(kinds) | {"digit0", "digit1"}
    for case, c in cases.items():
        assert len(c["fpr"]) == len(c["tpr"]) <= 100 and c["fpr"][0] == 0 and c["tpr"][-1] == 1
        assert c["auroc"] == metrics[f"auroc_{case}"]
        assert np.all(np.diff(c["fpr"]) >= 0)
        # the trapezoid area of the thinned curve stays near the exact AUROC
        fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoid rule, any NumPy
        assert area == pytest.approx(c["auroc"], abs=0.02)
    assert metrics["auroc_digit0"] > 0.99 and metrics["train_seconds"] == 3.0


def test_roc_svg_and_exports_escape_untrusted_names(tmp_path):
    from harness.render.exports import leaderboard_html, roc_svg
    from harness.render.tables import render_text

    svg = roc_svg({"salt": {"fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1], "auroc": 0.9}}, 100)
    assert svg.startswith("<svg") and "polyline" in svg and "salt AUROC 0.900" in svg
    with Store(tmp_path / "s.db") as s:
        add(s, "x", "classify", test_accuracy_public=0.9)
        s.db.execute("UPDATE runs SET name = ?", ("<img src=x onerror=alert(1)>|",))
        sts = track_standings(s, comp_with())
    page = leaderboard_html(sts, compute_overall(sts, comp_with()), "t", False, False, tmp_path / "s.db")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    md = render_text(sts[0], "md")
    assert "<img" not in md and "\\|" in md
