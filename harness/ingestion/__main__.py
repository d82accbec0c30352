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
        track = importlib.import_module(job.spec.get("ingestion_module") or f"harness.ingestion.{job.track}")
        if job.spec.get("mode") == "check":
            from harness.ingestion.checks import run_check

            (args.output / "check.json").write_text(json.dumps(run_check(job, track)))
            return 0
        track.run(job)
        return 0
    except SubmissionError as exc:
        return fail("INVALID_SUBMISSION", "\n".join(exc.problems) if len(exc.problems) > 1 else str(exc), 3)
    except OutputError as exc:
        return fail("INVALID_SUBMISSION", str(exc), 3)
    except MemoryError as exc:
        return fail("OUT_OF_MEMORY", f"ran out of memory ({describe(exc)})", 4)
    except Exception as exc:
        return fail("CRASH", job.describe(exc) if job is not None else describe(exc), 1)


if __name__ == "__main__":
    sys.exit(main())
