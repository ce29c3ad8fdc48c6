"""Admission overhead: key lookup, scope resolution, estimate and reservation, per request.

Runs the control plane's admission path (authenticate, attribute, cutoffs,
estimate, reserve) and its settlement in a loop, with in-process counters
and with Redis counters, against a SQLite control store with one key and
one budget. Prints p50 and p99 of admission alone.

    .venv/bin/python bench/bench_admission.py --requests 5000 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import redis

from thrifty.control.admission import AdmissionRequest, Ticket
from thrifty.control.config import ControlConfig
from thrifty.control.counters import Counters, MemoryCounters
from thrifty.control.model import Budget, VirtualKey
from thrifty.control.plane import ControlPlane
from thrifty.control.redis_counters import RedisCounters
from thrifty.control.scopes import Scope
from thrifty.control.secrets import hash_secret, new_key_id, new_secret, shown_prefix
from thrifty.control.store import ControlStore
from thrifty.gateway.attribution import Attribution
from thrifty.ledger import open_ledger
from thrifty.pricing.engine import CostEngine

BODY = {
    "model": "gpt-4o-mini",
    "max_tokens": 32,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarize the benefits of unit tests in two sentences."},
    ],
}


async def measure(
    counters: Counters, store: ControlStore, secret: str, requests: int
) -> list[float]:
    plane = ControlPlane(ControlConfig(), store, CostEngine(), counters=counters)
    await plane.start()
    headers = {"authorization": f"Bearer {secret}"}
    timings: list[float] = []
    try:
        for index in range(requests + 200):
            started = time.perf_counter()
            await plane.refresh_if_changed()
            principal = plane.authenticate(headers)
            assert not isinstance(principal, type(None))
            scopes = plane.attribute(principal, Attribution(feature="bench"))  # type: ignore[arg-type]
            assert plane.cutoff_for(scopes) is None
            request = AdmissionRequest(
                f"req_{index}",
                "chat.completions",
                "openai",
                "openai",
                "openai",
                "gpt-4o-mini",
                None,
                BODY,
            )
            ticket = await plane.admit(request, principal, scopes)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - started
            assert isinstance(ticket, Ticket)
            await plane.settle(ticket, Decimal("0.00002"), 60)
            if index >= 200:
                timings.append(elapsed * 1000)
    finally:
        await plane.stop()
    return timings


def report(name: str, timings: list[float]) -> None:
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[int(len(timings) * 0.99) - 1]
    print(f"| {name} | {len(timings):,} | {p50:.3f} ms | {p99:.3f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis", default=None, help="Redis URL; omit to measure in-process only")
    args = parser.parse_args()

    os.environ["THRIFTY_MASTER_KEY"] = "sk-bench-master"
    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(f"sqlite:///{folder}/ledger.db")
        store = ControlStore(ledger.engine)
        secret = new_secret()
        now = datetime.now(UTC)
        key = VirtualKey(new_key_id(), hash_secret(secret), shown_prefix(secret), now, team="bench")
        store.create_key(key, "bench")
        store.create_budget(
            Budget("bud_bench", Scope("key", key.key_id), Decimal(1_000_000), "monthly", now),
            "bench",
        )
        print("| counters | requests | p50 | p99 |")
        print("| --- | --- | --- | --- |")
        report("in-process", asyncio.run(measure(MemoryCounters(), store, secret, args.requests)))
        if args.redis:
            prefix = f"thrifty-bench-{uuid.uuid4().hex[:8]}:"
            counters = RedisCounters(args.redis, prefix=prefix)
            report("Redis", asyncio.run(measure(counters, store, secret, args.requests)))
            client = redis.Redis.from_url(args.redis)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        ledger.close()


if __name__ == "__main__":
    main()
