"""Memory soak: a long run of requests through Thrifty while its RSS is sampled.

Starts the sandbox and ``thrifty serve`` (metering, a lifetime budget on the
virtual key, records in the spool and the SQLite ledger), then runs wrk
(keep-alive connections, a Lua script POSTs the body) in rounds of
``--round-seconds`` until ``--requests`` have been answered or
``--max-minutes`` have passed. The gateway's RSS is sampled every
``--sample-seconds``. Growth is measured from the end of the warm-up (the
first ``--warmup-requests``) to the end of the run. At the end the gateway is
stopped and the ledger is counted: every answered request must have its row.

    .venv/bin/python bench/bench_soak.py --requests 1000000 --connections 32 \\
        --csv soak-rss.csv
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

from harness import Services, StatsSampler, request_body, run_wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="responses to wait for")
    parser.add_argument("--warmup-requests", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--round-seconds", type=float, default=30.0, help="length of a wrk run")
    parser.add_argument("--max-minutes", type=float, default=40.0, help="stop after this long")
    parser.add_argument("--sample-seconds", type=float, default=1.0, help="RSS sample interval")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument("--csv", type=Path, help="write (seconds, requests, rss MB) samples here")
    args = parser.parse_args()

    body = request_body(stream=args.stream)
    with Services() as services:
        sandbox = services.sandbox()
        gateway = services.thrifty(sandbox.url.rsplit("/v1/", 1)[0])
        assert gateway.process is not None
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        answered = errors = 0
        timeline: list[tuple[float, int, float]] = []
        began = time.monotonic()
        deadline = began + args.max_minutes * 60
        with StatsSampler(gateway.process.pid, args.sample_seconds) as sampler:
            while answered < args.requests and time.monotonic() < deadline:
                result = run_wrk(
                    gateway, body, seconds=args.round_seconds, connections=args.connections
                )
                answered += result.requests - result.non_2xx
                errors += result.non_2xx + result.socket_errors
                rss = sampler.stats.rss_samples[-1][1] if sampler.stats.rss_samples else 0.0
                timeline.append((time.monotonic() - began, answered, rss))
                print(
                    f"{timeline[-1][0]:7.0f} s  {answered:9d} answered  {result.rps:7.0f}/s  "
                    f"errors {errors}  rss {rss:7.1f} MB",
                    flush=True,
                )
        wall = time.monotonic() - began
        services.stop(gateway.process)
        rows = _ledger_rows(services.workdir / "thrifty-ledger.db")

    _report(
        timeline=timeline,
        samples=sampler.stats.rss_samples,
        warmup=args.warmup_requests,
        answered=answered,
        errors=errors,
        wall=wall,
    )
    print(f"ledger rows {rows} for {answered} answered requests (wrk cuts the last in flight)")
    if args.csv:
        with args.csv.open("w") as out:
            out.write("seconds,answered,rss_mb\n")
            for seconds, count, rss in timeline:
                out.write(f"{seconds:.1f},{count},{rss:.1f}\n")


def _ledger_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("select count(*) from requests").fetchone()[0])


def _report(
    *,
    timeline: list[tuple[float, int, float]],
    samples: list[tuple[float, float]],
    warmup: int,
    answered: int,
    errors: int,
    wall: float,
) -> None:
    after = next((t for t in timeline if t[1] >= warmup), timeline[0] if timeline else None)
    if after is None or not samples:
        print("no samples")
        return
    warm_rss = after[2]
    final_rss = samples[-1][1]
    peak_after = max(rss for seconds, rss in samples if seconds >= after[0])
    print(
        f"\n{answered} requests in {wall:.0f} s ({answered / wall:.0f}/s), {errors} errors\n"
        f"RSS after warm-up ({after[1]} requests): {warm_rss:.1f} MB; at the end: "
        f"{final_rss:.1f} MB; growth {final_rss - warm_rss:+.1f} MB; "
        f"peak after warm-up {peak_after:.1f} MB; first sample {samples[0][1]:.1f} MB"
    )


if __name__ == "__main__":
    main()
