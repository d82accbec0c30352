"""The generate track end to end: real GANs on real MNIST (--quick: 10k images, one epoch, 2k samples)."""

import html
import json

import pytest

from conftest import ROOT, read_results

SPEC_KEYS = {"classifier_score", "fcd", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
             "class_entropy", "classes_covered", "copy_rate"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The MLP GAN, the memoriser and the WGAN example (its own training loop), graded together,
    and the scorer's reference rows (real images, noise)."""
    from harness.cli import main
    from harness.competition import load
    from harness.grading.scorer_rows import record_references
    from harness.store import Store

    root = tmp_path_factory.mktemp("generate")
    paths = [ROOT / "baselines" / "mlp-gan", ROOT / "baselines" / "memoriser-gan",
             ROOT / "submissions" / "examples" / "mlp-wgan"]
    assert main(["grade", *map(str, paths), "--quick", "--db", str(root / "db"), "--json", str(root / "r.json")]) == 0
    out = {s["id"]: s["tracks"]["generate"] for s in read_results(root / "r.json")["submissions"]}
    with Store(root / "db") as store:
        for run in record_references(store, load(), quick=True, tracks=("generate",)):
            out[run.submission_id] = {"status": run.status, "metrics": run.metrics, "artifacts": run.artifacts}
    out["_db"] = root / "db"
    return out


def test_every_spec_key_and_a_sample_grid(graded):
    from PIL import Image

    for ident in ("mlp-gan", "memoriser-gan", "examples/mlp-wgan"):
        r = graded[ident]
        assert r["status"] == "OK", (ident, r["message"])
        assert SPEC_KEYS <= set(r["metrics"])
        grid = Image.open(r["artifacts"]["samples_grid"])
        assert grid.size[0] >= 280 and grid.size[1] >= 280  # 10 x 10 images of 28 x 28


def test_real_images_are_the_ceiling_and_noise_the_floor(graded):
    real, noise, gan = (graded[k]["metrics"] for k in ("reference-real", "reference-noise", "mlp-gan"))
    assert real["classifier_score"] >= 9.5  # its own softmax, no temperature (about 9.7 on 2,000 images)
    assert real["fcd"] < gan["fcd"] < noise["fcd"]
    assert noise["classes_covered"] <= 3 or noise["classifier_score"] < 2.0
    assert real["copy_rate"] < 0.01


def test_memoriser_is_caught_by_copy_rate(graded):
    memo, gan = graded["memoriser-gan"]["metrics"], graded["mlp-gan"]["metrics"]
    assert memo["copy_rate"] > 0.9
    assert gan["copy_rate"] < 0.05
    assert memo["fcd"] < gan["fcd"]  # why copy_rate is needed: memorising wins on fcd


def test_custom_training_loop_ran(graded):
    r = graded["examples/mlp-wgan"]
    assert r["status"] == "OK"
    assert r["metrics"]["train_seconds"] > 0


def test_memoriser_is_unranked_with_the_reason_in_every_rendering(graded):
    """It has the best fcd, yet it is listed unranked, with the reason, in every format; the honest GANs rank."""
    from harness.competition import load
    from harness.render.exports import render
    from harness.render.tables import render_rich, render_text
    from harness.standings.overall import track_standings
    from harness.standings.per_track import standings
    from harness.store import Store
    from rich.console import Console

    comp = load()
    with Store(graded["_db"]) as store:
        st = standings(store, "generate", "quick", comp=comp)
        per_track = track_standings(store, comp, "quick")
    rows = {r.run.submission_id: r for r in st.rows if r.run.kind == "submission"}
    memo = rows["memoriser-gan"]
    assert memo.rank is None and memo.run.status == "OK"
    reason = memo.unranked
    assert reason.startswith("unranked: copy_rate ") and reason.endswith("> max_copy_rate 0.05: samples copy training images")
    assert sorted(rows[k].rank for k in ("mlp-gan", "examples/mlp-wgan")) == [1, 2]
    assert rows["mlp-gan"].unranked is None
    console = Console(record=True, width=400)
    console.print(render_rich(st))
    assert reason in console.export_text()
    assert reason in render_text(st, "csv") and reason in html.unescape(render_text(st, "html"))
    assert reason in html.unescape(render_text(st, "md")).replace("\\_", "_")
    assert {r["submission"]: r["unranked"] for r in json.loads(render_text(st, "json"))["rows"]}["memoriser-gan"] == reason
    for fmt in ("md", "csv", "json", "html"):  # the published leaderboard (harness leaderboard --format ...)
        text = render(fmt, per_track, None, comp, False, False)
        assert "copy_rate 1.00 > max_copy_rate 0.05" in html.unescape(text).replace("\\_", "_").replace("\\>", ">"), fmt
