"""Real trace rows through the gateway: the ledger's totals equal the trace's."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.gateway_support import running_gateway
from tests.services import require_shared_data
from thrifty.ledger import ReportQuery
from thrifty.traces import read_trace, replay

TRACES = [("traces/azure_llm_2023_conv.csv", 60), ("traces/mooncake_conversation.jsonl", 30)]


@pytest.mark.parametrize(("relative", "rows"), TRACES)
async def test_trace_replay_totals_reach_the_ledger(
    tmp_path: Path, relative: str, rows: int
) -> None:
    trace = list(itertools.islice(read_trace(require_shared_data(relative)), rows))
    with running_gateway(tmp_path) as gateway:
        summary = await replay(
            trace, base_url=gateway.url, model="gpt-4o-mini", concurrency=4, headers={}
        )
        ledger = gateway.ledger()
        for _ in range(100):
            report = ledger.report(ReportQuery())
            if report.totals.requests == rows:
                break
            await asyncio.sleep(0.05)
        ledger.close()

    totals = report.totals
    assert summary.errors == 0, summary.error_messages
    assert totals.requests == rows
    assert totals.errors == 0
    assert totals.input_tokens == sum(row.input_tokens for row in trace)
    assert totals.output_tokens == sum(max(row.output_tokens, 1) for row in trace)
    assert totals.cache_read_tokens == summary.cache_read_tokens
    assert totals.unpriced_requests == 0
    assert totals.cost_usd == summary.cost_usd
