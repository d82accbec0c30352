"""The generate track's metrics against known values (pure functions; no reference classifier)."""

import math
import warnings

import numpy as np
import pytest

from harness.scoring.metrics.generative import (
    class_entropy,
    classes_covered,
    classifier_score,
    frechet_distance,
    gaussian_statistics,
    kid,
    kid_within_terms,
    kth_neighbour_sq_distances,
    precision_recall_density_coverage,
)


def one_hot(labels, k=10):
    return np.eye(k)[np.asarray(labels)]


# --- classifier score, class histogram -------------------------------------------------------

def test_classifier_score_one_hot_uniform_is_number_of_classes():
    p = one_hot(np.arange(1000) % 10)
    assert classifier_score(p) == pytest.approx(10.0, rel=1e-12)
    assert class_entropy(p) == pytest.approx(math.log(10), rel=1e-12)
    assert classes_covered(p) == 10


def test_constant_prediction_scores_one():
    row = np.random.default_rng(0).dirichlet(np.ones(10))
    p = np.tile(row, (500, 1))
    assert classifier_score(p) == pytest.approx(1.0, abs=1e-12)
    assert class_entropy(p) == 0.0
    assert classes_covered(p) == 1
    assert classifier_score(np.full((50, 10), 0.1)) == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_matches_direct_formula():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(10, 0.3), size=400)
    py = p.mean(0)
    expected = math.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1)))
    assert classifier_score(p) == pytest.approx(expected, rel=1e-10)
    assert 1.0 <= classifier_score(p) <= 10.0


def test_two_balanced_classes():
    p = one_hot(np.arange(100) % 2)
    assert classifier_score(p) == pytest.approx(2.0)
    assert class_entropy(p) == pytest.approx(math.log(2))
    assert classes_covered(p) == 2


def test_classes_covered_threshold():
    labels = np.array([0] * 950 + [1] * 30 + [2] * 20)  # shares .95, .03, .02
    assert classes_covered(one_hot(labels)) == 3
    assert classes_covered(one_hot(labels), min_share=0.025) == 2


def test_logits_are_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        classifier_score(np.random.default_rng(0).normal(size=(10, 10)))
    with pytest.raises(ValueError, match="sum to 1"):
        classifier_score(np.random.default_rng(0).uniform(size=(10, 10)))


# --- Frechet distance ------------------------------------------------------------------------

def test_frechet_diagonal_gaussians_analytic():
    rng = np.random.default_rng(2)
    d = 32
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_full_covariances_analytic_commuting():
    # Same eigenvectors: tr((S1 S2)^1/2) = sum sqrt(l1 l2).
    rng = np.random.default_rng(3)
    d = 20
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    l1, l2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    s1, s2 = (q * l1) @ q.T, (q * l2) @ q.T
    mu = rng.normal(size=d)
    expected = np.sum(l1 + l2 - 2 * np.sqrt(l1 * l2))
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_identical_features_is_zero():
    f = np.random.default_rng(4).normal(size=(2000, 64))
    mu, sigma = gaussian_statistics(f)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("rank", [1, 3, 20])
def test_frechet_near_singular_is_finite_real_and_right(rank):
    rng = np.random.default_rng(5)
    d = 64
    a = rng.normal(size=(d, rank))
    sigma = a @ a.T  # rank-deficient: sqrtm of the product is singular
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LinAlgWarning / ComplexWarning escapes
        same_cov = frechet_distance(m1, sigma, m2, sigma)
        to_zero = frechet_distance(m1, sigma, m1, np.zeros((d, d)))
    for v in (same_cov, to_zero):
        assert isinstance(v, float) and math.isfinite(v)
    assert same_cov == pytest.approx(np.sum((m1 - m2) ** 2), rel=1e-6)
    assert to_zero == pytest.approx(np.trace(sigma), rel=1e-6)


