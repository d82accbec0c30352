"""The course's three tracks (SPEC: Submission contract, Metrics)."""

from harness.tracks import Track, register

CLASSIFY = register(Track(
    name="classify", roles=("model",), rank_key="test_accuracy_public", private_rank_key="test_accuracy_private",
    higher_is_better=True,
    public_keys=frozenset({"test_accuracy_public", "accuracy_gap_public", "test_loss_public", "loss_gap_public",
                           "train_accuracy", "train_loss", "params", "train_seconds",
                           "train_accuracy_subset"}),  # --quick: train accuracy/loss on this many images
    columns=(("test_accuracy", "test acc", "{:.4f}"), ("train_accuracy", "train acc", "{:.4f}"),
             ("accuracy_gap", "acc gap", "{:+.4f}"), ("test_loss", "test loss", "{:.4f}"),
             ("params", "params", "{:,}"), ("train_seconds", "train s", "{:.1f}")),
    scorer="harness.scoring.tracks.classify", ingestion="harness.ingestion.classify"))

GENERATE = register(Track(
    name="generate", roles=("generator", "discriminator"), rank_key="fcd", higher_is_better=False,
    columns=(("fcd", "fcd", "{:.3f}"), ("classifier_score", "cls score", "{:.3f}"), ("kid_mean", "kid", "{:.4f}"),
             ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
             ("coverage", "coverage", "{:.3f}"), ("classes_covered", "classes", "{}"),
             ("copy_rate", "copy rate", "{:.3f}")),
    scorer="harness.scoring.tracks.generate", ingestion="harness.ingestion.generate"))

ANOMALY = register(Track(
    name="anomaly", roles=("model",), rank_key="auroc", higher_is_better=True,
    columns=(("auroc", "auroc", "{:.4f}"), ("auroc_salt", "salt", "{:.4f}"), ("auroc_vbar", "vbar", "{:.4f}"),
             ("auroc_oneclass_mean", "one-class", "{:.4f}"), ("params", "params", "{:,}"),
             ("train_seconds", "train s", "{:.1f}")),
    scorer="harness.scoring.tracks.anomaly", ingestion="harness.ingestion.anomaly"))
