"""Anomaly track, scoring side: metrics, corruptions and the reference rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import auc, average_precision_score, roc_auc_score

from harness.scoring import anomaly_baselines as ref
from harness.scoring import corruptions as C
from harness import data
from harness.scoring.metrics import anomaly as A


@pytest.fixture(scope="module")
def mnist():
    try:
        return data.load_or_prepare()
    except data.DataError as exc:
        pytest.skip(f"MNIST unavailable: {exc}")


@pytest.fixture(scope="module")
def images(mnist):
    return data.to_images(mnist.test_x[:200])


# ---------------------------------------------------------------- metrics


def test_auroc_hand_cases():
    assert A.auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert A.auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert A.auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # Mann-Whitney by hand: normal 0.1, 0.4, 0.8; anomalies 0.35, 0.4, 0.9.
    # Pairs won by the anomaly: 0.35 -> 1; 0.4 -> 1 + tie 0.5; 0.9 -> 3. U = 5.5 of 9 pairs.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.4, 0.8, 0.35, 0.4, 0.9]
    assert A.auroc(labels, scores) == pytest.approx(5.5 / 9)
    u = mannwhitneyu([0.35, 0.4, 0.9], [0.1, 0.4, 0.8]).statistic
    assert A.auroc(labels, scores) == pytest.approx(u / 9)


def test_auprc_hand_cases():
    assert A.auprc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    # Ranked: anomaly, normal, anomaly, normal: AP = 0.5 * 1 + 0.5 * 2/3.
    assert A.auprc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # All tied: one threshold, precision = share of positives.
    assert A.auprc([0, 1, 0, 0], [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.25)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + labels * 0.7
    scores[:50] = np.round(scores[:50])  # some ties
    assert A.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert A.auprc(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert A.auroc(labels.astype(bool), scores.astype(np.float32)) == pytest.approx(
        roc_auc_score(labels, scores.astype(np.float32)))


@pytest.mark.parametrize("labels, scores, message", [
    ([0, 1, 2], [0.1, 0.2, 0.3], "labels: expected only 0"),
    ([1, 1, 1], [0.1, 0.2, 0.3], "labels: needs both"),
    ([[0, 1]], [[0.1, 0.2]], "labels: expected a 1-D"),
    ([0, 1, 1], [0.1, 0.2], "scores: expected 3 scores"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "scores: 1 non-finite value(s), the first at index 1"),
    ([0, 1, 1], [0.1, np.inf, 0.3], "scores: 1 non-finite"),
    ([0, 1, 1], ["a", "b", "c"], "scores: expected real numbers"),
])
def test_validation_names_the_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        A.auroc(labels, scores)


def test_course_protocol_metrics():
    clean = np.array([0.1, 0.2, 0.3, 0.4])
    out = A.course_protocol_metrics(clean, {"vbar": clean + 1.0, "salt": clean[::-1]})
    assert list(out) == ["auroc_vbar", "auprc_vbar", "auroc_salt", "auprc_salt"]
    assert out["auroc_vbar"] == 1.0 and out["auprc_vbar"] == 1.0
    labels = np.r_[np.zeros(4), np.ones(4)]
    assert out["auroc_salt"] == pytest.approx(roc_auc_score(labels, np.r_[clean, clean[::-1]]))
    assert out["auroc_salt"] == 0.5
    with pytest.raises(ValueError, match=r"corrupted_scores\['vbar'\]: expected 4 scores"):
        A.course_protocol_metrics(clean, {"vbar": clean[:3]})
    with pytest.raises(ValueError, match=r"corrupted_scores\['salt'\]: 1 non-finite"):
        A.course_protocol_metrics(clean, {"salt": np.r_[clean[:3], np.nan]})
    with pytest.raises(ValueError, match="clean_scores: expected a 1-D"):
        A.course_protocol_metrics(clean[None], {"vbar": clean})
    with pytest.raises(ValueError, match="corrupted_scores: expected a non-empty mapping"):
        A.course_protocol_metrics(clean, {})


def test_oneclass_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    perfect_for_0 = np.array([0.0, 0.1, 0.9, 0.8, 0.7, 0.95])
    reversed_for_1 = np.array([0.0, 0.1, 0.9, 0.8, 0.2, 0.3])
    out = A.oneclass_metrics({1: reversed_for_1, 0: perfect_for_0}, labels)
    assert list(out) == ["auroc_digit0", "auroc_digit1", "auroc_oneclass_mean"]
    assert out["auroc_digit0"] == 1.0
    assert out["auroc_digit1"] == 0.0
    assert out["auroc_oneclass_mean"] == 0.5
    with pytest.raises(ValueError, match="test_labels: auroc_digit5 needs test images of digit 5"):
        A.oneclass_metrics({5: perfect_for_0}, labels)
    with pytest.raises(ValueError, match="scores_by_digit: key 10 is not a digit"):
        A.oneclass_metrics({10: perfect_for_0}, labels)
    with pytest.raises(ValueError, match=r"scores_by_digit\[0\]: expected 6 scores"):
        A.oneclass_metrics({0: perfect_for_0[:5]}, labels)
    with pytest.raises(ValueError, match="test_labels: digits must lie in 0..9"):
        A.oneclass_metrics({0: perfect_for_0}, labels + 8)


def test_anomaly_summary_averages_cases_not_the_oneclass_mean():
    metrics = {"auroc_salt": 0.6, "auprc_salt": 0.1, "auroc_vbar": 1.0,
               "auroc_digit0": 0.8, "auroc_digit1": 0.6, "auroc_oneclass_mean": 0.7}
    out = A.anomaly_summary(metrics)
    assert out["auroc"] == pytest.approx((0.6 + 1.0 + 0.8 + 0.6) / 4)
    assert "auroc" not in metrics  # a copy
    assert A.anomaly_summary(out)["auroc"] == out["auroc"]  # idempotent
    with pytest.raises(ValueError, match="no auroc_<kind> or auroc_digit<d>"):
        A.anomaly_summary({"auroc_oneclass_mean": 0.5})
    with pytest.raises(ValueError, match="auroc_vbar = nan"):
        A.anomaly_summary({"auroc_vbar": float("nan")})


def test_roc_curve_points():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    scores = rng.normal(size=5000) + labels
    pts = A.roc_curve_points(labels, scores, max_points=50)
    assert 2 <= len(pts["fpr"]) <= 50 and len(pts["fpr"]) == len(pts["tpr"])
    assert (pts["fpr"][0], pts["tpr"][0]) == (0.0, 0.0) and (pts["fpr"][-1], pts["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(pts["fpr"]) >= 0) and np.all(np.diff(pts["tpr"]) >= 0)
    assert auc(pts["fpr"], pts["tpr"]) == pytest.approx(A.auroc(labels, scores), abs=0.01)
    assert A.roc_curve_points([0, 1], [0.0, 1.0]) == {"fpr": [0.0, 0.0, 1.0], "tpr": [0.0, 1.0, 1.0]}
    with pytest.raises(ValueError, match="max_points"):
        A.roc_curve_points(labels, scores, max_points=1)


# ---------------------------------------------------------------- corruptions


@pytest.mark.parametrize("kind", sorted(C.CORRUPTIONS))
def test_corruption_is_seeded_pure_and_in_range(kind, images):
    before = images.copy()
    a = C.corrupt(images, kind, seed=7)
    assert np.array_equal(images, before), "the input was modified"
    assert a.dtype == np.float32 and a.shape == images.shape
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.array_equal(a, C.corrupt(images, kind, seed=7))
    assert not np.array_equal(a, images)
    if kind in ("salt", "gaussian", "patch"):  # the seeded ones
        assert not np.array_equal(a, C.corrupt(images, kind, seed=8))


def test_kinds_get_independent_streams_pinned_across_releases():
    a = C.rng_for("salt", 0).random(4)
    assert np.array_equal(a, C.rng_for("salt", 0).random(4))
    assert not np.array_equal(a, C.rng_for("gaussian", 0).random(4))
    # Pinned values: a change here changes every published anomaly score (see the module docstring).
    blank = np.zeros((2, 1, 28, 28), np.float32)
    salted = C.corrupt(blank, "salt", seed=0)
    assert [np.flatnonzero(img.ravel()).tolist() for img in salted] == [
        [229, 315, 344, 524, 618, 633, 651, 776], [27, 114, 123, 209, 218, 350, 543, 661]]
    assert C.patch_origins(blank, C.rng_for("patch", 0)).tolist() == [[10, 8], [11, 12]]


def test_salt_inverts_exactly_one_percent_per_image():
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, size=(50, 1, 28, 28)) / 255).astype(np.float32)
    out = C.corrupt(x, "salt", seed=0)
    changed = (out != x).reshape(50, -1).sum(axis=1)
    assert C.SALT_PIXELS == 8
    assert np.all(changed == C.SALT_PIXELS)  # MNIST levels k/255 are never fixed points of 1 - x
    diff = out != x
    assert np.allclose(out[diff], 1.0 - x[diff])


def test_bars_touch_only_their_rows_and_columns(images):
    v = C.corrupt(images, "vbar", seed=0)
    assert np.all(v[:, :, :, 15:17] == 1.0)
    mask = np.ones(28, bool)
    mask[15:17] = False
    assert np.array_equal(v[:, :, :, mask], images[:, :, :, mask])
    h = C.corrupt(images, "hbar", seed=0)
    assert np.all(h[:, :, 13:15, :] == 1.0)
    mask = np.ones(28, bool)
    mask[13:15] = False
    assert np.array_equal(h[:, :, mask, :], images[:, :, mask, :])


def test_gaussian_noise_level():
    x = np.full((20, 1, 28, 28), 0.5, np.float32)
    out = C.corrupt(x, "gaussian", seed=0)
    noise = C.rng_for("gaussian", 0).standard_normal(x.shape, dtype=np.float32) * np.float32(0.3)
    assert np.array_equal(out, np.clip(x + noise, 0, 1))
    assert C.GAUSSIAN_SIGMA == 0.3 and np.std(noise) == pytest.approx(0.3, rel=0.03)
    # 0.5 + N(0, 0.3^2) leaves [0, 1] with probability 2 P(Z > 5/3) = 9.6%.
    assert np.mean((out == 0) | (out == 1)) == pytest.approx(0.0956, abs=0.01)


def test_patch_blanks_one_block_near_the_digit_centre(images):
    out = C.corrupt(images, "patch", seed=0)
    origins = C.patch_origins(images, C.rng_for("patch", 0))
    for img, new, (r, c) in zip(images, out, origins):
        assert np.all(new[0, r:r + C.PATCH_SIZE, c:c + C.PATCH_SIZE] == 0.0)
        outside = np.ones((28, 28), bool)
        outside[r:r + C.PATCH_SIZE, c:c + C.PATCH_SIZE] = False
        assert np.array_equal(new[0][outside], img[0][outside])
        assert 4 <= r <= 16 and 4 <= c <= 16  # MNIST digits are centred by mass at (14, 14)


def test_corrupt_rejects_bad_input(images):
    with pytest.raises(ValueError, match="unknown corruption 'blur'; known: salt, vbar, hbar, gaussian, patch"):
        C.corrupt(images, "blur", seed=0)
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 1, 28, 28\)"):
        C.corrupt(images[:, 0], "vbar", seed=0)
    with pytest.raises(ValueError, match="images: pixels must lie in"):
        C.corrupt(images * 2 + 0.1, "vbar", seed=0)
    with pytest.raises(ValueError, match="images: expected float32"):
        C.corrupt((images * 255).astype(np.uint8), "vbar", seed=0)
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        C.corrupt(images, "salt", seed=-1)


def test_course_set_shuffles_and_splits_back(images):
    x = images[:30]
    cs = C.build_course_set(x, ["vbar", "salt"], seed=3)
    assert cs.images.shape == (90, 1, 28, 28)
    assert not np.array_equal(cs.source_kind, np.sort(cs.source_kind))  # shuffled
    clean, corrupted = cs.split(cs.images.reshape(90, -1).sum(axis=1))
    assert np.array_equal(clean, x.reshape(30, -1).sum(axis=1))
    assert np.array_equal(corrupted["vbar"], C.corrupt(x, "vbar", 3).reshape(30, -1).sum(axis=1))
    assert np.array_equal(corrupted["salt"], C.corrupt(x, "salt", 3).reshape(30, -1).sum(axis=1))
    with pytest.raises(ValueError, match=r"scores: expected shape \(90,\)"):
        cs.split(np.zeros(89))


# ---------------------------------------------------------------- reference rows


def test_pca_reference_detects_vbar(mnist):
    train = data.to_images(mnist.train_x[:5000])
    test = data.to_images(mnist.test_x[:1000])
    clean = ref.pca_scores(train, test)
    bar = ref.pca_scores(train, C.corrupt(test, "vbar", 0))
    assert clean.shape == (1000,) and clean.dtype == np.float64
    assert A.course_protocol_metrics(clean, {"vbar": bar})["auroc_vbar"] > 0.9


def test_random_reference_is_chance():
    s = ref.random_scores(1000, 5)
    assert s.shape == (1000,) and np.array_equal(s, ref.random_scores(1000, 5))
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        ref.random_scores(0, 5)


def test_reference_rows_on_a_subset(mnist):
    cfg = {"anomaly": {"corruptions": ["salt", "vbar"], "oneclass_digits": [0, 1], "seed": 0}}
    rows = ref.reference_rows(cfg, mnist=mnist, limit=2000)
    assert set(rows) == {"pca", "random"}
    keys = {"auroc_salt", "auprc_salt", "auroc_vbar", "auprc_vbar", "auroc_digit0", "auroc_digit1",
            "auroc_oneclass_mean", "auroc"}
    assert set(rows["pca"]) == keys and set(rows["random"]) == keys
    assert 0.45 <= rows["random"]["auroc"] <= 0.55
    assert rows["pca"]["auroc_vbar"] > 0.9 and rows["pca"]["auroc"] > 0.8
    assert rows == ref.reference_rows(cfg, mnist=mnist, limit=2000)  # deterministic


def test_reference_config_errors():
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        ref.read_config({"corruptions": ["blur"]})
    with pytest.raises(ValueError, match="oneclass_digits: 12 is not a digit"):
        ref.read_config({"oneclass_digits": [12]})
    with pytest.raises(ValueError, match="both empty"):
        ref.read_config({"corruptions": [], "oneclass_digits": []})
    assert ref.read_config(None) == {"corruptions": ["salt", "vbar"], "oneclass_digits": list(range(10)),
                                     "seed": 0, "pca_components": 32}
    whole_file = {"seed": 4, "anomaly": {"corruptions": ["patch"], "oneclass_digits": [3, 1]}}
    assert ref.read_config(whole_file) == {"corruptions": ["patch"], "oneclass_digits": [1, 3],
                                           "seed": 4, "pca_components": 32}


def test_reference_config_reads_the_packaged_competition():
    from harness import competition
    comp = competition.load(competition.PACKAGED)
    cfg = ref.read_config(comp)
    assert cfg["seed"] == comp.seed
    assert cfg["corruptions"] == list(comp["anomaly"]["corruptions"])
    assert cfg["oneclass_digits"] == sorted(comp["anomaly"]["oneclass_digits"])


def test_reference_pca_is_fit_on_the_images_students_get(mnist, tmp_path, monkeypatch):
    """Under --quick students train on a 10k subset: the PCA reference row is fit on that subset
    (per digit, on that digit's images among it), not on all 60k."""
    from harness.competition import load
    from harness.scoring.metrics.anomaly import auroc
    from harness.scoring.tracks import anomaly
    from harness.scoring.tracks.context import ScoringContext

    idx = ScoringContext(mnist, load(), True, 0, tmp_path).train_indices()
    assert len(idx) == 10000
    cfg = {"corruptions": [], "oneclass_digits": [7], "seed": 0}
    row = ref.reference_rows(cfg, mnist=mnist, limit=1000, train_indices=idx)["pca"]
    test = data.to_images(mnist.test_x[:1000])
    subset = data.to_images(mnist.train_x[idx][mnist.train_y[idx] == 7])
    expected = auroc((mnist.test_y[:1000] != 7).astype(int), ref.pca_scores(subset, test))
    assert row["auroc_digit7"] == pytest.approx(expected, abs=1e-12)
    everything = ref.reference_rows(cfg, mnist=mnist, limit=1000)["pca"]
    assert everything["auroc_digit7"] != row["auroc_digit7"]  # the 60k fit is a different reference
    # and the quick profile's reference rows are computed that way
    calls = []
    real = anomaly.compute
    monkeypatch.setattr(anomaly, "compute", lambda *a, **k: calls.append(k) or real(*a, **k))
    anomaly.reference_rows(ScoringContext(mnist, load(), True, 0, tmp_path))
    assert np.array_equal(calls[0]["train_indices"], idx)