def test_frechet_dead_feature_dimensions():
    # Post-ReLU features with dead units: zero rows/columns in both covariances.
    rng = np.random.default_rng(6)
    f1, f2 = np.maximum(rng.normal(size=(500, 16)), 0), np.maximum(rng.normal(0.2, 1, size=(500, 16)), 0)
    f1[:, :5] = 0
    f2[:, :5] = 0
    v = frechet_distance(*gaussian_statistics(f1), *gaussian_statistics(f2))
    assert math.isfinite(v) and v > 0


# --- KID -------------------------------------------------------------------------------------

def test_kid_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(1500, 32)), rng.normal(size=(1500, 32))
    mean, std = kid(a, b, n_subsets=20, subset_size=500, seed=0)
    assert abs(mean) < 3 * std + 1e-3
    shifted, _ = kid(a, b + 0.5, n_subsets=20, subset_size=500, seed=0)
    assert shifted > 0.1 and shifted > 20 * abs(mean)


def test_kid_matches_unbiased_mmd_formula_on_one_subset():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(50, 4)), rng.normal(0.3, 1, size=(50, 4))
    k = lambda u, v: (u @ v.T / 4 + 1) ** 3  # noqa: E731
    m = 50
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    mean, std = kid(x, y, n_subsets=3, subset_size=50, seed=0)  # the subset is the whole set
    assert mean == pytest.approx(expected, rel=1e-5)  # float32 kernel matrices
    assert std == pytest.approx(0.0, abs=1e-7)


def test_kid_precomputed_within_terms_give_the_same_result():
    rng = np.random.default_rng(14)
    a, b = rng.normal(size=(400, 8)), rng.normal(0.2, 1, size=(300, 8))
    within = kid_within_terms(b, 200, n_subsets=7, seed=5)
    assert kid(a, b, 7, 200, seed=5, b_within=within) == kid(a, b, 7, 200, seed=5)


def test_kid_is_seeded():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert kid(a, b, 10, 100, seed=3) == kid(a, b, 10, 100, seed=3)


# --- precision, recall, density, coverage ----------------------------------------------------

def test_prdc_identical_sets():
    f = np.random.default_rng(10).normal(size=(800, 16))
    r = precision_recall_density_coverage(f, f, k=5)
    assert r == {"precision": 1.0, "recall": 1.0, "density": pytest.approx(1.0), "coverage": 1.0}


