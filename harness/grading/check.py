"""``harness check``: what would fail later, found in seconds, one actionable line per problem."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from harness import data, manifest as manifest_mod, sandbox
from harness.grading.jobs import ingestion_device, options_for_slot
from harness.grading.grade import GradeOptions, failure_from, job_spec, run_job, training_settings
from harness.sandbox.copy import remove_tree
from harness.scoring.outputs import InvalidOutput, read_json
from harness.scoring.tracks.context import save_inputs

CHECK_IMAGES = 16
# numpy calls that are fine inside forward (dtypes and constants, not array computations)
NUMPY_ALLOWED = {"float16", "float32", "float64", "int8", "int32", "int64", "uint8", "dtype", "prod", "sqrt"}
DEVICE_CALLS = {"to_gpu", "to_cpu", "to_device", "to_intel64"}
FORWARD_NAMES = {"forward", "__call__", "make_hidden", "anomaly_score"}


def static_problems(root: Path, file: str) -> list[str]:
    """Device-portability mistakes visible in the source: moving data between devices or using
    numpy on Variables inside forward. Parsed, never imported."""
    path = root / file
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [f"{file}, line {exc.lineno}: syntax error: {exc.msg}"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{file}: cannot be read ({exc})"]
    problems = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name not in FORWARD_NAMES:
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr, owner = node.func.attr, node.func.value
            if attr in DEVICE_CALLS:
                problems.append(f"{file}, line {node.lineno}: {fn.name}() calls {attr}(): the harness places models "
                                f"and data on the device; remove it so the model runs on CPU and GPU alike")
            elif isinstance(owner, ast.Name) and owner.id in ("np", "numpy") and attr not in NUMPY_ALLOWED:
                problems.append(f"{file}, line {node.lineno}: {fn.name}() calls {owner.id}.{attr}(): this breaks on "
                                f"the GPU and cuts the gradient; use chainer.functions or self.xp.{attr}")
    return problems


def check_submission(path: Path, opts: GradeOptions) -> list[str]:
    """Every problem found in the submission at ``path`` (empty when it looks ready to grade)."""
    path = Path(path)
    opts = options_for_slot(opts, 0)  # on a GPU, expose its device node to the check too
    try:
        manifest = manifest_mod.load(path)
    except manifest_mod.ManifestError as exc:
        return exc.problems
    problems: list[str] = []
    files = sorted({ref.file for spec in manifest.tracks.values() for ref in spec.classes.values()})
    for file in files:
        problems += static_problems(path, file)
    mnist = data.load()
    limits = sandbox.Limits(wall_seconds=120, cpu_seconds=240,
                            memory_bytes=int(opts.competition["budget"]["memory_mb"]) << 20)

    def write_inputs(d: Path) -> None:
        save_inputs(d, train_x=mnist.train_x[:CHECK_IMAGES], train_y=mnist.train_y[:CHECK_IMAGES])

    for track, spec in manifest.tracks.items():
        if track not in opts.tracks:
            continue
        settings, clamped = training_settings(spec, opts.competition, opts.quick)
        for key, c in clamped.items():
            problems.append(f"{manifest.path}: {track}.{key}: {c['asked']} is above the competition's budget; "
                            f"it will be clamped to {c['used']}")
        job = job_spec(spec, settings, "check", opts.competition.seed,
                       ingestion_device(opts.device, opts.gpu_devices), {})
        work = None
        try:
            work, result = run_job(path, job, write_inputs, limits, opts.isolation, opts.gpu_devices)
            failed = failure_from(result, work / "output")
            if failed:
                problems.append(f"{track}: {failed.status}: {failed.message}")
                continue
            try:
                problems += [f"{track}: {p}" for p in read_json(work / "output", "check.json").get("problems", [])]
            except InvalidOutput as exc:
                problems.append(f"{track}: the check did not finish ({exc})")
        except sandbox.SubmissionCopyError as exc:
            problems.append(str(exc))
            break
        finally:
            if work is not None:
                remove_tree(work)  # iterative: a run may leave a 1,100-deep tree in /output
    return problems
