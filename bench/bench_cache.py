"""Benchmark the response cache: lookup latency, embedder throughput and match quality.

Prints Markdown tables for docs/benchmarks.md:

- exact lookup: key computation plus ``ResponseCache.get`` on a SQLite file
  with ``--entries`` entries (and through Redis when it listens on 6379);
- semantic lookup: ``ResponseCache.find_similar`` (index search, word-level
  checks and the entry read) over ``--vectors`` 384-dimensional vectors in
  one partition, the worst case, not counting the embedding;
- the local embedder's throughput, batched and one text at a time;
- precision, recall and F1 per threshold on the training and held-out
  splits of the Quora Question Pairs file, follow-up leaks on the MeanCache
  contextual queries, and paraphrase recall on GPTCache's pairs, read from
  ../shared/data/cache;
- with ``--study``, the alternatives to the word-level checks that were
  measured and not adopted: raw cosine similarity, and a logistic verifier
  over cosine and word-level features, fitted on the training split and
  measured on the held-out split and GPTCache's pairs. This embeds every
  text of both files (about 25,000), minutes on 2 cores.

    .venv/bin/python bench/bench_cache.py
    .venv/bin/python bench/bench_cache.py --skip-quality --vectors 20000
    .venv/bin/python bench/bench_cache.py --skip-lookups --study
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
        for name, hot_tier in tiers:
            cache = ResponseCache(
                open_store(f"sqlite:///{folder}/cache.db"),
                redis=hot_tier,
                max_entries=10**9,
                max_bytes=10**12,
            )

            async def lookup(number: int, cache: ResponseCache = cache) -> None:
                key = key_for(number % entries)
                assert await cache.get(key.entry_id) is not None

            timed(loop, 200, lookup)
            rows.append((name, timed(loop, lookups, lookup)))
            if hot_tier is not None:
                hot_tier.clear()
                loop.run_until_complete(hot_tier.aclose())
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
        select_split,
    )

    if not local_model_available() or not DATA.exists():
        print("\n(match quality skipped: no local model or no shared data)")
        return
    embedder = LocalEmbedder()
    qqp = [p for p in read_pairs(DATA / "meancache_qqp_val.csv") if isinstance(p, Pair)]
    thresholds = (0.90, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)
    print("\n| split | threshold | matched | precision (95% interval) | recall | F1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for split in ("train", "held-out"):
        evaluation = evaluate_pairs(select_split(qqp, split), embedder, thresholds=thresholds)
        for row in evaluation.rows:
            mark = " (default)" if row.threshold == DEFAULT_THRESHOLD else ""
            interval = row.precision_interval
            spread = "" if interval is None else f" ({interval[0]:.3f}-{interval[1]:.3f})"
            print(
                f"| {split} ({evaluation.pairs:,} pairs, {evaluation.duplicates:,} duplicates) "
                f"| {row.threshold:.3f}{mark} | {row.matched} | {_ratio(row.precision)}{spread} "
                f"| {_ratio(row.recall)} | {_ratio(row.f1)} |"
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


STUDY_FEATURES = (
    "cosine",
    "content-word Jaccard",
    "log(1 + unshared content words)",
    "numbers differ",
    "negations differ",
    "question words differ",
    "proper nouns differ",
    "shared words in another order",
    "content-word length ratio",
)
# Pairs below this cosine similarity are neither fitted nor matched by the verifier.
STUDY_CANDIDATE_FLOOR = 0.80


def study_features(first: str, second: str, similarity: float) -> list[float]:
    """Compute the logistic verifier's features (STUDY_FEATURES) for one pair."""
    from thrifty.cache.guards import mismatch, terms_of

    query, candidate = terms_of(first), terms_of(second)
    left, right = set(query.content), set(candidate.content)
    union = left | right
    lengths = (len(query.content), len(candidate.content))
    reordered = mismatch(query, candidate) == "content words in another order"
    return [
        similarity,
        len(left & right) / len(union) if union else 1.0,
        float(np.log1p(len(left ^ right))),
        float(query.numbers != candidate.numbers),
        float(query.negations != candidate.negations),
        float(query.question_words != candidate.question_words),
        float(query.proper_nouns != candidate.proper_nouns),
        float(reordered),
        min(lengths) / max(lengths) if max(lengths) else 1.0,
    ]


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2_penalty: float = 1.0
) -> tuple[np.ndarray, float]:
    """Fit an L2-regularized logistic regression by Newton's method on standardized features.

    Returns weights and a bias for the raw features. The bias is not penalized.
    """
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    penalty = np.eye(design.shape[1]) * l2_penalty
    penalty[-1, -1] = 0.0
    coefficients = np.zeros(design.shape[1])
    for _ in range(50):
        probabilities = 1.0 / (1.0 + np.exp(-(design @ coefficients)))
        gradient = design.T @ (probabilities - labels) + penalty @ coefficients
        curvature = probabilities * (1.0 - probabilities)
        hessian = design.T @ (design * curvature[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        coefficients -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    weights = coefficients[:-1] / scale
    return weights, float(coefficients[-1] - np.sum(weights * mean))


def study() -> None:
    """Measure raw cosine and a fitted logistic verifier against the word-level checks."""
    from thrifty.cache.embedders import LocalEmbedder, local_model_available
    from thrifty.cache.evaluate import Pair, read_pairs, split_of
    from thrifty.cache.keys import normalize_text

    if not local_model_available() or not DATA.exists():
        print("\n(study skipped: no local model or no shared data)")
        return
    embedder = LocalEmbedder()
    qqp = [p for p in read_pairs(DATA / "meancache_qqp_val.csv") if isinstance(p, Pair)]
    gpt = [p for p in read_pairs(DATA / "gptcache_paraphrase_pairs.json") if isinstance(p, Pair)]
    texts = sorted({normalize_text(t) for p in qqp + gpt for t in (p.first, p.second)})
    started = time.perf_counter()
    vectors = embedder.embed_now(texts)
    rate = len(texts) / (time.perf_counter() - started)
    print(f"\nstudy: embedded {len(texts):,} texts at {rate:,.0f} texts per second")
    row_of = {text: number for number, text in enumerate(texts)}

    def matrix(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
        rows = []
        for pair in pairs:
            first, second = normalize_text(pair.first), normalize_text(pair.second)
            similarity = float(vectors[row_of[first]] @ vectors[row_of[second]])
            rows.append(study_features(pair.first, pair.second, similarity))
        return np.array(rows), np.array([float(pair.duplicate) for pair in pairs])

    sets = {
        "train": matrix([p for p in qqp if split_of(p) == "train"]),
        "held-out": matrix([p for p in qqp if split_of(p) == "held-out"]),
        "GPTCache": matrix(gpt),
    }
    print("\nraw cosine similarity, no word-level checks\n")
    _study_table(
        sets,
        {name: features[:, 0] for name, (features, _) in sets.items()},
        (0.80, 0.85, 0.90, 0.95, 0.97, 0.98, 0.99),
    )
    train_features, train_labels = sets["train"]
    fitted = train_features[:, 0] >= STUDY_CANDIDATE_FLOOR
    weights, bias = fit_logistic(train_features[fitted], train_labels[fitted])
    print(
        f"\nlogistic verifier fitted on {int(fitted.sum())} training pairs with cosine "
        f">= {STUDY_CANDIDATE_FLOOR}; bias {bias:.3f}, weights:"
    )
    for name, weight in zip(STUDY_FEATURES, weights, strict=True):
        print(f"- {name}: {weight:.3f}")
    scores = {
        name: np.where(
            features[:, 0] >= STUDY_CANDIDATE_FLOOR,
            1.0 / (1.0 + np.exp(-(features @ weights + bias))),
            0.0,
        )
        for name, (features, _) in sets.items()
    }
    print()
    _study_table(sets, scores, (0.50, 0.60, 0.70, 0.75, 0.80, 0.85, 0.90))


def _study_table(
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    scores: dict[str, np.ndarray],
    thresholds: tuple[float, ...],
) -> None:
    names = list(sets)
    print("| threshold | " + " | ".join(f"{name} P / R (matched)" for name in names) + " |")
    print("| --- |" + " --- |" * len(names))
    for threshold in thresholds:
        cells = []
        for name in names:
            labels = sets[name][1]
            matched = scores[name] >= threshold
            count = int(matched.sum())
            precision = float(labels[matched].mean()) if count else None
            recall = float(labels[matched].sum() / labels.sum())
            cells.append(f"{_ratio(precision)} / {recall:.3f} ({count})")
        print(f"| {threshold:.2f} | " + " | ".join(cells) + " |")


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
    parser.add_argument("--skip-lookups", action="store_true", help="skip the latency tables")
    parser.add_argument("--study", action="store_true", help="also run the verifier study")
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, numpy {np.__version__}\n")
    if not args.skip_lookups:
        lookups(args.entries, args.vectors, args.lookups)
    if not args.skip_quality:
        quality()
    if args.study:
        study()


def lookups(entries: int, vectors: int, count: int) -> None:
    """Print the lookup latency and embedder throughput tables."""
    print("| lookup | entries | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    for name, samples in bench_exact(entries, count):
        print(
            f"| exact, {name} | {entries:,} | {statistics.median(samples):.3f} ms | "
            f"{percentile(samples, 0.99):.3f} ms |"
        )
    semantic = bench_semantic(vectors, min(count, 1000))
    print(
        f"| semantic (index, checks, SQLite read) | {vectors:,} | "
        f"{statistics.median(semantic):.3f} ms | {percentile(semantic, 0.99):.3f} ms |"
    )
    rates = bench_embedder()
    if rates:
        print("\n| local embedder (all-MiniLM-L6-v2, CPU) | texts per second |")
        print("| --- | --- |")
        for name, rate in rates:
            print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
