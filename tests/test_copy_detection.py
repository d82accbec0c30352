"""Copy detection (harness.scoring.metrics.copy_detection) on real MNIST: training images hidden the
way a memoriser would hide them (shifts, noise, brightness, blends) are caught; held-out test
images and noise are not. A small index (10,000 training images) keeps the test in seconds."""

import numpy as np
import pytest

from harness.scoring.metrics.copy_detection import CopyIndex, canonical_shifts, copy_rate, copy_thresholds

N = 300  # disguised copies per attack


@pytest.fixture(scope="module")
def setup(mnist):
    train = mnist.train_x[:10000].reshape(-1, 28, 28).astype(np.float32) / 255
    test = mnist.test_x.reshape(-1, 28, 28).astype(np.float32) / 255
    index = CopyIndex(train, n_clusters=64)
    single, pair = index.scores(test[:4000])
    return train, test, index, copy_thresholds(single, pair, 0.002)


def _shifted(x, k, rng):
    s = rng.integers(-k, k + 1, size=(len(x), 2))
    s[(s == 0).all(axis=1), 0] = k
    return np.stack([np.roll(a, tuple(d), axis=(0, 1)) for a, d in zip(x, s)])


def attacks(train):
    rng = np.random.default_rng(7)
    a, b = train[rng.choice(len(train), N, replace=False)], train[rng.choice(len(train), N, replace=False)]
    return {
        "plain": a, "shift1": _shifted(a, 1, rng), "shift2": _shifted(a, 2, rng),
        "noise0.05": np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1), "noise0.1": np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1),
        "bright0.8": a * 0.8, "bright1.2": np.clip(a * 1.2, 0, 1),
        "blend70/30": 0.7 * a + 0.3 * b, "blend50/50": 0.5 * a + 0.5 * b,
    }


# the share each attack must reach; far above any max_copy_rate (0.05), so every memoriser is unranked
FLOOR = {"plain": 0.99, "shift1": 0.95, "shift2": 0.9, "noise0.05": 0.9, "noise0.1": 0.7, "bright0.8": 0.99,
         "bright1.2": 0.95, "blend70/30": 0.7, "blend50/50": 0.3}


def test_every_disguise_is_caught(setup):
    train, _, index, th = setup
    rates = {k: copy_rate(v.astype(np.float32), index, th) for k, v in attacks(train).items()}
    assert all(rates[k] >= FLOOR[k] for k in FLOOR), rates


def test_copied_skips_the_pair_score_but_flags_the_same_samples(setup):
    """copy_rate computes the pair score only for samples the single score has not flagged: the
    flags must equal those of both full scores, on every disguise and on held-out digits."""
    train, test, index, th = setup
    x = np.concatenate([*attacks(train).values(), test[5000:5600]]).astype(np.float32)
    single, pair = index.scores(x)
    assert np.array_equal(index.copied(x, th), (single < th[0]) | (pair < th[1]))


def test_held_out_digits_and_noise_are_not_copies(setup):
    _, test, index, th = setup
    assert copy_rate(test[5000:7000], index, th) < 0.01  # calibrated to about 0.002 here
    noise = np.random.default_rng(1).uniform(0, 1, (500, 28, 28)).astype(np.float32)
    assert copy_rate(noise, index, th) == 0.0


def test_state_round_trip_gives_the_same_scores(setup):
    train, test, index, _ = setup
    again = CopyIndex(train, state=index.state())
    assert all(np.array_equal(a, b) for a, b in zip(index.scores(test[:200]), again.scores(test[:200])))
    with pytest.raises(ValueError, match="does not match 9999 training images"):
        CopyIndex(train[:9999], state=index.state())


def test_uint8_training_pixels_give_bitwise_the_same_scores(setup, mnist):
    """The checks gather candidates from uint8 pixels when the index was given uint8 (a quarter of
    the bytes), converted exactly as x / 255 in float32: the scores must not change by a bit."""
    _, test, index, _ = setup
    from_u8 = CopyIndex(mnist.train_x[:10000].reshape(-1, 28, 28), state=index.state())
    assert all(np.array_equal(a, b) for a, b in zip(index.scores(test[:300]), from_u8.scores(test[:300])))


def test_canonical_shift_undoes_a_shift(setup):
    train = setup[0][:200]
    moved = np.roll(train, (2, -1), axis=(1, 2))
    diff = canonical_shifts(moved) - canonical_shifts(train)
    assert (np.abs(diff - np.array([-2, 1])) <= 1).all(axis=1).mean() > 0.97  # the rest: clipped at +-4 px


def test_bad_input_is_named(setup):
    index = setup[2]
    with pytest.raises(ValueError, match="samples must hold 28x28 images"):
        index.scores(np.zeros((3, 27, 27), np.float32))
    with pytest.raises(ValueError, match="samples must be finite"):
        index.scores(np.full((3, 28, 28), np.nan, np.float32))


def test_run_message_and_leaderboard_give_the_same_unranked_reason(mnist):
    """The grade line, --json, JUnit and Gradescope carry the run's message; the leaderboards
    compute the reason from the stored metrics: both must say the same."""
    from harness import competition
    from harness.scoring.tracks.context import ScoringContext
    from harness.scoring.tracks.generate import run_notes
    from harness.standings.per_track import unranked_reason

    comp = competition.load()
    ctx = ScoringContext(mnist=mnist, competition=comp, quick=True, seed=0, artifacts_dir=None)
    limit = float(comp.raw["generate"]["max_copy_rate"])
    for rate in (1.0, limit + 0.01, limit, 0.0):
        metrics = {"copy_rate": rate, "fcd": 1.0}
        notes = run_notes(ctx, metrics)
        assert notes == ([unranked_reason("generate", metrics, comp)] if rate > limit else [])
    assert run_notes(ctx, {"copy_rate": 1.0})[0].startswith("unranked: copy_rate 1.00 > max_copy_rate")
