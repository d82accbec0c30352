"""The anomaly track end to end: a real autoencoder on real MNIST (--quick: two one-class digits)."""

import pytest

from conftest import ROOT, TINY_AE_CODE, TINY_AE_MANIFEST as TINY, read_results
from harness.store import Store

AE = TINY_AE_CODE.format(hidden=32)
CUSTOM_SCORE = AE + """\
    def anomaly_score(self, x):
        # the maximum squared error of any pixel, not the mean: the harness must use it
        y = self(x)
        return F.max(F.reshape((y - x) ** 2, (len(x), -1)), axis=1)
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course autoencoder, and a tiny one graded with the default score and with its own anomaly_score."""
    from harness.cli import main

    root = tmp_path_factory.mktemp("anomaly")
    out = {}
    for name, code in (("mse", AE), ("custom", CUSTOM_SCORE)):
        sub = root / name
        sub.mkdir()
        (sub / "submission.yaml").write_text(TINY)
        (sub / "ae.py").write_text(code)
    assert main(["grade", str(ROOT / "baselines" / "course-autoencoder"), str(root / "mse"), str(root / "custom"), "--quick", "--db", str(root / "db"),
                 "--json", str(root / "r.json")]) == 0
    for s in read_results(root / "r.json")["submissions"]:
        out[s["id"]] = s["tracks"]["anomaly"]
    out["db"] = str(root / "db")
    return out


def test_reports_every_key_of_the_config(graded):
    from harness.competition import load

    comp = load()
    m = graded["course-autoencoder"]["metrics"]
    assert graded["course-autoencoder"]["status"] == "OK", graded["course-autoencoder"]["message"]
    for kind in comp["anomaly"]["corruptions"]:
        assert 0.0 <= m[f"auroc_{kind}"] <= 1.0 and 0.0 <= m[f"auprc_{kind}"] <= 1.0
    for d in comp["quick"]["oneclass_digits"]:
        assert f"auroc_digit{d}" in m
    assert {"auroc", "auroc_salt", "auroc_vbar", "auroc_oneclass_mean"} <= set(m)
    cases = [v for k, v in m.items() if k.startswith("auroc_") and k != "auroc_oneclass_mean"]
    assert m["auroc"] == pytest.approx(sum(cases) / len(cases))


def test_the_course_autoencoder_beats_chance(graded):
    m = graded["course-autoencoder"]["metrics"]  # one epoch on 10k images
    assert min(m["auroc_vbar"], m["auroc_hbar"], m["auroc_gaussian"]) > 0.85  # chance is 0.5
    assert m["auroc_digit1"] > 0.9  # ones are the easiest normal class


def test_own_anomaly_score_is_used(graded):
    assert graded["custom"]["status"] == "OK" and graded["mse"]["status"] == "OK"
    assert graded["custom"]["metrics"]["auroc_salt"] != graded["mse"]["metrics"]["auroc_salt"]


def test_reference_rows(tmp_path):
    from harness.competition import load
    from harness.grading.scorer_rows import record_references

    with Store(tmp_path / "db") as store:
        runs = {r.submission_id: r for r in record_references(store, load(), quick=True, tracks=("anomaly",))}
    assert 0.45 <= runs["reference-random"].metrics["auroc"] <= 0.55
    assert runs["reference-pca"].metrics["auroc_vbar"] > 0.9
