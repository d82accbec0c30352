"""``harness check``: what would fail later, found in seconds, one actionable line per problem."""

from __future__ import annotations

import re
from pathlib import Path

from harness import data, manifest as manifest_mod, sandbox
from harness.grading.jobs import ingestion_device, options_for_slot
from harness.grading.grade import GradeOptions, failure_from, job_spec, run_job, training_settings
from harness.sandbox.copy import remove_tree
from harness.scoring.outputs import InvalidOutput, read_json
from harness.scoring.tracks.context import save_inputs

CHECK_IMAGES = 16
SOURCE_LINE = re.compile(r"^\S+\.(?:py|ipynb)(?:, cell \d+)?(?:, line \d+)?: ")  # about a file, not a track


class CheckReport(list):
    """The problems (the list itself: any one fails the check) and ``warnings`` (printed, exit 0): what
    the grade would also accept, such as a clamp, a reshaped output or a stubbed plotting import."""

    def __init__(self, problems=(), warnings=()):
        super().__init__(problems)
        self.warnings = list(warnings)


def _add(lines: list[str], seen: set[str], track: str, message: str) -> None:
    """A line once: a file shared by two tracks gives its source problems once, unprefixed."""
    if message in seen:
        return
    seen.add(message)
    lines.append(message if SOURCE_LINE.match(message) else f"{track}: {message}")


def check_submission(path: Path, opts: GradeOptions) -> CheckReport:
    """Every problem (and warning) found in the submission at ``path``; no problems: ready to grade.

    The source checks (syntax, imports, a notebook's definitions, numpy or device calls where the
    harness calls the student's code) and the tiny-batch run happen in the sandboxed ingestion
    process, through the code paths the grade uses, so that check and grade say the same thing."""
    path = Path(path)
    opts = options_for_slot(opts, 0)  # on a GPU, expose its device node to the check too
    try:
        manifest = manifest_mod.load(path)
    except manifest_mod.ManifestError as exc:
        return CheckReport(exc.problems)
    problems: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    mnist = data.load()
    limits = sandbox.Limits(wall_seconds=120, cpu_seconds=240,
                            memory_bytes=int(opts.competition["budget"]["memory_mb"]) << 20)

    def write_inputs(d: Path) -> None:
        save_inputs(d, train_x=mnist.train_x[:CHECK_IMAGES], train_y=mnist.train_y[:CHECK_IMAGES])

    for track, spec in manifest.tracks.items():
        if track not in opts.tracks:
            continue
        settings, clamped = training_settings(spec, opts.competition, False)
        for key, c in clamped.items():
            warnings.append(f"{manifest.path}: {track}.{key}: {c['asked']} is above the competition's budget; "
                            f"it will be clamped to {c['used']}")
        job = job_spec(spec, settings, "check", opts.competition.seed,
                       ingestion_device(opts.device, opts.gpu_devices), {})
        work = None
        try:
            work, result = run_job(path, job, write_inputs, limits, opts.isolation, opts.gpu_devices)
            failed = failure_from(result, work / "output")
            if failed:
                for line in failed.message.splitlines() or [""]:
                    _add(problems, seen, track, f"{failed.status}: {line}")
                continue
            try:
                found = read_json(work / "output", "check.json")
                for key, lines in (("problems", problems), ("warnings", warnings)):
                    for p in found.get(key, []) if isinstance(found.get(key), list) else []:
                        _add(lines, seen, track, str(p)[:2000])
            except InvalidOutput as exc:
                problems.append(f"{track}: the check did not finish ({exc})")
        except sandbox.SubmissionCopyError as exc:
            problems.append(str(exc))
            break
        finally:
            if work is not None:
                remove_tree(work)  # iterative: a run may leave a 1,100-deep tree in /output
    return CheckReport(problems, warnings)
