"""What the caches saved, computed from ledger records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ledger_support import STARTED_AT, make_record
from thrifty.cache.analytics import prompt_cache_stats, response_cache_stats
from thrifty.errors import ReportError
from thrifty.ledger import Ledger, open_ledger
from thrifty.pricing.engine import CostEngine

MILLION = Decimal(1_000_000)
# gpt-4o-mini list prices per million tokens (genai-prices data).
MINI_INPUT = Decimal("0.15")
MINI_CACHED = Decimal("0.075")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


def test_response_cache_stats_per_feature(ledger: Ledger) -> None:
    ledger.write(
        [
            make_record(
                "miss", feature="faq", cache_status="miss", details={"cache": {"status": "miss"}}
            ),
            make_record(
                "hit",
                feature="faq",
                cache_status="hit",
                cost_usd=Decimal(0),
                details={"cache": {"saved_usd": Decimal("0.00036")}},
            ),
            make_record(
                "semantic",
                feature="faq",
                cache_status="semantic-hit",
                cost_usd=Decimal(0),
                details={"cache": {"saved_usd": Decimal("0.00012")}},
            ),
            make_record(
                "unpriced-hit",
                feature="faq",
                cache_status="hit",
                cost_usd=Decimal(0),
                details={"cache": {"saved_usd": None}},
            ),
            make_record(
                "embedding",
                feature="faq",
                endpoint="embeddings",
                cost_usd=Decimal("0.00001"),
                tags={"thrifty_cache": "embedding"},
            ),
            make_record("uncached", feature="chat"),
        ]
    )
    with ledger.engine.connect() as connection:
        stats = response_cache_stats(
            connection,
            until=STARTED_AT + timedelta(days=1),
            entry_sizes=[("faq", 1024**3, STARTED_AT, STARTED_AT + timedelta(days=3))],
            usd_per_gb_month=Decimal("0.30"),
        )
    faq = next(item for item in stats if item.feature == "faq")
    assert faq.hits == 2
    assert faq.semantic_hits == 1
    assert faq.misses == 1
    assert faq.hit_rate == 0.75
    assert faq.saved_usd == Decimal("0.00048")
    assert faq.unpriced_hits == 1
    assert faq.embedding_requests == 1
    assert faq.embedding_usd == Decimal("0.00001")
    # One GB for one of the 30 days of a month, at $0.30 per GB-month.
    assert faq.storage_usd == Decimal("0.01")
    assert faq.net_saving_usd == Decimal("0.00048") - Decimal("0.00001") - Decimal("0.01")
    assert [item.feature for item in stats if item.feature == "chat"] == []


def test_storage_is_unpriced_without_a_rate(ledger: Ledger) -> None:
    ledger.write([make_record("miss", feature="faq", cache_status="miss")])
    with ledger.engine.connect() as connection:
        stats = response_cache_stats(connection, until=STARTED_AT + timedelta(days=1))
    assert stats[0].storage_usd is None
    assert stats[0].to_json()["storage_priced"] is False


def test_prompt_cache_saving_is_repriced_exactly(ledger: Ledger) -> None:
    engine = CostEngine()
    records = []
    for number, cached in enumerate([0, 2048, 4096]):
        usage_cost = (
            (5000 - cached) * MINI_INPUT + cached * MINI_CACHED + 100 * Decimal("0.6")
        ) / MILLION
        records.append(
            make_record(
                f"r{number}",
                model_served="gpt-4o-mini",
                input_tokens=5000,
                output_tokens=100,
                cache_read_tokens=cached,
                cost_usd=usage_cost,
                feature="docs",
            )
        )
    records.append(make_record("hit", cache_status="hit", cost_usd=Decimal(0), input_tokens=0))
    ledger.write(records)
    with ledger.engine.connect() as connection:
        groups = prompt_cache_stats(connection, engine, by=["model", "feature"])
    assert len(groups) == 1
    group = groups[0]
    assert group.values == {"model": "gpt-4o-mini", "feature": "docs"}
    assert group.requests == 3
    assert group.input_tokens == 15000
    assert group.cache_read_tokens == 6144
    assert group.hit_rate == pytest.approx(6144 / 15000)
    assert group.saved_usd == 6144 * (MINI_INPUT - MINI_CACHED) / MILLION


def test_prompt_cache_stats_rejects_unknown_dimension(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection, pytest.raises(ReportError) as raised:
        prompt_cache_stats(connection, CostEngine(), by=["colour"])
    assert "unknown dimension 'colour'" in str(raised.value)
