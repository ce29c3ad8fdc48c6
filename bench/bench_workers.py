"""Throughput of ``thrifty serve --workers N`` for several N, budgets shared in Redis.

For each worker count it starts the gateway in front of the sandbox, with
``control.redis`` (the workers share the budget counters there), a lifetime
budget on the virtual key and records in the SQLite ledger, runs wrk for
``--seconds`` with ``--connections`` keep-alive connections, and prints the
throughput, latency percentiles, errors and the gateway's CPU. On a machine
with C cores, the sandbox and wrk take their share of them too, so the
scaling to expect is below N for N close to C.

    .venv/bin/python bench/bench_workers.py --workers 1,2 --seconds 20 --connections 64
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

import redis
from harness import Services, phase_stats, request_body, run_wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    args = parser.parse_args()

    body = request_body(stream=args.stream)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("workers      rps   p50 ms   p99 ms  errors  gateway cpu")
    base_rps = None
    for count in (int(value) for value in args.workers.split(",")):
        prefix = f"thrifty-bench-{uuid.uuid4().hex[:8]}:"
        try:
            with Services() as services:
                sandbox = services.sandbox()
                gateway = services.thrifty(
                    sandbox.url.rsplit("/v1/", 1)[0],
                    workers=count,
                    redis_url=args.redis_url,
                    redis_prefix=prefix,
                )
                run_wrk(gateway, body, seconds=3, connections=args.connections)  # warm-up
                with phase_stats(gateway) as sampler:
                    result = run_wrk(
                        gateway,
                        body,
                        seconds=args.seconds,
                        connections=args.connections,
                        threads=args.threads,
                    )
        finally:
            _delete_prefix(args.redis_url, prefix)
        base_rps = base_rps or result.rps
        print(
            f"{count:7d} {result.rps:8.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} "
            f"{100 * result.error_rate:6.2f}%  {sampler.stats.cpu_percent:6.0f}%  "
            f"({result.rps / base_rps:.2f}x)",
            flush=True,
        )


def _delete_prefix(url: str, prefix: str) -> None:
    """Remove this run's counters (only keys under its own prefix)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


if __name__ == "__main__":
    main()
