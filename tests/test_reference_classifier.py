"""The shipped reference classifier and the metric suite it drives (uses the cached test statistics)."""

import hashlib
import math
import shutil

import numpy as np
import pytest

from harness import data

from harness.scoring import reference_classifier as reference
from harness.scoring.tracks import generate_suite
from harness.scoring.metrics.generative import METRIC_KEYS, classifier_score, frechet_distance, gaussian_statistics


def test_shipped_weights_match_the_pinned_sha256_and_are_small():
    blob = reference.WEIGHTS_PATH.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == reference.REFERENCE_SHA256
    assert len(blob) < 3_000_000
    with np.load(reference.WEIGHTS_PATH, allow_pickle=False) as z:
        assert all(z[k].dtype.kind in "fi" for k in z.files)


def test_tampered_weights_are_refused(tmp_path):
    bad = tmp_path / "reference_classifier.npz"
    shutil.copyfile(reference.WEIGHTS_PATH, bad)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bad.write_bytes(bytes(raw))
    with pytest.raises(reference.ReferenceIntegrityError, match="SHA-256"):
        reference.load_reference(bad)
    with pytest.raises(reference.ReferenceIntegrityError, match="missing"):
        reference.load_reference(tmp_path / "absent.npz")


def test_model_builds_without_arguments():
    model = reference.ReferenceClassifier()
    assert sum(p.size for p in model.params() if p.array is not None) > 0


def test_real_test_images_score_high(mnist):
    probs, feats = reference.test_features()
    assert probs.shape == (10000, 10) and feats.shape == (10000, reference.FEATURE_SIZE)
    assert probs.dtype == feats.dtype == np.float64
    assert (probs.argmax(1) == mnist.test_y).mean() >= 0.993
    # the classifier's own softmax, no temperature: 9.75 on the shipped weights (the ceiling row)
    assert classifier_score(probs) >= 9.7


def test_predict_agrees_with_the_cache_and_ignores_batch_size(mnist):
    x = data.to_images(mnist.test_x[:150])
    probs, feats = reference.predict(x)
    probs7, feats7 = reference.predict(x, batch_size=7)
    cached_probs, cached_feats = reference.test_features()
    assert np.array_equal(probs, cached_probs[:150]) and np.array_equal(feats, cached_feats[:150])
    assert np.array_equal(feats, feats7) and np.array_equal(probs, probs7)
    assert np.allclose(probs.sum(1), 1.0)


def test_features_are_bitwise_independent_of_order_and_count(mnist):
    x = data.to_images(mnist.test_x[:600])
    logits, feats = reference.predict_raw(x)
    perm = np.random.default_rng(3).permutation(600)
    for subset in (perm, perm[:1], perm[:251], perm[:499]):
        lp, fp = reference.predict_raw(x[subset])
        assert np.array_equal(fp, feats[subset]) and np.array_equal(lp, logits[subset])


def test_numpy_forward_matches_chainer_within_tolerance(mnist):
    """The NumPy pass against Chainer's network: features within 2e-5 absolute, same classes."""
    x = data.to_images(mnist.test_x[:1000])
    logits, feats = reference.predict_raw(x)
    c_logits, c_feats = reference.predict_chainer(x)
    assert np.abs(feats - c_feats).max() < 2e-5
    assert np.abs(logits - c_logits).max() < 5e-5
    assert np.array_equal(logits.argmax(1), c_logits.argmax(1))


def test_real_data_density_is_exactly_one_with_a_permuted_test_set(mnist):
    from harness.scoring.metrics.generative import precision_recall_density_coverage
    _, feats = reference.test_features()
    perm = np.random.default_rng(5).permutation(10000)[:2000]
    _, permuted = reference.predict(data.to_images(mnist.test_x[perm]))
    assert np.array_equal(permuted, feats[perm])
    prdc = precision_recall_density_coverage(feats[perm], permuted, 5)
    assert prdc["density"] == 1.0


def test_test_feature_statistics():
    mu, sigma = reference.test_feature_statistics()
    _, feats = reference.test_features()
    assert mu.shape == (reference.FEATURE_SIZE,) and sigma.shape == (reference.FEATURE_SIZE,) * 2
    assert np.allclose(mu, feats.mean(0)) and np.allclose(sigma, np.cov(feats, rowvar=False))


def test_real_vs_real_fcd_near_zero_and_noise_far_worse():
    _, feats = reference.test_features()
    mu, sigma = reference.test_feature_statistics()
    half_a, half_b = feats[0::2], feats[1::2]
    real_vs_real = frechet_distance(*gaussian_statistics(half_a), *gaussian_statistics(half_b))
    noise = np.random.default_rng(0).uniform(0, 1, (500, 1, 28, 28)).astype(np.float32)
    noise_probs, noise_feats = reference.predict(noise)
    noise_fcd = frechet_distance(*gaussian_statistics(noise_feats), mu, sigma)
    assert real_vs_real < 0.01 * noise_fcd
    assert classifier_score(noise_probs) < 2.0


def test_generative_metrics_real_digits_copies_and_noise(mnist):
    """The whole suite on 600 images of each kind (the first call fills the disk caches)."""
    real = generate_suite.generative_metrics(data.to_images(mnist.test_x[:600]))
    assert tuple(real) == METRIC_KEYS
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in real.values())
    assert real["classifier_score"] >= 9.5
    assert real["class_entropy"] > 2.25 and real["classes_covered"] == 10
    assert real["precision"] > 0.8 and real["density"] > 0.8
    assert real["copy_rate"] < 0.01

    copies = generate_suite.generative_metrics(data.to_images(mnist.train_x[:600]))
    assert copies["copy_rate"] == 1.0
    assert copies["classifier_score"] >= 9.5  # a memoriser looks perfect to the feature metrics

    noise = generate_suite.generative_metrics(np.random.default_rng(0).uniform(0, 1, (600, 1, 28, 28)).astype(np.float32))
    assert noise["copy_rate"] == 0.0
    assert noise["fcd"] > 50 * real["fcd"]
    assert noise["kid_mean"] > 50 * max(real["kid_mean"], 1e-3)
    assert noise["precision"] < 0.05 and noise["coverage"] < 0.05
    assert noise["classifier_score"] < 2.0


def test_generative_metrics_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        generate_suite.generative_metrics(np.zeros((10, 28, 28), np.float32))
