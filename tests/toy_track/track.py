"""A toy track, declared the way a course adds one: this folder plus its entry in competition.yaml.
Parity: tell even digits from odd ones; logits (N, 2); ranked by accuracy on the test set."""

from harness.tracks import Track, register

register(Track(name="parity", roles=("model",), rank_key="parity_accuracy", higher_is_better=True,
               columns=(("parity_accuracy", "parity acc", "{:.4f}"), ("train_seconds", "train s", "{:.1f}")),
               scorer="scorer.py", ingestion="ingestion.py"))