def test_prdc_same_distribution_and_disjoint():
    rng = np.random.default_rng(11)
    real, fake = rng.normal(size=(1500, 8)), rng.normal(size=(1500, 8))
    r = precision_recall_density_coverage(real, fake, k=5)
    assert r["precision"] > 0.7 and r["recall"] > 0.7 and r["coverage"] > 0.9
    assert r["density"] == pytest.approx(1.0, abs=0.15)
    far = precision_recall_density_coverage(real, fake + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_mode_collapse_keeps_precision_loses_recall_and_coverage():
    rng = np.random.default_rng(12)
    real = rng.normal(size=(1000, 4))
    collapsed = real[np.argsort(real[:, 0])[:100]][rng.integers(0, 100, 1000)] + rng.normal(0, 1e-3, (1000, 4))
    r = precision_recall_density_coverage(real, collapsed, k=5)
    assert r["precision"] > 0.95
    assert r["recall"] < 0.3 and r["coverage"] < 0.3


def test_prdc_against_brute_force():
    rng = np.random.default_rng(13)
    real, fake, k = rng.normal(size=(300, 5)), rng.normal(0.3, 1.2, size=(200, 5)), 3
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    r_rad, f_rad = np.sort(d_rr, 1)[:, k], np.sort(d_ff, 1)[:, k]
    inside = d_rf < r_rad[:, None]
    expected = {
        "precision": inside.any(0).mean(),
        "recall": (d_rf < f_rad[None, :]).any(1).mean(),
        "density": inside.sum(0).mean() / k,
        "coverage": (d_rf.min(1) < r_rad).mean(),
    }
    got = precision_recall_density_coverage(real, fake, k=k)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_prdc_float32_blocks_give_the_float64_counts_on_ties_and_far_points(offset):
    """Distances come from float32 blocks with float64 rechecks near each threshold: on integer
    points (many exact ties at the radii), far from the origin (large norms), and with fakes that
    equal reals, every count equals the brute-force float64 one and the radii scikit-learn's."""
    from sklearn.neighbors import NearestNeighbors

    from harness.scoring.metrics.generative import kth_neighbour_sq_distances

    rng = np.random.default_rng(14)
    real = rng.integers(0, 5, size=(700, 6)).astype(float) + offset
    fake = np.concatenate([real[:200], rng.integers(0, 5, size=(400, 6)) + offset + rng.normal(0, 0.3, (400, 6))])
    k = 5
    for x in (real, fake):
        dist, _ = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors()
        assert np.allclose(kth_neighbour_sq_distances(x, k), dist[:, k - 1] ** 2, rtol=1e-9, atol=1e-9)
    d_rr = ((real[:, None] - real[None]) ** 2).sum(-1)
    d_ff = ((fake[:, None] - fake[None]) ** 2).sum(-1)
    d_rf = ((real[:, None] - fake[None]) ** 2).sum(-1)
    r_rad = np.sort(d_rr, 1)[:, k] * (1 - 1e-9)
    f_rad = np.sort(d_ff, 1)[:, k] * (1 - 1e-9)
    inside = d_rf < r_rad[:, None]
    expected = {
        "precision": inside.any(0).mean(),
        "recall": (d_rf < f_rad[None, :]).any(1).mean(),
        "density": inside.sum(0).sum() / (k * len(fake)),
        "coverage": inside.any(1).mean(),
    }
    assert precision_recall_density_coverage(real, fake, k=k) == expected


# copy detection: tests/test_copy_detection.py


# --- sample grid -----------------------------------------------------------------------------

def test_save_grid_writes_a_png(tmp_path):
    from PIL import Image

    from harness.images import grid_array, save_grid

    images = np.zeros((100, 1, 28, 28), np.float32)
    images[7, 0] = 1.0  # the 8th image, row 0 / column 7, is white
    path = save_grid(images, tmp_path / "sub" / "samples.png", ncols=10)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "L" and im.size == (10 * 30 + 2, 10 * 30 + 2)
        pixels = np.asarray(im)
    assert pixels[2 + 14, 2 + 7 * 30 + 14] == 255 and pixels[2 + 14, 2 + 6 * 30 + 14] == 0
    assert grid_array(images[:3], ncols=10).shape == (30 + 2, 3 * 30 + 2)  # fewer than a row
    assert grid_array(np.full((11, 28, 28), np.nan), ncols=10).shape == (2 * 30 + 2, 10 * 30 + 2)
    with pytest.raises(ValueError):
        save_grid(np.zeros((0, 1, 28, 28), np.float32), tmp_path / "empty.png")


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_prdc_with_precomputed_fake_radii_is_the_same(offset):
    """The suite computes the fakes' radii on another thread (centred on the real mean, as prdc does):
    the result equals prdc's own, on ties (fakes equal to reals) and far from the origin too."""
    rng = np.random.default_rng(5)
    real = rng.normal(size=(400, 8)) + offset
    fake = np.concatenate([real[:150], rng.normal(0.2, 1.1, size=(250, 8)) + offset])
    radii = kth_neighbour_sq_distances(fake, 5, centre_on=real)
    alone = precision_recall_density_coverage(real, fake, k=5)
    assert precision_recall_density_coverage(real, fake, k=5, fake_radii_sq=radii) == alone
    with pytest.raises(ValueError, match="fake_radii_sq must have shape"):
        precision_recall_density_coverage(real, fake, k=5, fake_radii_sq=radii[:-1])
    with pytest.raises(ValueError, match="feature sizes differ"):
        kth_neighbour_sq_distances(fake, 5, centre_on=real[:, :3])
