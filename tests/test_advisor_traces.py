"""The advisor's estimates against what-if replays of real traces through the gateway.

Three features are replayed through the gateway in front of the sandbox.
``chat`` is Azure LLM 2023 conversation rows, each of the first ten sent
twice, as a client that repeats questions would. ``code-review`` is Azure
LLM 2023 code rows, named as background work. ``assistant`` is Mooncake
conversation rows that share prompt prefixes. The sandbox's prompt cache is
off, so the baseline ledger holds no cache reads. The advisor's plan on
that ledger must then bracket what each changed policy costs when it is
replayed for real:

- batch: the ``code-review`` rows sent as one OpenAI batch through the gateway;
- response cache: ``chat`` replayed with the gateway's exact cache on;
- prompt caching: every feature replayed with the sandbox's prompt cache on.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.gateway_support import running_gateway
from tests.services import require_shared_data
from thrifty.advisor.plan import LeverPlan, Plan, build_plan
from thrifty.advisor.traffic import load_traffic
from thrifty.batch.config import BatchConfig
from thrifty.cache.config import parse_cache_config
from thrifty.config import ProviderConfig
from thrifty.ledger import ReportQuery, open_ledger
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox.server import SandboxServer
from thrifty.sandbox.settings import SandboxSettings
from thrifty.traces import read_trace, replay
from thrifty.traces.rows import TraceRow
from thrifty.traces.synthesis import PromptBuilder

MODEL = "gpt-4o-mini"
ENGINE = CostEngine()
CHAT_ROWS = 40
REPEATED_ROWS = 10
CODE_ROWS = 40
ASSISTANT_ROWS = 30
# Mooncake rows above this many input tokens are left out to keep the test fast.
ASSISTANT_MAX_INPUT = 32_000


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature's rows; ``seed`` keeps its prompts apart from the other features'."""

    name: str
    rows: list[TraceRow]
    seed: str


@dataclass(frozen=True, slots=True)
class Baseline:
    db_url: str
    costs: dict[str, Decimal]
    plan: Plan
    factor: Decimal


def _features() -> list[Feature]:
    conversation = require_shared_data("traces/azure_llm_2023_conv.csv")
    code = require_shared_data("traces/azure_llm_2023_code.csv")
    mooncake = require_shared_data("traces/mooncake_conversation.jsonl")
    chat = list(itertools.islice(read_trace(conversation), CHAT_ROWS))
    # A repeat keeps its line number, so its prompt is the same text.
    chat = chat + chat[:REPEATED_ROWS]
    # Keep Mooncake rows whose first two 512-token blocks recur: only a prefix
    # of at least 1,024 tokens can be cached.
    early = [
        row
        for row in itertools.islice(read_trace(mooncake), 400)
        if len(row.prefix_blocks) >= 2 and row.input_tokens <= ASSISTANT_MAX_INPUT
    ]
    pairs = Counter(row.prefix_blocks[:2] for row in early)
    assistant = [row for row in early if pairs[row.prefix_blocks[:2]] >= 2][:ASSISTANT_ROWS]
    return [
        Feature("chat", chat, "chat"),
        Feature("code-review", list(itertools.islice(read_trace(code), CODE_ROWS)), "code"),
        Feature("assistant", assistant, "assistant"),
    ]


def _replay(
    folder: Path, features: list[Feature], *, cache_ttl_s: float, sections: dict[str, Any]
) -> str:
    """Replay each feature in turn through a gateway; return its ledger URL."""
    with SandboxServer(SandboxSettings(openai_cache_ttl_s=cache_ttl_s)) as sandbox:
        provider = ProviderConfig("openai", "openai", sandbox.url)
        with running_gateway(
            folder, extra_providers={"openai": provider}, sections=sections
        ) as gateway:
            for feature in features:
                summary = asyncio.run(
                    replay(
                        feature.rows,
                        base_url=gateway.url,
                        model=MODEL,
                        concurrency=1,
                        headers={"X-Thrifty-Feature": feature.name},
                        builder=PromptBuilder(MODEL, seed=feature.seed),
                    )
                )
                assert summary.errors == 0, summary.error_messages
                assert summary.requests == len(feature.rows)
    return gateway.db_url


def _costs(db_url: str) -> dict[str, Decimal]:
    """Return the exact ledger spend of each feature."""
    ledger = open_ledger(db_url)
    try:
        report = ledger.report(ReportQuery(by=["feature"]))
    finally:
        ledger.close()
    assert report.totals.unpriced_requests == 0
    return {str(group.values["feature"]): group.totals.cost_usd for group in report.groups}


