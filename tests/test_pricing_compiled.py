"""The compiled catalog: the same exact figures as genai-prices and the reference tables."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import TimeOfDateConstraint

from thrifty.pricing import Cost, CostEngine
from thrifty.pricing.catalog import CATALOG_SOURCE, Catalog
from thrifty.pricing.compiled import (
    DailySchedule,
    DailyWindow,
    Unpriced,
    compile_table,
    price_usage,
)
from thrifty.pricing.engine import _new_cost, _Plan
from thrifty.pricing.lookup import compiled_catalog
from thrifty.pricing.rates import PriceTable, TieredRate
from thrifty.usage import Usage, usage_from_response

DATES = (datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2026, 11, 20, 9, tzinfo=UTC))
USAGES = (
    Usage(input_tokens=12345, output_tokens=678, cache_read_tokens=2000),
    Usage(
        input_tokens=250000,
        output_tokens=3000,
        cache_read_tokens=100000,
        cache_write_tokens=20000,
        cache_write_1h_tokens=5000,
        reasoning_tokens=1000,
    ),
)
# The contexts genai-prices selects each priced tier's variant by.
TIER_CONTEXTS = {"flex": {"service_tier": "flex"}, "priority": {"service_tier": "priority"}}


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
        input_image_tokens=usage.input_image_tokens,
        output_image_tokens=usage.output_image_tokens,
    )


def test_every_catalog_model_matches_genai_prices() -> None:
    """Each model, date and usage the engine prices by the catalog alone gives genai's total.

    Left out: what the engine does not price (no price, unpriced web
    searches), which genai-prices counts as $0, and tiers priced by a
    provider's rule (50% for OpenAI and Anthropic batch), which genai-prices
    prices at the standard rates.
    """
    engine = CostEngine(warn_unpriced=False)
    compared = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            tiers: list[str | None] = [None]
            tiers += [
                tier
                for tier, context in TIER_CONTEXTS.items()
                if any(variant.when == context for variant in model.price_variants or ())
            ]
            for at in DATES:
                for usage in USAGES:
                    for tier in tiers:
                        cost = engine.price(provider.id, model.id, usage, service_tier=tier, at=at)
                        if cost.cost_usd is None or cost.price_source != CATALOG_SOURCE:
                            continue
                        context = TIER_CONTEXTS.get(tier or "")
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            expected = genai_prices.calc_price(
                                genai_usage(usage),
                                model.id,
                                provider_id=provider.id,
                                genai_request_timestamp=at,
                                price_context=context,
                            )
                        assert cost.cost_usd == expected.total_price, (
                            provider.id,
                            model.id,
                            at,
                            tier,
                        )
                        compared += 1
    # A floor, so that a catalog or engine change that skips most models fails here.
    assert compared > 7500


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=1000, output_tokens=10),
        Usage(input_tokens=1000, input_audio_tokens=600, cache_read_tokens=500),
        Usage(
            input_tokens=1000, input_audio_tokens=300, input_image_tokens=400, cache_read_tokens=500
        ),
        Usage(
            output_tokens=900,
            reasoning_tokens=600,
            output_audio_tokens=200,
            output_image_tokens=300,
        ),
        Usage(input_tokens=300000, cache_write_tokens=100000, cache_write_1h_tokens=60000),
        Usage(input_tokens=5, web_search_requests=3),
        Usage(),
    ],
)
def test_compiled_table_matches_reference(usage: Usage) -> None:
    table = PriceTable(
        {
            "input": TieredRate(Decimal("1.25"), ((200000, Decimal("2.5")),)),
            "cache_read": Decimal("0.125"),
            "cache_write_5m": Decimal("1.5625"),
            "cache_write_1h": Decimal("2.5"),
            "output": TieredRate(Decimal("10"), ((200000, Decimal("15")),)),
            "reasoning": Decimal("10"),
            "input_audio": Decimal("40"),
            "output_audio": Decimal("80"),
            "web_search": Decimal("25"),
            "input_image": Decimal("8"),
            "output_image": Decimal("32"),
            "request": Decimal("5"),
        },
        "test",
    )
    compiled = compile_table(table)

    expected, unpriced = table.breakdown(usage)
    breakdown, total, missing = price_usage(compiled.row_for(usage.input_tokens), usage)

    assert unpriced == []
    assert missing is None
    assert breakdown == expected
    assert total == sum(expected.values(), Decimal(0))


def test_compiled_brackets_split_at_tier_starts() -> None:
    table = PriceTable(
        {
            "input": TieredRate(Decimal("1"), ((1000, Decimal("2")), (5000, Decimal("3")))),
            "output": TieredRate(Decimal("10"), ((2000, Decimal("20")),)),
        },
        "test",
    )

    compiled = compile_table(table)
    rates = [compiled.row_for(n).rates[:5:4] for n in (1000, 1001, 2000, 2001, 5000, 5001)]

    assert compiled.thresholds == (1000, 2000, 5000)
    assert rates == [
        (Decimal("0.000001"), Decimal("0.00001")),
        (Decimal("0.000002"), Decimal("0.00001")),
        (Decimal("0.000002"), Decimal("0.00001")),
        (Decimal("0.000002"), Decimal("0.00002")),
        (Decimal("0.000002"), Decimal("0.00002")),
        (Decimal("0.000003"), Decimal("0.00002")),
    ]


def test_missing_rates_are_listed() -> None:
    compiled = compile_table(PriceTable({"input": Decimal("1")}, "test"))

    breakdown, total, missing = price_usage(
        compiled.row_for(10), Usage(input_tokens=10, output_tokens=5, web_search_requests=1)
    )

    assert breakdown == {"input": Decimal("0.00001")}
    assert total == Decimal("0.00001")
    assert missing == ["output", "web_search"]


def test_fast_cost_is_a_frozen_equal_cost() -> None:
    plan = _Plan("openai", "gpt-4o-2024-08-06", "gpt-4o", "flex", False, None)
    breakdown = {"input": Decimal("0.5")}

    cost = _new_cost(plan, Decimal("0.5"), breakdown, "src", notes=("note",))

    assert type(cost) is Cost
    assert cost == Cost(
        provider="openai",
        model_requested="gpt-4o-2024-08-06",
        model="gpt-4o",
        service_tier="flex",
        batch=False,
        cost_usd=Decimal("0.5"),
        breakdown=breakdown,
        price_source="src",
        notes=("note",),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.cost_usd = Decimal(1)  # type: ignore[misc]


def test_engines_share_one_compiled_catalog() -> None:
    first = CostEngine(warn_unpriced=False)
    second = CostEngine(warn_unpriced=False)

    assert compiled_catalog(first.catalog) is compiled_catalog(second.catalog)
    assert len(compiled_catalog(Catalog())) >= 2000


def test_per_request_fee() -> None:
    # sonar: $1 input and output per million, and $12 per 1,000 requests.
    engine = CostEngine(warn_unpriced=False)
    usage = Usage(input_tokens=1000, output_tokens=500)
    at = datetime(2026, 11, 16, tzinfo=UTC)

    cost = engine.price("perplexity", "sonar", usage, at=at)
    failed = engine.price("perplexity", "sonar", Usage(), at=at)
    expected = genai_prices.calc_price(
        genai_usage(usage), "sonar", provider_id="perplexity", genai_request_timestamp=at
    )

    assert cost.breakdown == {
        "input": Decimal("0.001"),
        "output": Decimal("0.0005"),
        "request": Decimal("0.012"),
    }
    assert cost.cost_usd == expected.total_price
    assert failed.cost_usd == Decimal(0)


def test_batch_does_not_halve_request_fees() -> None:
    table = PriceTable(
        {"input": Decimal("2"), "request": Decimal("12"), "web_search": Decimal("10")}, "t"
    )

    half = table.scaled(Decimal("0.5"), "batch")
    discounted = table.scaled(Decimal("0.5"), "discount", fees=True)

    assert half.rates == {
        "input": Decimal("1.0"),
        "request": Decimal("12"),
        "web_search": Decimal("10"),
    }
    assert discounted.rates["request"] == Decimal("6.0")
    assert discounted.rates["web_search"] == Decimal("5.0")


def test_gemini_image_output_matches_genai_prices() -> None:
    engine = CostEngine(warn_unpriced=False)
    usage = Usage(
        input_tokens=600, output_tokens=1500, input_image_tokens=258, output_image_tokens=1290
    )
    at = datetime(2026, 11, 16, tzinfo=UTC)

    cost = engine.price("google", "gemini-2.5-flash-image", usage, at=at)
    expected = genai_prices.calc_price(
        genai_usage(usage),
        "gemini-2.5-flash-image",
        provider_id="google",
        genai_request_timestamp=at,
    )

    assert cost.cost_usd == expected.total_price
    # $30 per million image tokens out, $2.50 per million text tokens out.
    assert cost.breakdown["output_image"] == Decimal("0.0387")
    assert cost.breakdown["output"] == Decimal("0.000525")


def test_images_api_response() -> None:
    # gpt-image-1.5: $5 text and $8 image input, $32 image output per million.
    body = {
        "created": 1763287200,
        "data": [{"b64_json": "aGVsbG8="}],
        "usage": {
            "input_tokens": 350,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 300},
            "output_tokens": 4160,
            "total_tokens": 4510,
        },
    }
    usage = usage_from_response("images", body)

    cost = CostEngine(warn_unpriced=False).price(
        "openai", "gpt-image-1.5", usage, at=datetime(2026, 11, 16, tzinfo=UTC)
    )

    assert usage.output_image_tokens == 4160
    assert cost.breakdown == {
        "input": Decimal("0.00025"),
        "input_image": Decimal("0.0024"),
        "output_image": Decimal("0.13312"),
    }
    assert cost.cost_usd == Decimal("0.13577")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (time(0, 30), time(16, 30)),
        (time(22, 0), time(6, 0)),
        (
            time(9, 0, tzinfo=timezone(timedelta(hours=8))),
            time(17, 0, tzinfo=timezone(timedelta(hours=8))),
        ),
        (time(12, 0), time(12, 0)),
    ],
    ids=["daytime", "over-midnight", "utc-plus-8", "empty"],
)
def test_daily_schedule_follows_genai_windows(start: time, end: time) -> None:
    """Each segment between window edges picks the prices genai-prices' windows give."""
    constraint = TimeOfDateConstraint(start_time=start, end_time=end)
    schedule = DailySchedule.of(
        (), (DailyWindow.of(constraint),), lambda when: Unpriced(str(constraint.active(when)))
    )
    moments = [
        datetime(2026, 11, 16, hour, minute, second, tzinfo=UTC)
        for hour in range(24)
        for minute in (0, 29, 30, 59)
        for second in (0, 59)
    ]
    moments.append(datetime(2026, 11, 16, 9, 30, tzinfo=timezone(timedelta(hours=-5))))

    for moment in moments:
        assert schedule.at(moment) == Unpriced(str(constraint.active(moment))), moment
