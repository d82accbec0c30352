"""Entry point of the ingestion process (see harness/ingestion/__init__.py)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.ingestion")
    parser.add_argument("--submission", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)

    def fail(kind: str, message: str, code: int) -> int:
        (args.output / "error.json").write_text(json.dumps({"status": kind, "message": message[:2000]}))
        print(f"{kind}: {message}", file=sys.stderr)
        return code

    from harness.ingestion.common import Job, SubmissionError, describe
    from harness.ingestion.shapes import OutputError

    job = None
    try:
        job = Job(args.submission, args.input, args.output)
        convolution = cpu_convolution(job)  # installed before the student's model is built
        track = importlib.import_module(job.spec.get("ingestion_module") or f"harness.ingestion.{job.track}")
        if job.spec.get("mode") == "check":
            from harness.ingestion.checks import run_check

            (args.output / "check.json").write_text(json.dumps(run_check(job, track)))
            return 0
        track.run(job)
        record_convolution(args.output, convolution)
        return 0
    except SubmissionError as exc:
        return fail("INVALID_SUBMISSION", "\n".join(exc.problems) if len(exc.problems) > 1 else str(exc), 3)
    except OutputError as exc:
        return fail("INVALID_SUBMISSION", str(exc), 3)
    except MemoryError as exc:
        return fail("OUT_OF_MEMORY", f"ran out of memory ({describe(exc)})", 4)
    except Exception as exc:
        return fail("CRASH", job.describe(exc) if job is not None else describe(exc), 1)


def cpu_convolution(job) -> str:
    """On the CPU, Chainer's 2-D (de)convolutions run the harness's own faster kernels (fast_conv),
    Adam's update runs in place (fast_adam: the same bits, without Chainer's temporaries), and max
    pooling by non-overlapping windows skips im2col (fast_pool: the same bits), unless the job asks
    for stock Chainer (``harness grade --stock-chainer``, or ``cpu_convolution: stock`` in
    competition.yaml). Returns which convolution runs, for the results."""
    from harness.ingestion import fast_adam, fast_conv, fast_pool

    fast = job.device.xp.__name__ == "numpy" and job.spec.get("cpu_convolution", "fast") != "stock"
    for module in (fast_conv, fast_adam, fast_pool):
        module.install() if fast else module.uninstall()
    return fast_conv.describe()


def record_convolution(output: Path, convolution: str) -> None:
    """Add which CPU convolution ran to the track's meta.json (the grader records it with the run)."""
    meta_path = output / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta["convolution"] = convolution
        meta_path.write_text(json.dumps(meta))


if __name__ == "__main__":
    sys.exit(main())