def _batch_costs(folder: Path, feature: Feature) -> Decimal:
    """Send a feature's rows as one OpenAI batch through a gateway; return what it recorded."""
    builder = PromptBuilder(MODEL, seed=feature.seed)
    lines = []
    for row in feature.rows:
        prompt = builder.build(row)
        body = {"model": MODEL, "messages": prompt.messages, "max_tokens": prompt.max_tokens}
        lines.append(
            {
                "custom_id": f"line-{row.line}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
        )
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    sections = {"batch": BatchConfig(poll_interval_s=0.05)}
    with SandboxServer(SandboxSettings(openai_cache_ttl_s=0.0)) as sandbox:
        provider = ProviderConfig("openai", "openai", sandbox.url)
        with running_gateway(
            folder, extra_providers={"openai": provider}, sections=sections
        ) as gateway:
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
            uploaded = client.files.create(
                file=("input.jsonl", io.BytesIO(content)), purpose="batch"
            )
            batch = client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"feature": feature.name},
            )
            assert client.batches.retrieve(batch.id).status == "completed"
            costs = _wait_for_requests(gateway.db_url, len(lines))
    assert list(costs) == [feature.name]
    return costs[feature.name]


def _wait_for_requests(db_url: str, count: int) -> dict[str, Decimal]:
    deadline = time.monotonic() + 30
    while True:
        ledger = open_ledger(db_url)
        try:
            recorded = ledger.report(ReportQuery()).totals.requests
        finally:
            ledger.close()
        if recorded >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert recorded == count
    return _costs(db_url)


def _lever(plan: Plan, name: str) -> LeverPlan:
    return next(lever for lever in plan.levers if lever.lever == name)


@pytest.fixture(scope="module")
def features() -> list[Feature]:
    return _features()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, features: list[Feature]) -> Baseline:
    folder = tmp_path_factory.mktemp("baseline")
    db_url = _replay(folder, features, cache_ttl_s=0.0, sections={})
    ledger = open_ledger(db_url)
    try:
        traffic = load_traffic(ledger)
    finally:
        ledger.close()
    plan = build_plan(traffic, ENGINE, background=["code-review"])
    return Baseline(db_url, _costs(db_url), plan, traffic.monthly_factor)


def test_batch_estimate_matches_batch_replay(
    tmp_path: Path, features: list[Feature], baseline: Baseline
) -> None:
    code = next(feature for feature in features if feature.name == "code-review")
    batched = _batch_costs(tmp_path, code)
    saving = baseline.costs["code-review"] - batched

    lever = _lever(baseline.plan, "batch")
    assert lever.features == ["code-review"]
    assert lever.requests == CODE_ROWS
    assert saving > 0
    assert lever.alone_low <= saving * baseline.factor <= lever.alone_high
    # The feature is named as background, so both scenarios batch it alike,
    # and batch rates are exactly half of the standard ones for this model.
    assert lever.alone_low == lever.alone_high
    assert batched * 2 == baseline.costs["code-review"]


def test_response_cache_estimate_matches_cached_replay(
    tmp_path: Path, features: list[Feature], baseline: Baseline
) -> None:
    chat = [feature for feature in features if feature.name == "chat"]
    cache = parse_cache_config({"ttl_s": 86400, "cache_sampled": True})
    db_url = _replay(tmp_path, chat, cache_ttl_s=0.0, sections={"cache": cache})
    cached = _costs(db_url)["chat"]
    saving = baseline.costs["chat"] - cached

    lever = _lever(baseline.plan, "response_cache")
    assert lever.features == ["chat"]
    assert saving > 0
    assert lever.alone_low <= saving * baseline.factor <= lever.alone_high
    # The replay sends no temperature, so the cautious estimate (temperature 0
    # only) is zero, and the generous one is every repeat's whole cost.
    assert lever.alone_low == 0
    assert lever.alone_high == saving * baseline.factor


def test_prompt_caching_estimate_brackets_cached_replay(
    tmp_path: Path, features: list[Feature], baseline: Baseline
) -> None:
    db_url = _replay(tmp_path, features, cache_ttl_s=600.0, sections={})
    cached = _costs(db_url)
    saving = sum(baseline.costs.values(), Decimal(0)) - sum(cached.values(), Decimal(0))

    lever = _lever(baseline.plan, "prompt_caching")
    assert saving > 0
    assert lever.alone_low <= saving * baseline.factor <= lever.alone_high
    # The code-review rows share no prefix, so caching leaves their cost as it was.
    assert cached["code-review"] == baseline.costs["code-review"]
