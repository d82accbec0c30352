"""Who sees which metric (SPEC: "What students see before the reveal").

Everything a student or a pull request can read (``harness grade`` output, ``--json``, JUnit,
Gradescope, the Markdown summary, ``harness report``, ``harness history``, every leaderboard export)
goes through :func:`visible_metrics`, the one filter:

* **before** ``harness reveal``, a track with a private half (classify) shows only its declared
  public keys (``Track.public_keys``): ``test_accuracy_public``, ``accuracy_gap_public``,
  ``test_loss_public``, ``loss_gap_public``, the training figures, ``params`` and ``train_seconds``.
  Whole-test and private figures (``test_accuracy``, ``test_accuracy_private``, ``accuracy_gap``,
  ``test_loss``, ``loss_gap``) stay in the store. The list is an allow-list: a metric nobody declared
  public stays hidden, so a run stored before the public keys existed leaks nothing either;
* **after** the reveal, every key is shown;
* losses (every key with ``loss`` in its name) are rounded to 4 significant digits for both
  audiences: full-precision losses let crafted logits encode test labels in their digits;
* ``private=True`` is the instructor (``--private``): every key, unrounded, as stored.
"""

from __future__ import annotations

import math

from harness import tracks

LOSS_DIGITS = 4


def round_sig(value, digits: int = LOSS_DIGITS):
    """``value`` rounded to ``digits`` significant digits (non-finite values and non-floats unchanged)."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def is_loss(key: str) -> bool:
    return "loss" in key


def _spec(track: str):
    try:
        return tracks.get(track)
    except ValueError:
        return None


def hidden_before_reveal(track: str, key: str) -> bool:
    """Whether ``key`` of ``track`` is withheld from students until ``harness reveal``."""
    spec = _spec(track)
    if spec is not None and spec.public_keys:
        return key not in spec.public_keys
    return key.endswith("_private")  # an unknown track: at least nothing named private


def visible_metrics(track: str, metrics: dict, revealed: bool = False, private: bool = False) -> dict:
    """The metrics of one run of ``track`` as its audience may see them (see the module docstring).

    revealed: the store is revealed (``harness reveal``); private: the instructor asked for everything.
    """
    metrics = dict(metrics or {})
    if private:
        return metrics
    return {k: (round_sig(v) if is_loss(k) else v) for k, v in metrics.items()
            if revealed or not hidden_before_reveal(track, k)}


def shown_key(track: str, key: str, revealed: bool) -> str | None:
    """The metric a column named ``key`` shows to this audience: itself, its public-half twin
    (``accuracy_gap`` -> ``accuracy_gap_public``) before the reveal, or None when hidden."""
    if revealed or not hidden_before_reveal(track, key):
        return key
    twin = f"{key}_public"
    return twin if not hidden_before_reveal(track, twin) else None


def hidden_keys_hint(track: str, key: str) -> str:
    """For a message about a metric a student cannot see: where to look instead."""
    twin = shown_key(track, key, revealed=False)
    if twin and twin != key:
        return f"'{key}' is hidden until the reveal (it covers the private half); use '{twin}'"
    return f"'{key}' is hidden until the reveal (it covers the private half)"
