"""Seconds and peak memory to validate and split a large OpenAI batch input file.

Writes a JSON Lines file of chat completion requests (by default 50,000
requests, about 200 MB). Then runs the batch manager's planning step on it:
every line is parsed, checked and written to a part file within OpenAI's
limits (50,000 requests or 200 MB per file). The planning runs in a child
process, so its peak resident memory is measured on its own.

    .venv/bin/python bench/bench_batch.py --requests 50000 --bytes 200000000
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

_CHILD = """
import resource, sys, time
from pathlib import Path
from thrifty.batch.plan import plan_job
from thrifty.batch.validate import InputOptions

source, folder = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
plan = plan_job(source, InputOptions(), folder=folder)
elapsed = time.perf_counter() - started
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
assert not plan.issues, plan.issues[:3]
parts = ",".join(str(part.requests) for part in plan.parts)
print(f"{elapsed:.3f} {peak_mib:.1f} {len(plan.requests)} {parts}")
"""


def write_input(path: Path, requests: int, total_bytes: int) -> int:
    """Write ``requests`` lines of about ``total_bytes`` in all; return the file's size."""
    template = {
        "custom_id": "",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": ""}],
            "max_tokens": 64,
        },
    }
    empty = len(orjson.dumps(template)) + len("request-00000") + 1
    filler = max(total_bytes // requests - empty, 0)
    word = "Summarize this support ticket and name its product area. "
    content = (word * (filler // len(word) + 1))[:filler]
    with path.open("wb") as handle:
        for index in range(requests):
            template["custom_id"] = f"request-{index:05d}"
            template["body"]["messages"][0]["content"] = content  # type: ignore[index]
            handle.write(orjson.dumps(template) + b"\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--bytes", type=int, default=200_000_000, help="approximate file size")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input.jsonl"
        size = write_input(source, args.requests, args.bytes)
        print(f"input: {args.requests:,} requests, {size:,} bytes")
        print(
            f"machine: {platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}, parent peak "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
        for round_number in range(1, args.rounds + 1):
            parts = Path(folder) / f"parts-{round_number}"
            parts.mkdir()
            started = time.perf_counter()
            output = subprocess.run(
                [sys.executable, "-c", _CHILD, str(source), str(parts)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            wall = time.perf_counter() - started
            elapsed, peak, planned, sizes = output
            print(
                f"round {round_number}: plan {float(elapsed):.2f} s (child wall {wall:.2f} s), "
                f"peak RSS {float(peak):.0f} MiB, {int(planned):,} requests in parts of {sizes}"
            )


if __name__ == "__main__":
    main()
