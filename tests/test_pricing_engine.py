"""CostEngine: exact Decimal costs of real usage shapes, by model, tier and date.

Expected amounts are worked out here from the per-million rates published in
genai-prices 0.2.3 (quoted in each test), not read back from the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.provider_responses import (
    ANTHROPIC_MESSAGE,
    ANTHROPIC_THINKING_SEARCH,
    GEMINI_THINKING,
    OPENAI_CHAT_CACHED,
    OPENAI_CHAT_REASONING,
)
from thrifty.errors import ConfigError, PricingError
from thrifty.pricing import CATALOG_SOURCE, CUSTOM_SOURCE, Cost, CostEngine, CustomPrice
from thrifty.usage import (
    Usage,
    served_from_response,
    usage_from_anthropic,
    usage_from_gemini,
    usage_from_openai_chat,
)

# A date when every tier variant of the catalog is in force.
NOV_2026 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# A date before the catalog models any Batch, Flex or Priority rate.
SEP_2026 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> CostEngine:
    return CostEngine()


def assert_priced(cost: Cost, expected: str) -> None:
    assert cost.unpriced_reason is None
    assert cost.cost_usd == Decimal(expected)
    assert sum(cost.breakdown.values(), Decimal(0)) == cost.cost_usd


def test_openai_cached_tokens_subset_of_prompt(engine: CostEngine) -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million.
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    cost = engine.price("openai", "gpt-4o-2024-08-06", usage, at=NOV_2026)

    assert_priced(cost, "0.005615")
    assert cost.breakdown == {
        "input": Decimal("0.000215"),
        "cache_read": Decimal("0.0024"),
        "output": Decimal("0.003"),
    }
    assert cost.model == "gpt-4o"
    assert cost.service_tier == "default"
    assert cost.price_source == CATALOG_SOURCE


def test_anthropic_input_excludes_cache(engine: CostEngine) -> None:
    # claude-3-5-sonnet: $3 input, $0.30 cache read, $3.75 5-minute write,
    # $6 1-hour write, $15 output per million.
    usage = usage_from_anthropic(ANTHROPIC_MESSAGE)

    cost = engine.price("anthropic", "claude-3-5-sonnet-20241022", usage, at=NOV_2026)

    assert_priced(cost, "0.0153")
    assert cost.breakdown == {
        "input": Decimal("0.00015"),
        "cache_read": Decimal("0.0024"),
        "cache_write_5m": Decimal("0.00375"),
        "cache_write_1h": Decimal("0.003"),
        "output": Decimal("0.006"),
    }
    assert cost.model == "claude-3-5-sonnet"


def test_gemini_thoughts_outside_candidates(engine: CostEngine) -> None:
    # gemini-2.5-flash: $0.30 input, $0.03 cached, $2.50 output (thoughts too).
    usage = usage_from_gemini(GEMINI_THINKING)

    cost = engine.price("google", "gemini-2.5-flash", usage, at=NOV_2026)

    assert_priced(cost, "0.005565")
    assert cost.breakdown["output"] == Decimal("0.001")
    assert cost.breakdown["reasoning"] == Decimal("0.003125")
    assert cost.breakdown["cache_read"] == Decimal("0.00024")


@pytest.mark.parametrize(
    ("service_tier", "expected", "priced_as"),
    [
        # gpt-5 standard: $1.25 input, $0.125 cached, $10 output.
        (None, "0.015348", "default"),
        ("default", "0.015348", "default"),
        ("auto", "0.015348", "default"),
        ("scale", "0.015348", "default"),
        # Flex: $0.625, $0.0625, $5.
        ("flex", "0.007674", "flex"),
        # Priority: $2.50, $0.25, $20; OpenAI serves "fast" as priority.
        ("priority", "0.030696", "priority"),
        ("fast", "0.030696", "priority"),
    ],
)
def test_served_tier_decides_price(
    engine: CostEngine, service_tier: str | None, expected: str, priced_as: str
) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_REASONING)

    cost = engine.price("openai", "gpt-5", usage, service_tier=service_tier, at=NOV_2026)

    assert_priced(cost, expected)
    assert cost.service_tier == priced_as
    assert cost.batch is False


def test_tier_read_from_response(engine: CostEngine) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_REASONING)
    served = served_from_response("chat.completions", OPENAI_CHAT_REASONING)

    cost = engine.price(
        "openai", served.model or "", usage, service_tier=served.service_tier, at=NOV_2026
    )

    assert served.service_tier == "flex"
    assert cost.model == "gpt-5"
    assert_priced(cost, "0.007674")


def test_batch_uses_catalog_batch_rates(engine: CostEngine) -> None:
    # gpt-4o batch: $1.25 input, $5 output; cached input keeps the $1.25 rate.
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    cost = engine.price("openai", "gpt-4o", usage, batch=True, at=NOV_2026)

    assert_priced(cost, "0.0040075")
    assert cost.service_tier == "batch"
    assert cost.batch is True
    assert cost.price_source == CATALOG_SOURCE


def test_batch_without_catalog_rate_is_half(engine: CostEngine) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    cost = engine.price("openai", "gpt-4o", usage, batch=True, at=SEP_2026)

    assert_priced(cost, "0.0028075")
    assert cost.breakdown["cache_read"] == Decimal("0.0012")
    assert cost.price_source is not None
    assert "50% of standard" in cost.price_source


def test_anthropic_batch_is_half(engine: CostEngine) -> None:
    usage = usage_from_anthropic(ANTHROPIC_MESSAGE)

    cost = engine.price("anthropic", "claude-3-5-sonnet-20241022", usage, batch=True)

    assert_priced(cost, "0.00765")
    assert cost.price_source is not None
    assert "50% of standard" in cost.price_source


def test_anthropic_batch_tier_and_web_search(engine: CostEngine) -> None:
    # claude-haiku-4-5 batch: $0.50 input, $2.50 output; web search $10 per
    # 1,000 requests, not discounted.
    usage = usage_from_anthropic(ANTHROPIC_THINKING_SEARCH)
    served = served_from_response("messages", ANTHROPIC_THINKING_SEARCH)

    cost = engine.price(
        "anthropic",
        "claude-haiku-4-5-20251001",
        usage,
        service_tier=served.service_tier,
        at=NOV_2026,
    )

    assert_priced(cost, "0.041")
    assert cost.batch is True
    assert cost.breakdown == {
        "input": Decimal("0.006"),
        "output": Decimal("0.00125"),
        "reasoning": Decimal("0.00375"),
        "web_search": Decimal("0.03"),
    }


def test_flex_without_catalog_rate_is_half(engine: CostEngine) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_REASONING)

    cost = engine.price("openai", "gpt-5", usage, service_tier="flex", at=SEP_2026)

    assert_priced(cost, "0.007674")
    assert cost.price_source is not None
    assert "flex rates taken as 50% of standard" in cost.price_source


def test_flex_falls_back_to_batch_rates(engine: CostEngine) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    cost = engine.price("openai", "gpt-4o", usage, service_tier="flex", at=NOV_2026)

    assert_priced(cost, "0.0040075")
    assert cost.price_source == f"{CATALOG_SOURCE}; flex priced at the batch rates"


def test_priority_without_catalog_rate_is_unpriced(engine: CostEngine) -> None:
    usage = usage_from_openai_chat(OPENAI_CHAT_CACHED)

    cost = engine.price("openai", "gpt-4o", usage, service_tier="priority", at=SEP_2026)

    assert cost.cost_usd is None
    assert cost.model == "gpt-4o"
    assert cost.unpriced_reason is not None
    assert "no priority price" in cost.unpriced_reason
    assert "2026-09-01" in cost.unpriced_reason


def test_gemini_batch_without_rate_is_unpriced(engine: CostEngine) -> None:
    usage = usage_from_gemini(GEMINI_THINKING)

    cost = engine.price("google", "gemini-2.5-flash", usage, batch=True, at=SEP_2026)

    assert cost.cost_usd is None
    assert cost.unpriced_reason is not None
    assert "no batch price" in cost.unpriced_reason


def test_unknown_model_is_flagged_not_zero(engine: CostEngine) -> None:
    usage = Usage(input_tokens=1000, output_tokens=50)

    cost = engine.price("openai", "gpt-imaginary", usage)

    assert cost.cost_usd is None
    assert not cost.priced
    assert cost.model is None
    assert cost.breakdown == {}
    assert cost.unpriced_reason == (
        "unknown model 'gpt-imaginary' for provider 'openai'; "
        "add it under `prices:` in thrifty.yaml"
    )


def test_unknown_provider_is_flagged(engine: CostEngine) -> None:
    cost = engine.price("acme-cloud", "gpt-4o", Usage(input_tokens=10))

    assert cost.cost_usd is None
    assert cost.unpriced_reason is not None
    assert "acme-cloud" in cost.unpriced_reason


@pytest.mark.parametrize(
    ("provider", "requested", "catalog_model"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "GPT-4o-2024-11-20", "gpt-4o"),
        ("openai", "o4-mini-2025-04-16", "o4-mini"),
        ("openai", "openai/gpt-4o", "gpt-4o"),
        ("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("google", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-pro", "gemini-2.5-pro"),
    ],
)
def test_dated_snapshot_resolution(
    engine: CostEngine, provider: str, requested: str, catalog_model: str
) -> None:
    resolved = engine.resolve(provider, requested)

    assert resolved is not None
    assert resolved.model == catalog_model
    assert resolved.model_requested == requested
    assert resolved.source == CATALOG_SOURCE


def test_resolve_unknown_model_is_none(engine: CostEngine) -> None:
    assert engine.resolve("anthropic", "claude-imaginary-9") is None


def test_resolve_alias_provider() -> None:
    resolved = CostEngine().resolve("gemini", "gemini-2.5-flash")

    assert resolved is not None
    assert resolved.provider == "google"
    assert resolved.catalog_provider == "google"
    assert resolved.context_window == 1048576


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # o3 was $10 input and $40 output per million until OpenAI cut it to
        # $2 and $8 on 2025-06-10 (UTC dates).
        (datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC), "0.18"),
        (datetime(2025, 6, 10, 0, 0, tzinfo=UTC), "0.036"),
        (datetime(2025, 6, 10, 1, 0, tzinfo=timezone(timedelta(hours=2))), "0.18"),
        (datetime(2025, 6, 10, 12, 0), "0.036"),
    ],
)
def test_price_history(engine: CostEngine, at: datetime, expected: str) -> None:
    usage = Usage(input_tokens=10000, output_tokens=2000)

    cost = engine.price("openai", "o3", usage, at=at)

    assert_priced(cost, expected)


@pytest.mark.parametrize(
    ("input_tokens", "expected"),
    [
        # gemini-2.5-pro: $1.25 input and $10 output up to 200,000 input tokens;
        # past that, $2.50 and $15 on every token of the request.
        (200_000, "0.26"),
        (200_001, "0.5150025"),
    ],
)
def test_long_context_tier(engine: CostEngine, input_tokens: int, expected: str) -> None:
    usage = Usage(input_tokens=input_tokens, output_tokens=1000)

    cost = engine.price("google", "gemini-2.5-pro", usage, at=NOV_2026)

    assert_priced(cost, expected)


def test_no_cache_read_price_uses_input(engine: CostEngine) -> None:
    # gpt-4o-2024-05-13 has no cached-input rate: all input costs $5.
    usage = Usage(input_tokens=2000, cache_read_tokens=1024)

    cost = engine.price("openai", "gpt-4o-2024-05-13", usage, at=NOV_2026)

    assert_priced(cost, "0.01")
    assert cost.breakdown == {"input": Decimal("0.00488"), "cache_read": Decimal("0.00512")}


def test_no_1h_price_uses_generic_write(engine: CostEngine) -> None:
    # gpt-6-sol: $2 input, $2.50 cache write, no separate 1-hour rate.
    usage = Usage(input_tokens=1000, cache_write_tokens=1000, cache_write_1h_tokens=400)

    cost = engine.price("openai", "gpt-6-sol", usage, at=NOV_2026)

    assert_priced(cost, "0.0025")
    assert cost.breakdown == {
        "cache_write_5m": Decimal("0.0015"),
        "cache_write_1h": Decimal("0.001"),
    }


def test_reasoning_price_of_its_own(engine: CostEngine) -> None:
    # sonar-deep-research: $8 output, $3 reasoning per million.
    usage = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=800)

    cost = engine.price("perplexity", "sonar-deep-research", usage, at=NOV_2026)

    assert_priced(cost, "0.004")
    assert cost.breakdown == {"output": Decimal("0.0016"), "reasoning": Decimal("0.0024")}


def test_fractions_of_a_cent_are_kept(engine: CostEngine) -> None:
    # gpt-5-nano: $0.05 per million input tokens, so one token is $0.00000005.
    cost = engine.price("openai", "gpt-5-nano", Usage(input_tokens=1), at=NOV_2026)

    assert_priced(cost, "0.00000005")


def test_zero_usage_is_priced_zero(engine: CostEngine) -> None:
    cost = engine.price("openai", "gpt-4o", Usage(), at=NOV_2026)

    assert cost.cost_usd == Decimal(0)
    assert cost.priced
    assert cost.breakdown == {}


def test_missing_output_price_is_unpriced(engine: CostEngine) -> None:
    usage = Usage(input_tokens=100, output_tokens=5)

    cost = engine.price("openai", "text-embedding-3-small", usage, at=NOV_2026)

    assert cost.cost_usd is None
    assert cost.unpriced_reason is not None
    assert "no output price" in cost.unpriced_reason


def test_web_search_without_price_is_noted(engine: CostEngine) -> None:
    # claude-3-haiku: $0.25 input, $1.25 output, no web search rate.
    usage = Usage(input_tokens=1000, output_tokens=100, web_search_requests=2)

    cost = engine.price("anthropic", "claude-3-haiku-20240307", usage, at=NOV_2026)

    assert_priced(cost, "0.000375")
    assert cost.notes == (
        "2 web search requests are not priced: the catalog has no web search price "
        "for claude-3-haiku",
    )


def test_anthropic_fast_mode(engine: CostEngine) -> None:
    # claude-opus-4-8: $5/$25 standard, $10/$50 in fast mode.
    usage = Usage(input_tokens=1000, output_tokens=100)

    standard = engine.price("anthropic", "claude-opus-4-8", usage, speed="standard", at=NOV_2026)
    fast = engine.price("anthropic", "claude-opus-4-8", usage, speed="fast", at=NOV_2026)

    assert_priced(standard, "0.0075")
    assert_priced(fast, "0.015")


def test_fast_mode_without_price_is_unpriced(engine: CostEngine) -> None:
    cost = engine.price("anthropic", "claude-3-haiku", Usage(input_tokens=10), speed="fast")

    assert cost.cost_usd is None
    assert cost.unpriced_reason is not None
    assert "no fast-mode price" in cost.unpriced_reason


def test_time_of_day_prices_same_date(engine: CostEngine) -> None:
    # deepseek-chat: $0.27 input from 00:30 to 16:30 UTC, $0.135 off-peak.
    usage = Usage(input_tokens=1_000_000)
    peak = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    off_peak = datetime(2026, 11, 2, 18, 0, tzinfo=UTC)

    assert_priced(engine.price("deepseek", "deepseek-chat", usage, at=peak), "0.27")
    assert_priced(engine.price("deepseek", "deepseek-chat", usage, at=off_peak), "0.135")
    assert_priced(engine.price("deepseek", "deepseek-chat", usage, at=peak), "0.27")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service_tier": "turbo"}, "unknown service tier 'turbo'"),
        ({"service_tier": "priority", "batch": True}, "cannot be priced as a batch request"),
        ({"speed": "warp"}, "unknown speed 'warp'"),
    ],
)
def test_broken_call_raises(engine: CostEngine, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PricingError, match=message):
        engine.price("openai", "gpt-4o", Usage(input_tokens=1), **kwargs)


def test_custom_price_for_new_model() -> None:
    engine = CostEngine(
        {
            "acme-large": CustomPrice(
                input_mtok=Decimal("4"),
                output_mtok=Decimal("16"),
                cache_read_mtok=Decimal("0.4"),
                cache_write_mtok=Decimal("5"),
            )
        }
    )
    usage = Usage(
        input_tokens=3000, output_tokens=500, cache_read_tokens=1000, cache_write_tokens=1000
    )

    cost = engine.price("acme", "acme-large", usage)

    assert_priced(cost, "0.0174")
    assert cost.breakdown == {
        "input": Decimal("0.004"),
        "cache_read": Decimal("0.0004"),
        "cache_write_5m": Decimal("0.005"),
        "output": Decimal("0.008"),
    }
    assert cost.price_source == CUSTOM_SOURCE


def test_custom_price_overrides_catalog() -> None:
    engine = CostEngine(
        {"openai/gpt-4o": CustomPrice(input_mtok=Decimal("2"), output_mtok=Decimal("8"))}
    )
    usage = Usage(input_tokens=1000, output_tokens=1000, cache_read_tokens=500)

    openai_cost = engine.price("openai", "gpt-4o", usage)
    azure_cost = engine.price("azure", "gpt-4o", usage, at=NOV_2026)
    batch_cost = engine.price("openai", "gpt-4o", usage, batch=True)

    assert_priced(openai_cost, "0.01")
    assert openai_cost.price_source == CUSTOM_SOURCE
    assert azure_cost.price_source == CATALOG_SOURCE
    assert_priced(batch_cost, "0.005")


def test_custom_price_rejects_float() -> None:
    with pytest.raises(ConfigError, match=r"input_mtok=0\.5"):
        # A float on purpose: money must be Decimal.
        CustomPrice(input_mtok=0.5, output_mtok=Decimal("1"))  # type: ignore[arg-type]


def test_default_time_is_now(engine: CostEngine) -> None:
    usage = Usage(input_tokens=500, output_tokens=20)

    now_cost = engine.price("openai", "gpt-4o", usage)
    explicit = engine.price("openai", "gpt-4o", usage, at=datetime.now(UTC))

    assert now_cost.cost_usd == explicit.cost_usd
