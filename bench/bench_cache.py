"""Benchmark the response cache: lookup latency, embedder throughput and match quality.

Prints Markdown tables for docs/benchmarks.md:

- exact lookup: key computation plus ``ResponseCache.get`` on a SQLite file
  with ``--entries`` entries (and through Redis when it listens on 6379);
- semantic lookup: ``ResponseCache.find_similar`` (index search, word-level
  checks and the entry read) over ``--vectors`` 384-dimensional vectors in
  one partition, the worst case, not counting the embedding;
- the local embedder's throughput, batched and one text at a time;
- precision, recall and F1 per threshold on the Quora Question Pairs file,
  follow-up leaks on the MeanCache contextual queries, and paraphrase recall
  on GPTCache's pairs, read from ../shared/data/cache.

    .venv/bin/python bench/bench_cache.py
    .venv/bin/python bench/bench_cache.py --skip-quality --vectors 20000
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from thrifty.cache.cache import ResponseCache
from thrifty.cache.entry import CacheEntry
from thrifty.cache.index import VectorIndex, vector_to_bytes
from thrifty.cache.keys import RequestKey, request_key
from thrifty.cache.redis_tier import RedisTier
from thrifty.cache.store import open_store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cache"
DIMENSIONS = 384
NOW = datetime.now(UTC)


def key_for(number: int) -> RequestKey:
    body = {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You answer questions about the router manual."},
            {"role": "user", "content": f"Question number {number}: how do I reset it?"},
        ],
    }
    key = request_key(
        namespace="key=bench",
        provider="openai",
        endpoint="chat.completions",
        model="gpt-4o-mini",
        body=body,
    )
    assert isinstance(key, RequestKey)
    return key


def make_entry(key: RequestKey, vector: bytes | None = None) -> CacheEntry:
    return CacheEntry(
        entry_id=key.entry_id,
        namespace=key.namespace,
        partition=key.partition,
        provider="openai",
        endpoint="chat.completions",
        model="gpt-4o-mini",
        response=b'{"id":"chatcmpl-1","choices":[{"message":{"content":"' + b"x" * 600 + b'"}}]}',
        request_id="req_bench",
        created_at=NOW,
        last_used_at=NOW,
        expires_at=NOW + timedelta(days=1),
        cost_usd=Decimal("0.00042"),
        query_text=key.query_text if vector else None,
        embedder="bench" if vector else None,
        vector=vector,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(loop: asyncio.AbstractEventLoop, calls: int, make_call: object) -> list[float]:
    samples = []
    for number in range(calls):
        started = time.perf_counter()
        loop.run_until_complete(make_call(number))  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_exact(entries: int, lookups: int) -> list[tuple[str, list[float]]]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/cache.db")
        store.put([make_entry(key_for(number)) for number in range(entries)])
        tiers: list[tuple[str, RedisTier | None]] = [("SQLite", None)]
        if _listening(6379):
            tier = RedisTier(
                "redis://127.0.0.1:6379/0", prefix=f"thrifty:bench:{uuid.uuid4().hex}:", ttl_s=600
            )
            tier.put([make_entry(key_for(number)) for number in range(entries)], NOW)
            tiers.append(("Redis, then SQLite", tier))
        store.close()
        loop = asyncio.new_event_loop()
        for name, tier in tiers:
            cache = ResponseCache(
                open_store(f"sqlite:///{folder}/cache.db"),
                redis=tier,
                max_entries=10**9,
                max_bytes=10**12,
            )

            async def lookup(number: int, cache: ResponseCache = cache) -> None:
                key = key_for(number % entries)
                assert await cache.get(key.entry_id) is not None

            timed(loop, 200, lookup)
            rows.append((name, timed(loop, lookups, lookup)))
            if tier is not None:
                tier.clear()
                loop.run_until_complete(tier.aclose())
            cache.close()
        loop.close()
    return rows


def bench_semantic(vectors: int, lookups: int) -> list[float]:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((vectors, DIMENSIONS)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex()
    keys = [key_for(number) for number in range(vectors)]
    index.add_many(
        (key.partition, key.entry_id, matrix[n], key.query_text or "") for n, key in enumerate(keys)
    )
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/cache.db")
        store.put([make_entry(keys[n], vector_to_bytes(matrix[n])) for n in range(0, vectors, 97)])
        cache = ResponseCache(store, index=index, max_entries=10**9, max_bytes=10**12)
        loop = asyncio.new_event_loop()

        async def lookup(number: int) -> None:
            target = (number * 97) % vectors // 97 * 97
            noise = rng.standard_normal(DIMENSIONS).astype(np.float32) * 0.004
            query = matrix[target] + noise
            query /= np.linalg.norm(query)
            key = keys[target]
            assert key.query_text is not None
            match = await cache.find_similar(key.partition, query, key.query_text, 0.985)
            assert match is not None

        timed(loop, 50, lookup)
        samples = timed(loop, lookups, lookup)
        loop.close()
        cache.close()
    return samples


def bench_embedder() -> list[tuple[str, float]]:
    from thrifty.cache.embedders import LocalEmbedder, local_model_available

    if not local_model_available():
        return []
    embedder = LocalEmbedder()
    texts = [f"How can I reset the router in room {n} without losing settings?" for n in range(512)]
    embedder.embed_now(texts[:64])
    started = time.perf_counter()
    embedder.embed_now(texts)
    batched = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in texts[:100]:
        embedder.embed_now([text])
    single = 100 / (time.perf_counter() - started)
    return [("batches of 64", batched), ("one text per call", single)]


def quality() -> None:
    from thrifty.cache.config import DEFAULT_THRESHOLD
    from thrifty.cache.embedders import LocalEmbedder, local_model_available
    from thrifty.cache.evaluate import (
        Conversation,
        Pair,
        evaluate_follow_ups,
        evaluate_pairs,
        read_pairs,
    )

    if not local_model_available() or not DATA.exists():
        print("\n(match quality skipped: no local model or no shared data)")
        return
    embedder = LocalEmbedder()
    qqp = [p for p in read_pairs(DATA / "meancache_qqp_val.csv") if isinstance(p, Pair)]
    thresholds = (0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)
    evaluation = evaluate_pairs(qqp, embedder, thresholds=thresholds)
    print(
        f"\nmeancache_qqp_val.csv: {evaluation.pairs:,} pairs, {evaluation.duplicates:,} "
        f"duplicates, {evaluation.passed_guards:,} pass the word-level checks\n"
    )
    print("| threshold | matched | precision | recall | F1 |")
    print("| --- | --- | --- | --- | --- |")
    for row in evaluation.rows:
        mark = " (default)" if row.threshold == DEFAULT_THRESHOLD else ""
        print(
            f"| {row.threshold:.3f}{mark} | {row.matched} | {_ratio(row.precision)} | "
            f"{_ratio(row.recall)} | {_ratio(row.f1)} |"
        )
    conversations = [
        c for c in read_pairs(DATA / "meancache_followups.json") if isinstance(c, Conversation)
    ]
    follow = evaluate_follow_ups(conversations, embedder)
    print(
        f"\nmeancache_followups.json: {follow.lookups} lookups of {follow.conversations} "
        f"follow-ups: {follow.cross_conversation_hits} cross-conversation hits, "
        f"{follow.wrong_question_hits} wrong-question hits, {follow.own_hits} own hits"
    )
    gpt = [p for p in read_pairs(DATA / "gptcache_paraphrase_pairs.json") if isinstance(p, Pair)]
    paraphrases = evaluate_pairs(gpt, embedder, thresholds=(0.9,))
    row = paraphrases.row_at(DEFAULT_THRESHOLD)
    print(
        f"gptcache_paraphrase_pairs.json at the default threshold: {row.matched} of "
        f"{paraphrases.duplicates} paraphrases matched (recall {_ratio(row.recall)}), "
        f"precision {_ratio(row.precision)}"
    )


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, numpy {np.__version__}\n")
    print("| lookup | entries | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    for name, samples in bench_exact(args.entries, args.lookups):
        print(
            f"| exact, {name} | {args.entries:,} | {statistics.median(samples):.3f} ms | "
            f"{percentile(samples, 0.99):.3f} ms |"
        )
    semantic = bench_semantic(args.vectors, min(args.lookups, 1000))
    print(
        f"| semantic (index, checks, SQLite read) | {args.vectors:,} | "
        f"{statistics.median(semantic):.3f} ms | {percentile(semantic, 0.99):.3f} ms |"
    )
    rates = bench_embedder()
    if rates:
        print("\n| local embedder (all-MiniLM-L6-v2, CPU) | texts per second |")
        print("| --- | --- |")
        for name, rate in rates:
            print(f"| {name} | {rate:,.0f} |")
    if not args.skip_quality:
        quality()


if __name__ == "__main__":
    main()
