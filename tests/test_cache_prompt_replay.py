"""Replaying the Mooncake conversation trace: the cached share matches the trace's prefix reuse."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from pathlib import Path

from tests.gateway_support import running_gateway
from tests.services import require_shared_data
from thrifty.cache.analytics import prompt_cache_stats
from thrifty.pricing.engine import CostEngine
from thrifty.traces import read_trace, replay
from thrifty.traces.rows import BLOCK_TOKENS, TraceRow
from thrifty.usage import Usage

ROWS = 120
MILLION = Decimal(1_000_000)
# gpt-4o-mini list prices per million tokens (genai-prices data).
MINI_INPUT = Decimal("0.15")
MINI_CACHED = Decimal("0.075")


def trace_prefix_reuse(rows: list[TraceRow]) -> float:
    """The share of input tokens in leading blocks an earlier row already sent."""
    seen: set[tuple[int, ...]] = set()
    reused = total = 0
    for row in rows:
        blocks = row.prefix_blocks
        shared = 0
        for length in range(1, len(blocks) + 1):
            if blocks[:length] in seen:
                shared = length
        seen.update(blocks[:length] for length in range(1, len(blocks) + 1))
        reused += min(shared * BLOCK_TOKENS, row.input_tokens)
        total += row.input_tokens
    return reused / total


async def test_mooncake_cached_share_matches_trace(tmp_path: Path) -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    rows = list(itertools.islice(read_trace(path), ROWS))
    expected = trace_prefix_reuse(rows)

    with running_gateway(tmp_path) as gateway:
        summary = await replay(rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=1)
        ledger = gateway.ledger()
        try:
            deadline = time.monotonic() + 10
            while ledger.count() < ROWS and time.monotonic() < deadline:
                time.sleep(0.05)
            with ledger.engine.connect() as connection:
                groups = prompt_cache_stats(connection, CostEngine(), by=["model"])
        finally:
            ledger.close()

    assert summary.errors == 0, summary.error_messages
    assert len(groups) == 1
    group = groups[0]
    assert group.requests == ROWS
    assert group.hit_rate is not None
    # OpenAI caches whole 128-token steps from 1,024 tokens, so a little less is read.
    assert expected - 0.05 < group.hit_rate <= expected
    assert group.saved_usd == group.cache_read_tokens * (MINI_INPUT - MINI_CACHED) / MILLION
    uncached_cost = (
        CostEngine()
        .price(
            "openai",
            "gpt-4o-mini",
            Usage(input_tokens=group.input_tokens, output_tokens=summary.output_tokens),
        )
        .cost_usd
    )
    assert uncached_cost is not None
    assert group.cost_usd == uncached_cost - group.saved_usd
