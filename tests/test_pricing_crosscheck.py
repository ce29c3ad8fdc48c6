"""CostEngine totals against genai_prices.calc_price for the same usage, model and context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import genai_prices
import pytest

from tests.provider_responses import (
    ANTHROPIC_MESSAGE,
    ANTHROPIC_THINKING_SEARCH,
    GEMINI_THINKING,
    OPENAI_CHAT_CACHED,
    OPENAI_CHAT_REASONING,
    OPENAI_RESPONSE,
)
from thrifty.pricing import CostEngine
from thrifty.usage import Usage, usage_from_anthropic, usage_from_gemini, usage_from_openai_chat
from thrifty.usage import usage_from_openai_responses as usage_from_responses

NOV_2026 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    usage: Usage
    at: datetime = NOV_2026
    service_tier: str | None = None
    batch: bool = False
    speed: str | None = None

    def price_context(self) -> dict[str, str]:
        context: dict[str, str] = {}
        if self.batch:
            context["processing"] = "batch"
        elif self.service_tier:
            context["service_tier"] = self.service_tier
        if self.speed:
            context["speed"] = self.speed
        return context


CASES = {
    "gpt-4o cached": Case(
        "openai", "gpt-4o-2024-08-06", usage_from_openai_chat(OPENAI_CHAT_CACHED)
    ),
    "gpt-5 flex": Case(
        "openai", "gpt-5", usage_from_openai_chat(OPENAI_CHAT_REASONING), service_tier="flex"
    ),
    "gpt-5 priority": Case(
        "openai", "gpt-5", usage_from_openai_chat(OPENAI_CHAT_REASONING), service_tier="priority"
    ),
    "gpt-5 batch": Case(
        "openai", "gpt-5", usage_from_openai_chat(OPENAI_CHAT_REASONING), batch=True
    ),
    "o4-mini responses": Case("openai", "o4-mini", usage_from_responses(OPENAI_RESPONSE)),
    "o3 before price cut": Case(
        "openai",
        "o3",
        Usage(input_tokens=40000, output_tokens=9000, cache_read_tokens=30000),
        at=datetime(2025, 3, 1, tzinfo=UTC),
    ),
    "gpt-6-sol long context writes": Case(
        "openai",
        "gpt-6-sol",
        Usage(
            input_tokens=300000,
            output_tokens=4000,
            cache_read_tokens=200000,
            cache_write_tokens=50000,
        ),
    ),
    "claude-3-5-sonnet 5m and 1h writes": Case(
        "anthropic", "claude-3-5-sonnet-20241022", usage_from_anthropic(ANTHROPIC_MESSAGE)
    ),
    "claude-haiku-4-5 batch web search": Case(
        "anthropic",
        "claude-haiku-4-5",
        usage_from_anthropic(ANTHROPIC_THINKING_SEARCH),
        batch=True,
    ),
    "claude-opus-4-8 fast mode": Case(
        "anthropic",
        "claude-opus-4-8",
        usage_from_anthropic(ANTHROPIC_MESSAGE),
        speed="fast",
    ),
    "gemini-2.5-flash thoughts": Case(
        "google", "gemini-2.5-flash", usage_from_gemini(GEMINI_THINKING)
    ),
    "gemini-2.5-pro long context": Case(
        "google",
        "gemini-2.5-pro",
        Usage(input_tokens=250000, output_tokens=3000, cache_read_tokens=100000),
    ),
    "deepseek-chat peak hours": Case(
        "deepseek",
        "deepseek-chat",
        Usage(input_tokens=70000, output_tokens=1200, cache_read_tokens=50000),
        at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    ),
}


def genai_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        input_audio_tokens=usage.input_audio_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        web_searches=usage.web_search_requests,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_total_matches_genai_prices(case: Case) -> None:
    expected = genai_prices.calc_price(
        genai_usage(case.usage),
        case.model,
        provider_id=case.provider,
        genai_request_timestamp=case.at,
        price_context=case.price_context(),
    )

    cost = CostEngine().price(
        case.provider,
        case.model,
        case.usage,
        service_tier=case.service_tier,
        batch=case.batch,
        at=case.at,
        speed=case.speed,
    )

    assert cost.cost_usd is not None
    assert expected.total_price > 0
    assert cost.cost_usd == expected.total_price
    assert cost.model == expected.model.id
