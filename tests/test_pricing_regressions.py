"""Known failures of other gateways, each priced right to the exact Decimal.

Every case is checked twice: through the usage parser and CostEngine, and
through `thrifty cost` with the same response body. Rates (USD per million
tokens) are quoted from the genai-prices 0.2.3 data in each case; every
expected figure is worked out from them by hand, and each matches the
figure the case was written with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from thrifty.cli import cost as cost_command
from thrifty.pricing import CostEngine
from thrifty.usage import AnthropicStreamTracker, Usage, served_from_response, usage_from_response

# A date when every Batch, Flex and Priority variant of the catalog is in force.
AT = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    provider: str
    endpoint: str
    body: dict[str, Any]
    expected: str
    model: str | None = None
    batch: bool = False
    cli_args: tuple[str, ...] = field(default=())


def chat(model: str, usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-regression",
        "object": "chat.completion",
        "created": 1763280000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        **extra,
    }


def message(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_regression",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def gemini(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}}],
        "usageMetadata": usage,
        "modelVersion": model,
    }


CASES = {
    # claude-3-7-sonnet: $3 input, $3.75 5-minute cache write, $15 output.
    # Billing the 12,304 written tokens again as input would give $0.091311.
    "anthropic-cache-writes-not-input": Case(
        "anthropic",
        "messages",
        message(
            "claude-3-7-sonnet-20250219",
            {
                "input_tokens": 3,
                "cache_creation_input_tokens": 12304,
                "cache_read_input_tokens": 0,
                "output_tokens": 550,
            },
        ),
        "0.054399",
    ),
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output. Pricing the 1,920
    # cached tokens at the full input rate would give $0.010415.
    "openai-cached-at-cache-rate": Case(
        "openai",
        "chat.completions",
        chat(
            "gpt-4o-2024-08-06",
            {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            },
        ),
        "0.005615",
    ),
    # gpt-4.1-mini: $0.40 input, $0.10 cached, $1.60 output. text_tokens
    # includes the cached tokens; adding both would bill 615 tokens twice.
    "compatible-text-tokens-include-cached": Case(
        "openai",
        "chat.completions",
        chat(
            "gpt-4.1-mini",
            {
                "prompt_tokens": 616,
                "completion_tokens": 10,
                "total_tokens": 626,
                "prompt_tokens_details": {"text_tokens": 616, "cached_tokens": 615},
            },
        ),
        "0.0000779",
    ),
    # gemini-2.5-pro up to 200,000 input tokens: $1.25 input, $0.125 cached,
    # $10 output. promptTokenCount already includes the 80,000 cached tokens.
    "gemini-cached-counted-once": Case(
        "google",
        "gemini",
        gemini(
            "gemini-2.5-pro",
            {
                "promptTokenCount": 100000,
                "cachedContentTokenCount": 80000,
                "candidatesTokenCount": 1000,
                "totalTokenCount": 101000,
            },
        ),
        "0.045",
    ),
    # gemini-2.5-flash: $0.30 input, $2.50 output, thoughts included; the
    # 1,500 thought tokens are outside candidatesTokenCount.
    "gemini-thoughts-billed": Case(
        "google",
        "gemini",
        gemini(
            "gemini-2.5-flash",
            {
                "promptTokenCount": 10000,
                "candidatesTokenCount": 500,
                "thoughtsTokenCount": 1500,
                "totalTokenCount": 12000,
            },
        ),
        "0.008",
    ),
    # o4-mini: $1.10 input, $4.40 output. The 4,000 reasoning tokens are part
    # of the 5,000 completion tokens; adding them on top would give $0.0407.
    "reasoning-inside-completion": Case(
        "openai",
        "chat.completions",
        chat(
            "o4-mini-2025-04-16",
            {
                "prompt_tokens": 1000,
                "completion_tokens": 5000,
                "total_tokens": 6000,
                "completion_tokens_details": {"reasoning_tokens": 4000},
            },
        ),
        "0.0231",
    ),
    # gpt-5-nano flex: $0.025 input, $0.20 output (standard $0.05 and $0.40).
    "flex-at-flex-rates": Case(
        "openai",
        "chat.completions",
        chat(
            "gpt-5-nano",
            {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000},
            service_tier="flex",
        ),
        "0.000225",
    ),
    # gpt-4.1 standard: $2 input, $8 output (priority $3.50 and $14). The
    # client asked for priority; the response says it was served at default.
    "tier-served-not-requested": Case(
        "openai",
        "chat.completions",
        chat(
            "gpt-4.1",
            {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000},
            service_tier="default",
        ),
        "0.01",
    ),
    # gpt-5 batch: $0.625 input, $0.0625 cached, $5 output. Pricing the
    # 80,000 cached tokens at the batch input rate would give $0.0675.
    "batch-cached-at-batch-cache-rate": Case(
        "openai",
        "chat.completions",
        chat(
            "gpt-5-2025-08-07",
            {
                "prompt_tokens": 100000,
                "completion_tokens": 1000,
                "total_tokens": 101000,
                "prompt_tokens_details": {"cached_tokens": 80000},
            },
        ),
        "0.0225",
        batch=True,
        cli_args=("--batch",),
    ),
    # claude-sonnet-4-5 above 200,000 input tokens: $6 input and $22.50
    # output on every token of the request (not only those above the line).
    "long-context-tier": Case(
        "anthropic",
        "messages",
        message("claude-sonnet-4-5-20250929", {"input_tokens": 250000, "output_tokens": 1000}),
        "1.5225",
    ),
}


@pytest.fixture(scope="module")
def engine() -> CostEngine:
    return CostEngine(warn_unpriced=False)


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    cost_command.register(app)
    app.command("noop")(lambda: None)
    return app


def run_cost(app: typer.Typer, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["cost", *args])
    assert result.exit_code == 0, result.output
    output: dict[str, Any] = json.loads(result.stdout)
    return output


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_engine_prices_case(engine: CostEngine, case: Case) -> None:
    usage = usage_from_response(case.endpoint, case.body)
    served = served_from_response(case.endpoint, case.body)

    cost = engine.price(
        case.provider,
        case.model or served.model or "",
        usage,
        service_tier=served.service_tier,
        batch=case.batch,
        at=AT,
    )

    assert cost.unpriced_reason is None
    assert cost.cost_usd == Decimal(case.expected)
    assert sum(cost.breakdown.values(), Decimal(0)) == cost.cost_usd


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cost_command_prices_case(app: typer.Typer, case: Case) -> None:
    output = run_cost(
        app,
        "--provider",
        case.provider,
        "--response",
        json.dumps(case.body),
        "--at",
        AT.isoformat(),
        *case.cli_args,
    )

    assert output["cost_usd"] == case.expected


def test_served_default_tier_is_priced_default(engine: CostEngine) -> None:
    case = CASES["tier-served-not-requested"]
    usage = usage_from_response(case.endpoint, case.body)

    served = engine.price("openai", "gpt-4.1", usage, service_tier="default", at=AT)
    requested = engine.price("openai", "gpt-4.1", usage, service_tier="priority", at=AT)

    assert served.service_tier == "default"
    assert served.cost_usd == Decimal("0.01")
    # Priority would be $3.50 and $14 per million: the figure not to record.
    assert requested.cost_usd == Decimal("0.0175")


def test_batch_cache_reads_at_batch_cache_rate(engine: CostEngine) -> None:
    case = CASES["batch-cached-at-batch-cache-rate"]
    usage = usage_from_response(case.endpoint, case.body)

    cost = engine.price("openai", "gpt-5", usage, batch=True, at=AT)

    assert cost.breakdown["cache_read"] == Decimal("0.005")
    assert cost.breakdown["input"] == Decimal("0.0125")
    assert cost.service_tier == "batch"


def feed(events: list[dict[str, Any]]) -> Usage:
    tracker = AnthropicStreamTracker()
    for event in events:
        tracker.feed(event)
    usage = tracker.result()
    assert usage is not None
    assert tracker.final_usage_seen
    return usage


def stream_start(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_stream",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        },
    }


def stream_end(usage: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": usage,
        },
        {"type": "message_stop"},
    ]


def test_streamed_large_cache_write(engine: CostEngine, app: typer.Typer) -> None:
    # claude-opus-4-7: $5 input, $6.25 5-minute cache write, $25 output.
    events = [
        stream_start(
            "claude-opus-4-7",
            {
                "input_tokens": 6,
                "cache_creation_input_tokens": 159217,
                "cache_read_input_tokens": 0,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 159217,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": 1,
            },
        ),
        *stream_end({"output_tokens": 2745}),
    ]

    usage = feed(events)
    cost = engine.price("anthropic", "claude-opus-4-7", usage, at=AT)
    final_message = message(
        "claude-opus-4-7",
        {"input_tokens": 6, "cache_creation_input_tokens": 159217, "output_tokens": 2745},
    )
    output = run_cost(
        app,
        "--provider",
        "anthropic",
        "--response",
        json.dumps(final_message),
        "--at",
        "2026-11-16",
    )

    assert usage == Usage(input_tokens=159223, output_tokens=2745, cache_write_tokens=159217)
    assert cost.cost_usd == Decimal("1.06376125")
    assert cost.breakdown["cache_write_5m"] == Decimal("0.99510625")
    assert output["cost_usd"] == "1.06376125"


def test_cache_split_only_in_message_delta(engine: CostEngine, app: typer.Typer) -> None:
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 5-minute write,
    # $15 output. message_start counts all 12,000 prompt tokens as input;
    # message_delta has the real split of them, which replaces it.
    events = [
        stream_start(
            "claude-sonnet-4-5-20250929",
            {
                "input_tokens": 12000,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 1,
            },
        ),
        *stream_end(
            {
                "input_tokens": 500,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 11000,
                "output_tokens": 800,
            }
        ),
    ]

    usage = feed(events)
    cost = engine.price("anthropic", "claude-sonnet-4-5", usage, at=AT)
    # The message the SDK assembles from the stream carries the final split.
    final_message = message(
        "claude-sonnet-4-5-20250929",
        {
            "input_tokens": 500,
            "cache_creation_input_tokens": 500,
            "cache_read_input_tokens": 11000,
            "output_tokens": 800,
        },
    )
    output = run_cost(
        app,
        "--provider",
        "anthropic",
        "--response",
        json.dumps(final_message),
        "--at",
        "2026-11-16",
    )

    assert usage.input_tokens == 12000
    assert usage.cache_read_tokens == 11000
    assert usage.cache_write_tokens == 500
    assert usage.cache_write_1h_tokens == 0
    assert cost.breakdown == {
        "input": Decimal("0.0015"),
        "cache_read": Decimal("0.0033"),
        "cache_write_5m": Decimal("0.001875"),
        "output": Decimal("0.012"),
    }
    assert cost.cost_usd == Decimal("0.018675")
    assert output["cost_usd"] == "0.018675"


def test_delta_cache_total_keeps_1h_writes(engine: CostEngine) -> None:
    # The start reported 1,000 one-hour writes; the delta's total of 1,500
    # keeps them and counts the other 500 as 5-minute writes ($6 and $3.75).
    events = [
        stream_start(
            "claude-sonnet-4-5",
            {
                "input_tokens": 10,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 0,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 0,
                    "ephemeral_1h_input_tokens": 1000,
                },
                "output_tokens": 1,
            },
        ),
        *stream_end({"cache_creation_input_tokens": 1500, "output_tokens": 20}),
    ]

    usage = feed(events)
    cost = engine.price("anthropic", "claude-sonnet-4-5", usage, at=AT)

    assert usage.cache_write_tokens == 1500
    assert usage.cache_write_1h_tokens == 1000
    assert cost.breakdown["cache_write_1h"] == Decimal("0.006")
    assert cost.breakdown["cache_write_5m"] == Decimal("0.001875")
