"""The identity of a grading configuration, recorded with every run (``versions["config"]``) so that
``harness grade --resume`` knows which stored runs were graded under the configuration in force."""

from __future__ import annotations

import hashlib
import json

from harness.competition import Competition

# Keys of competition.yaml that change no grade: editing them must not make every run stale.
PRESENTATION_KEYS = ("name", "selection", "overall")


def config_sha256(comp: Competition, seed: int | None = None) -> str:
    """SHA-256 of the effective grading configuration: competition.yaml without its presentation
    keys, and the seed actually used (``--seed`` or the config's)."""
    raw = {k: v for k, v in comp.raw.items() if k not in PRESENTATION_KEYS}
    effective = {"config": raw, "seed": comp.seed if seed is None else int(seed)}
    return hashlib.sha256(json.dumps(effective, sort_keys=True, default=str).encode()).hexdigest()
