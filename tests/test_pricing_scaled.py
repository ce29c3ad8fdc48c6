"""The integer text pricer and the deferred breakdown give price_usage's exact Decimals."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.property_support import PROPERTY_SETTINGS
from thrifty.pricing import Cost, CostEngine, Discounts
from thrifty.pricing.catalog import Catalog, catalog_entry
from thrifty.pricing.compiled import (
    CompiledTable,
    DailySchedule,
    RateRow,
    Schedule,
    compile_table,
    price_usage,
    usage_breakdown,
)
from thrifty.pricing.lookup import compiled_catalog
from thrifty.pricing.rates import EXACT, PriceTable
from thrifty.pricing.scaled import MAX_PLACES
from thrifty.usage import Usage

AT = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
# Instants inside and outside DeepSeek's daily price window (00:30 to 16:30 UTC).
DAILY_INSTANTS = (AT, datetime(2026, 11, 16, 18, 0, tzinfo=UTC))
TEXT_USAGES = (
    Usage(),
    Usage(input_tokens=1),
    Usage(output_tokens=1),
    Usage(input_tokens=4200, output_tokens=900, cache_read_tokens=3072),
    Usage(input_tokens=3072, output_tokens=900, cache_read_tokens=3072),
    Usage(input_tokens=6000, cache_write_tokens=6000),
    Usage(input_tokens=6000, cache_write_tokens=6000, cache_write_1h_tokens=6000),
    Usage(input_tokens=10, output_tokens=512, reasoning_tokens=512),
    Usage(
        input_tokens=250000,
        output_tokens=3000,
        cache_read_tokens=100000,
        cache_write_tokens=20000,
        cache_write_1h_tokens=5000,
        reasoning_tokens=1000,
    ),
    Usage(input_tokens=10**12, output_tokens=10**11, cache_read_tokens=10**11),
)
TEXT_RATES = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")


def exact_sum(amounts: dict[str, Decimal]) -> Decimal:
    """Return the amounts added in order from Decimal(0), as ``price_usage`` adds them."""
    return reduce(EXACT.add, amounts.values(), Decimal(0))


def as_tuples(breakdown: dict[str, Decimal]) -> list[tuple[str, object]]:
    return [(token_class, amount.as_tuple()) for token_class, amount in breakdown.items()]


def catalog_rows() -> list[RateRow]:
    """Return every rate row of the compiled catalog, at every tier and speed."""
    catalog = Catalog()
    compiled = compiled_catalog(catalog)
    tables: list[CompiledTable] = []
    for provider in catalog.providers:
        for model in provider.models:
            schedules = compiled.model(catalog_entry(provider, model, own=True)).schedules
            for schedule in schedules.values():
                if isinstance(schedule, Schedule):
                    periods = schedule.periods
                else:
                    assert isinstance(schedule, DailySchedule)
                    periods = tuple(schedule.at(when) for when in DAILY_INSTANTS)
                tables += [period for period in periods if isinstance(period, CompiledTable)]
    return [row for table in tables for row in table.rows]


def test_text_pricer_matches_every_catalog_row() -> None:
    compared = 0
    for row in catalog_rows():
        for usage in TEXT_USAGES:
            breakdown, expected, missing = price_usage(row, usage)
            total = row.price_text(usage)
            if row.text is None:
                assert total is None
                continue
            assert missing is None
            assert total is not None
            # Equal as Decimal tuples: the same value and the same exponent.
            assert total.as_tuple() == expected.as_tuple(), (row.rates, usage)
            assert total.as_tuple() == exact_sum(breakdown).as_tuple()
            built = usage_breakdown(row, usage)
            assert as_tuples(built) == as_tuples(breakdown), (row.rates, usage)
            compared += 1
    # A floor, so that a catalog or compiler change that skips most rows fails here.
    assert compared > 20000


rates_per_million = st.builds(
    lambda coefficient, exponent: EXACT.scaleb(Decimal(coefficient), exponent),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=-12, max_value=9),
)
counts = st.integers(min_value=0, max_value=10**9)


@st.composite
def text_usages(draw: st.DrawFn) -> Usage:
    cache_read, write_5m, write_1h, uncached, plain_output, reasoning = (
        draw(counts) for _ in range(6)
    )
    return Usage(
        input_tokens=uncached + cache_read + write_5m + write_1h,
        output_tokens=plain_output + reasoning,
        cache_read_tokens=cache_read,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=reasoning,
    )


@PROPERTY_SETTINGS
@given(
    st.lists(rates_per_million, min_size=6, max_size=6),
    st.none() | rates_per_million,
    text_usages(),
)
def test_text_pricer_matches_price_usage(
    rates: list[Decimal], request: Decimal | None, usage: Usage
) -> None:
    table_rates: dict[str, Decimal] = dict(zip(TEXT_RATES, rates, strict=True))
    if request is not None:
        table_rates["request"] = request
    row = compile_table(PriceTable(table_rates, "test")).rows[0]

    total = row.price_text(usage)
    breakdown, expected, _ = price_usage(row, usage)

    assert total is not None
    assert total.as_tuple() == expected.as_tuple()
    assert as_tuples(usage_breakdown(row, usage)) == as_tuples(breakdown)


def test_zero_usage_costs_plain_zero() -> None:
    cost = CostEngine(warn_unpriced=False).price("openai", "gpt-4o", Usage(), at=AT)

    assert cost.cost_usd is not None
    assert cost.cost_usd.as_tuple() == Decimal(0).as_tuple()
    assert str(cost.cost_usd) == "0"
    assert cost.breakdown == {}


def test_free_rate_keeps_its_exponent() -> None:
    row = compile_table(PriceTable(dict.fromkeys(TEXT_RATES, Decimal("0.00")), "free")).rows[0]

    total = row.price_text(Usage(input_tokens=5, output_tokens=2))

    assert total is not None
    assert total.as_tuple() == Decimal("0E-8").as_tuple()


def test_coarse_rate_total_has_no_decimal_places() -> None:
    # $5,000,000 per million tokens is $5 per token, an exponent of 0 after scaling.
    rates = dict.fromkeys(TEXT_RATES, Decimal("5E+6"))
    row = compile_table(PriceTable(rates, "coarse")).rows[0]

    total = row.price_text(Usage(input_tokens=3))

    assert total is not None
    assert total.as_tuple() == Decimal("15").as_tuple()


def test_request_fee_only_with_tokens() -> None:
    rates: dict[str, Decimal] = dict.fromkeys(TEXT_RATES, Decimal(1))
    rates["request"] = Decimal("12.5")
    row = compile_table(PriceTable(rates, "fee")).rows[0]

    charged = row.price_text(Usage(input_tokens=1000))
    failed = row.price_text(Usage())

    # $1 per million for 1,000 tokens, and $12.50 per 1,000 requests.
    assert charged is not None
    assert charged.as_tuple() == Decimal("0.013500").as_tuple()
    assert failed is not None
    assert failed.as_tuple() == Decimal(0).as_tuple()


def test_finer_rate_than_max_places_has_no_pricer() -> None:
    rates = dict.fromkeys(TEXT_RATES, Decimal(1))
    rates["cache_read"] = EXACT.scaleb(Decimal(1), -MAX_PLACES)
    row = compile_table(PriceTable(rates, "fine")).rows[0]
    usage = Usage(input_tokens=2000, cache_read_tokens=1000)

    breakdown, total, _ = price_usage(row, usage)

    assert row.price_text(usage) is None
    # 1,000 tokens at $1 per million, and 1,000 at 1E-46 per token.
    assert total == EXACT.add(Decimal("0.001"), Decimal("1E-43"))
    assert breakdown["input"] == Decimal("0.001")


def test_row_builds_pricers_on_first_call() -> None:
    row = compile_table(PriceTable(dict.fromkeys(TEXT_RATES, Decimal("2.5")), "test")).rows[0]
    usage = Usage(input_tokens=1000, output_tokens=10)
    builder = row.price_text

    first = row.price_text(usage)
    built = row.price_text
    second = row.price_text(usage)

    assert built is not builder
    assert row.price_text is built
    assert first == Decimal("0.002525")
    assert second == first
    expected = {"input": Decimal("0.0025"), "output": Decimal("0.000025")}
    assert usage_breakdown(row, usage) == expected


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=1000, input_audio_tokens=600),
        Usage(output_tokens=1000, output_audio_tokens=600),
        Usage(input_tokens=1000, input_image_tokens=600),
        Usage(output_tokens=1000, output_image_tokens=600),
        Usage(input_tokens=1000, web_search_requests=1),
    ],
)
def test_text_pricer_declines_media_usage(usage: Usage) -> None:
    row = compile_table(PriceTable(dict.fromkeys(TEXT_RATES, Decimal(1)), "test")).rows[0]

    assert row.price_text(usage) is None


def test_media_usage_is_priced_by_class() -> None:
    engine = CostEngine(warn_unpriced=False)
    usage = Usage(input_tokens=1000, input_audio_tokens=600, output_tokens=10)

    cost = engine.price("openai", "gpt-4o-audio-preview", usage, at=AT)

    assert cost.cost_usd is not None
    assert set(cost.breakdown) == {"input", "input_audio", "output"}
    assert cost.cost_usd.as_tuple() == exact_sum(cost.breakdown).as_tuple()


def test_discounted_rates_price_exactly() -> None:
    plain = CostEngine(warn_unpriced=False)
    discounted = CostEngine(
        warn_unpriced=False, discounts=Discounts(models={"gpt-4o": Decimal("7")})
    )
    usage = TEXT_USAGES[3]

    full = plain.price("openai", "gpt-4o", usage, at=AT)
    lower = discounted.price("openai", "gpt-4o", usage, at=AT)

    assert full.cost_usd is not None
    assert lower.cost_usd is not None
    assert lower.cost_usd == EXACT.multiply(full.cost_usd, Decimal("0.93"))
    assert lower.cost_usd.as_tuple() == exact_sum(lower.breakdown).as_tuple()


def test_breakdown_is_built_once_on_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    multiplied: list[Decimal] = []

    def counted(rate: Decimal | int, count: Decimal | int) -> Decimal:
        product = EXACT.multiply(rate, count)
        multiplied.append(product)
        return product

    # The text pricer's total and each class of the breakdown come from one multiplication.
    monkeypatch.setattr("thrifty.pricing.scaled._multiply", counted)
    monkeypatch.setattr("thrifty.pricing.compiled._multiply", counted)
    engine = CostEngine(warn_unpriced=False)

    cost = engine.price("deepseek", "deepseek-chat", TEXT_USAGES[3], at=AT)
    made_by_price = len(multiplied)
    first = cost.breakdown
    made_by_first_read = len(multiplied) - made_by_price
    second = cost.breakdown

    assert made_by_price == 1
    assert made_by_first_read == 3
    assert len(multiplied) == 4
    assert first is second
    assert first == {
        "input": Decimal("0.00030456"),
        "cache_read": Decimal("0.00021504"),
        "output": Decimal("0.0009900"),
    }


def test_engine_cost_behaves_as_a_built_cost() -> None:
    engine = CostEngine(warn_unpriced=False)

    def priced() -> Cost:
        # A new cost for each check, so that no check reads a breakdown another one built.
        return engine.price("deepseek", "deepseek-chat", TEXT_USAGES[3], at=AT)

    built = Cost(
        provider="deepseek",
        model_requested="deepseek-chat",
        model="deepseek-chat",
        service_tier="default",
        batch=False,
        cost_usd=Decimal("0.00150960"),
        breakdown={
            "input": Decimal("0.00030456"),
            "cache_read": Decimal("0.00021504"),
            "output": Decimal("0.0009900"),
        },
        price_source=priced().price_source,
    )

    assert type(priced()) is Cost
    assert priced() == built
    assert built == priced()
    assert repr(priced()) == repr(built)
    assert pickle.loads(pickle.dumps(priced())) == built
    assert dataclasses.replace(priced(), notes=("n",)).breakdown == built.breakdown
    assert dataclasses.asdict(priced())["breakdown"] == built.breakdown
    with pytest.raises(dataclasses.FrozenInstanceError):
        priced().breakdown = {}  # type: ignore[misc]


def test_engine_costs_compare_by_value() -> None:
    engine = CostEngine(warn_unpriced=False)

    first = engine.price("deepseek", "deepseek-chat", TEXT_USAGES[3], at=AT)
    second = engine.price("deepseek", "deepseek-chat", TEXT_USAGES[3], at=AT)
    other = engine.price("deepseek", "deepseek-chat", TEXT_USAGES[4], at=AT)

    assert first == second
    assert first != other
