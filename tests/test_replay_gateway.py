"""Trace replay through the real gateway, with the sandbox as its upstream."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gateway_support import running_gateway
from thrifty.traces import RequestResult, read_trace, replay


async def test_replay_through_gateway(tmp_path: Path) -> None:
    # The second row extends the first row's six blocks; the third shares
    # only block 1, which is under OpenAI's 1,024-token caching minimum.
    lines = [
        {"timestamp": 0, "input_length": 3000, "output_length": 20, "hash_ids": [1, 2, 3, 4, 5, 6]},
        {"timestamp": 1, "input_length": 4000, "output_length": 30, "hash_ids": [*range(1, 9)]},
        {"timestamp": 2, "input_length": 1100, "output_length": 10, "hash_ids": [1, 6, 7]},
    ]
    trace = tmp_path / "conversation.jsonl"
    trace.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results: list[RequestResult] = []

    with running_gateway(tmp_path) as gateway:
        summary = await replay(
            read_trace(trace),
            base_url=gateway.url,
            model="gpt-4o-mini",
            concurrency=1,
            on_result=results.append,
        )

    assert summary.errors == 0, summary.error_messages
    assert summary.requests == 3
    assert summary.input_tokens == 3000 + 4000 + 1100
    assert summary.output_tokens == 20 + 30 + 10
    # The first two rows share the first row's 2,993 content tokens, plus the chat
    # template before them; OpenAI caches in 128-token steps from 1,024, so
    # 1,024 + 15 * 128 = 2,944 tokens are read from the cache.
    assert [result.cache_read_tokens for result in results] == [0, 2944, 0]
    assert summary.cache_read_tokens == 2944
    assert summary.unpriced == 0
    assert summary.cost_usd is not None
    assert summary.cost_usd == sum(result.cost_usd or 0 for result in results)
    for result in results:
        assert result.cost_usd is not None
        assert result.cost_usd > 0
