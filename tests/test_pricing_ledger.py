"""Unpriced models in the ledger, and repricing stored requests, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.ledger import Ledger, ReportQuery, RequestRecord, open_ledger
from thrifty.ledger.histogram import rebuild_histograms
from thrifty.ledger.schema import (
    cost_histograms,
    request_cost_history,
    session_rollups,
    user_rollups,
)
from thrifty.ledger.spender_rollups import rebuild_spender_rollups
from thrifty.pricing import CostEngine
from thrifty.pricing.config import parse_prices_config
from thrifty.pricing.repricing import pricing_details, reprice, unpriced_models
from thrifty.usage import Usage

NOV_10 = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)
NOV_11 = datetime(2026, 11, 11, 14, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 1, tzinfo=UTC)

# acme-large served by a vLLM provider: $1 input, $4 output per million.
PRICES = parse_prices_config(
    {
        "models": {"vllm/acme-large": {"input_mtok": 1, "output_mtok": 4}},
        "discounts": {"models": {"gpt-4o": 50}},
    }
)


@pytest.fixture(scope="module")
def engine() -> CostEngine:
    return CostEngine.from_config(PRICES, warn_unpriced=False)


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    for url in ledger_db_url(request, tmp_path):
        opened = open_ledger(url)
        try:
            yield opened
        finally:
            opened.close()


def acme(request_id: str, started_at: datetime, **changes: object) -> RequestRecord:
    """An unpriced request for acme-large, served by the vllm provider."""
    values: dict[str, object] = {
        "started_at": started_at,
        "provider": "vllm",
        "model_requested": "acme-large",
        "model_served": "acme-large",
        "model_priced": None,
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    return unpriced(request_id, **(values | changes))


def seed(ledger: Ledger) -> None:
    ledger.write(
        [
            acme("acme-1", NOV_10),
            acme("acme-2", NOV_11),
            # Requested with the provider prefix, and no model in the response.
            acme("acme-3", NOV_11, model_requested="vllm/acme-large", model_served=None),
            unpriced("other-1", started_at=NOV_11, model_requested="mystery", model_served=None),
            # Before --since: stays unpriced.
            acme("acme-old", datetime(2026, 10, 1, tzinfo=UTC)),
            # gpt-4o at list prices ($2.50 input, $10 output); the 50%
            # discount halves it.
            make_record(
                "gpt4o-1",
                started_at=NOV_10,
                model_requested="gpt-4o",
                model_served="gpt-4o-2024-08-06",
                model_priced="gpt-4o",
                input_tokens=1000,
                output_tokens=100,
                cost_usd=Decimal("0.0035"),
                cost_breakdown={"input": Decimal("0.0025"), "output": Decimal("0.001")},
            ),
            # gpt-4o-mini priced right already ($0.15 and $0.60).
            make_record(
                "mini-1",
                started_at=NOV_11,
                cost_usd=Decimal("0.00036"),
                cost_breakdown={"input": Decimal("0.00018"), "output": Decimal("0.00018")},
            ),
            # Web searches charged, but their count was not recorded.
            make_record(
                "search-1",
                started_at=NOV_11,
                cost_usd=Decimal("0.01036"),
                cost_breakdown={
                    "input": Decimal("0.00018"),
                    "output": Decimal("0.00018"),
                    "web_search": Decimal("0.01"),
                },
            ),
        ]
    )


def test_unpriced_models_counts_requests(ledger: Ledger) -> None:
    seed(ledger)

    models = unpriced_models(ledger)

    assert [(m.provider, m.model, m.requests) for m in models] == [
        ("vllm", "acme-large", 3),
        ("openai", "mystery", 1),
        ("vllm", "vllm/acme-large", 1),
    ]
    assert models[0].input_tokens == 3000
    assert models[0].output_tokens == 600
    assert models[0].first_seen == datetime(2026, 10, 1, tzinfo=UTC)
    assert models[0].last_seen == NOV_11


def test_unpriced_models_since(ledger: Ledger) -> None:
    seed(ledger)

    models = unpriced_models(ledger, since=SINCE, until=datetime(2026, 11, 11, tzinfo=UTC))

    assert [(m.model, m.requests) for m in models] == [("acme-large", 1)]


def test_reprice_prices_and_keeps_history(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)

    summary = reprice(ledger, engine, since=SINCE)

    assert summary.examined == 7
    assert summary.changed == 4
    assert summary.newly_priced == 3
    assert summary.unchanged == 1
    assert summary.still_unpriced == 1
    assert summary.skipped == 1
    assert summary.skip_reasons == {"web_search counts are not stored": 1}
    assert summary.cost_before == Decimal("0.0035")
    # 3 x acme ($0.0018 each) + gpt-4o at half price ($0.00175).
    assert summary.cost_after == Decimal("0.00715")

    acme_record = ledger.get("acme-3")
    assert acme_record is not None
    assert acme_record.cost_usd == Decimal("0.0018")
    assert acme_record.unpriced is False
    assert acme_record.model_priced == "acme-large"
    assert acme_record.cost_breakdown == {"input": Decimal("0.001"), "output": Decimal("0.0008")}
    gpt4o = ledger.get("gpt4o-1")
    assert gpt4o is not None
    assert gpt4o.cost_usd == Decimal("0.00175")
    old = ledger.get("acme-old")
    assert old is not None
    assert old.unpriced is True

    with ledger.engine.connect() as connection:
        rows = connection.execute(
            sa.select(request_cost_history).order_by(request_cost_history.c.request_id)
        ).all()
    assert [row.request_id for row in rows] == ["acme-1", "acme-2", "acme-3", "gpt4o-1"]
    history = {row.request_id: row for row in rows}
    assert history["gpt4o-1"].cost_usd == Decimal("0.0035")
    assert history["gpt4o-1"].new_cost_usd == Decimal("0.00175")
    assert history["gpt4o-1"].unpriced is False
    assert history["gpt4o-1"].price_source.endswith("prices.discounts.models.gpt-4o")
    assert history["acme-1"].cost_usd is None
    assert history["acme-1"].unpriced is True
    assert history["acme-1"].cost_breakdown == "{}"


def test_reprice_rebuilds_rollups(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)
    whole_days = ReportQuery(since=SINCE, until=datetime(2026, 11, 12, tzinfo=UTC))
    before = ledger.report(whole_days).totals

    reprice(ledger, engine, since=SINCE)
    after = ledger.report(whole_days).totals

    assert before.unpriced_requests == 4
    assert before.cost_usd == Decimal("0.01422")
    assert after.unpriced_requests == 1
    # gpt-4o $0.00175 + mini $0.00036 + search $0.01036 + 3 x acme $0.0018.
    assert after.cost_usd == Decimal("0.01787")


def test_reprice_rebuilds_histograms(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)
    reprice(ledger, engine, since=SINCE)

    def day_rows() -> list[tuple[Any, ...]]:
        h = cost_histograms.c
        statement = (
            sa.select(h.bucket, h.feature_key, h.bin, h.requests)
            .where(h.resolution == "day")
            .order_by(h.bucket, h.feature_key, h.bin)
        )
        with ledger.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(statement)]

    repriced = day_rows()
    with ledger.engine.begin() as connection:
        rebuild_histograms(connection)
    assert day_rows() == repriced
    totals = ledger.report(ReportQuery(since=SINCE)).totals
    assert sum(row[-1] for row in repriced) == totals.requests - totals.unpriced_requests


def test_reprice_rebuilds_user_and_session_rollups(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)
    reprice(ledger, engine, since=SINCE)

    def rows() -> list[tuple[Any, ...]]:
        with ledger.engine.connect() as connection:
            return [
                tuple(row)
                for table in (user_rollups, session_rollups)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]

    repriced = rows()
    with ledger.engine.begin() as connection:
        rebuild_spender_rollups(connection)
    assert rows() == repriced
    u = user_rollups.c
    until = datetime(2026, 11, 12, tzinfo=UTC)
    with ledger.engine.connect() as connection:
        costs = connection.execute(
            sa.select(u.cost_usd).where(u.bucket >= SINCE, u.bucket < until)
        ).scalars()
        assert sum(costs, Decimal(0)) == Decimal("0.01787")


def test_reprice_dry_run_writes_nothing(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)

    summary = reprice(ledger, engine, since=SINCE, dry_run=True)

    assert summary.changed == 4
    record = ledger.get("acme-1")
    assert record is not None
    assert record.unpriced is True
    with ledger.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(request_cost_history))
        assert count.scalar_one() == 0


def test_reprice_twice_changes_nothing_more(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)

    reprice(ledger, engine, since=SINCE)
    second = reprice(ledger, engine, since=SINCE)

    assert second.changed == 0
    assert second.unchanged == 5


def test_reprice_small_batches(ledger: Ledger, engine: CostEngine) -> None:
    seed(ledger)

    summary = reprice(ledger, engine, since=SINCE, batch_size=2)

    assert summary.examined == 7
    assert summary.changed == 4


def test_reprice_never_unprices_a_priced_row(ledger: Ledger, engine: CostEngine) -> None:
    ledger.write(
        [
            make_record(
                "gone-1",
                started_at=NOV_10,
                model_requested="retired-model",
                model_served="retired-model",
                cost_usd=Decimal("0.5"),
                cost_breakdown={"input": Decimal("0.5")},
            )
        ]
    )

    summary = reprice(ledger, engine, since=SINCE)

    assert summary.skip_reasons == {"no price any more": 1}
    record = ledger.get("gone-1")
    assert record is not None
    assert record.cost_usd == Decimal("0.5")


def test_reprice_reads_pricing_details(ledger: Ledger, engine: CostEngine) -> None:
    # claude-haiku-4-5: $1 input, $5 output, web search $10 per 1,000.
    usage = Usage(input_tokens=1000, output_tokens=100, web_search_requests=2)
    ledger.write(
        [
            make_record(
                "search-2",
                started_at=NOV_10,
                provider="claude",
                model_requested="claude-haiku-4-5",
                model_served="claude-haiku-4-5-20251001",
                input_tokens=1000,
                output_tokens=100,
                cost_usd=Decimal("0.0015"),
                cost_breakdown={"input": Decimal("0.001"), "output": Decimal("0.0005")},
                details={"pricing": pricing_details("anthropic", "claude-haiku-4-5", usage, None)},
            )
        ]
    )

    summary = reprice(ledger, engine, since=SINCE)

    assert summary.changed == 1
    record = ledger.get("search-2")
    assert record is not None
    assert record.cost_usd == Decimal("0.0215")
    assert record.cost_breakdown["web_search"] == Decimal("0.02")


def test_pricing_details_leaves_out_zero_counts() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, input_audio_tokens=4)

    details = pricing_details("openai", "gpt-4o-audio-preview", usage, "standard")

    assert details == {
        "provider": "openai",
        "model": "gpt-4o-audio-preview",
        "speed": "standard",
        "input_audio_tokens": 4,
    }
