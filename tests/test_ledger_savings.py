"""Batch, Flex and response cache savings in the rollups: kept on write, rebuilt, migrated.

The sums read from the rollups must equal, to the last digit, the sums of
the request rows, whether those are added in Python by ``Ledger.write``,
recomputed in SQL by ``rebuild_rollups`` or filled in by revision 0004.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.batch.savings import batch_savings, flex_savings, lever_savings
from thrifty.cache.analytics import response_cache_stats
from thrifty.cli.main import main
from thrifty.cli.report import CACHE_FIELDS, CACHE_NET_NOTE, TOTAL_FIELDS
from thrifty.ledger import Ledger, ReportQuery, open_ledger
from thrifty.ledger.database import create_ledger_engine
from thrifty.ledger.migrate import alembic_config, current_revisions, head_revisions
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rollup import rebuild_rollups
from thrifty.ledger.rows import record_to_row, tag_rows
from thrifty.ledger.schema import request_rollups, request_tags, requests

DAY = datetime(2026, 11, 3, tzinfo=UTC)
# A cost whose float sum would lose digits.
ODD = Decimal("0.0000000416666666666666664")


def savings_records() -> list[RequestRecord]:
    """Batch results, Flex calls, cache lookups and embedding calls over two days."""
    at = [DAY + timedelta(hours=hour, minutes=7) for hour in (1, 5, 13, 26, 30, 40)]
    batch = {"job": "job_1", "standard_cost_usd": "0.002"}
    return [
        make_record("b1", started_at=at[0], feature="chat", cost_usd=Decimal("0.001"),
                    details={"batch": batch}),
        make_record("b2", started_at=at[3], feature="chat", cost_usd=ODD,
                    details={"batch": {"job": "job_1", "standard_cost_usd": "0.00000025"}}),
        # Unpriced: counted as a result, adds no cost on either side.
        unpriced("b3", started_at=at[1], feature="chat", details={"batch": batch}),
        make_record("f1", started_at=at[1], feature="search", service_tier_served="flex",
                    cost_usd=Decimal("0.0002"),
                    details={"flex": {"requested": True, "standard_cost_usd": "0.0004"}}),
        make_record("f2", started_at=at[2], feature="search", service_tier_served="default",
                    cost_usd=Decimal("0.0004"),
                    details={"flex": {"requested": True, "fallback": True}}),
        make_record("f3", started_at=at[2], feature="search", http_status=429,
                    cost_usd=Decimal(0), details={"flex": {"requested": True, "rejected": True}}),
        make_record("h1", started_at=at[0], feature="chat", cache_status="hit",
                    cost_usd=Decimal(0), details={"cache": {"saved_usd": "0.0031"}}),
        make_record("h2", started_at=at[4], feature="chat", cache_status="semantic-hit",
                    cost_usd=Decimal(0), details={"cache": {"saved_usd": str(ODD)}}),
        # A hit whose original call had no price: counted, saves nothing known.
        make_record("h3", started_at=at[5], feature="chat", cache_status="hit",
                    cost_usd=Decimal(0), details={"cache": {}}),
        make_record("m1", started_at=at[2], feature="chat", cache_status="miss",
                    cost_usd=Decimal("0.0011")),
        make_record("e1", started_at=at[2], feature="chat", endpoint="/v1/embeddings",
                    cost_usd=Decimal("0.00002"), tags={"thrifty_cache": "embedding"}),
        make_record("e2", started_at=at[4], feature="chat", endpoint="/v1/embeddings",
                    cost_usd=ODD, tags={"thrifty_cache": "embedding"}),
        make_record("m2", started_at=at[3], feature="search", cache_status="miss",
                    cost_usd=Decimal("0.0005")),
    ]  # fmt: skip


RECORDS = savings_records()
WHOLE_DAYS = ReportQuery(by=["feature"], since=DAY, until=DAY + timedelta(days=2))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    yield opened
    opened.close()


def check_savings_totals(ledger: Ledger, query: ReportQuery) -> None:
    """Assert the exact Batch, Flex and cache sums of RECORDS by feature."""
    report = ledger.report(query)
    groups = {group.values["feature"]: group.totals for group in report.groups}
    chat, search = groups["chat"], groups["search"]
    assert chat.batch_results == 3
    assert chat.batch_cost_usd == Decimal("0.001") + ODD
    assert chat.batch_standard_cost_usd == Decimal("0.00200025")
    assert search.flex_calls == 3
    assert search.flex_served == 1
    assert search.flex_fallbacks == 1
    assert search.flex_rejections == 1
    assert search.flex_cost_usd == Decimal("0.0002")
    assert search.flex_standard_cost_usd == Decimal("0.0004")
    assert (chat.cache_hits, chat.cache_semantic_hits, chat.cache_misses) == (2, 1, 1)
    assert chat.cache_lookups == 4
    assert chat.cache_hit_rate == 0.75
    assert chat.cache_unpriced_hits == 1
    assert chat.cache_saved_usd == Decimal("0.0031") + ODD
    assert chat.cache_embedding_requests == 2
    assert chat.cache_embedding_usd == Decimal("0.00002") + ODD
    assert chat.cache_net_saving_usd == Decimal("0.00308")
    assert search.cache_lookups == 1
    assert search.cache_hit_rate == 0.0
    assert search.cache_net_saving_usd == Decimal(0)


def test_rollup_savings_are_exact(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    check_savings_totals(ledger, WHOLE_DAYS)


def test_row_segments_give_same_savings(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    # Mid-hour bounds read the first and last partial hours from request rows.
    check_savings_totals(
        ledger,
        ReportQuery(
            by=["feature"], since=DAY + timedelta(minutes=3), until=DAY + timedelta(days=2)
        ),
    )
    by_user = ledger.report(ReportQuery(by=["user"], since=DAY)).totals
    assert by_user == ledger.report(ReportQuery(since=DAY)).totals


def test_rollup_savings_match_row_scans(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    totals = ledger.report(ReportQuery(since=DAY, until=DAY + timedelta(days=2))).totals
    with ledger.engine.connect() as connection:
        batch = batch_savings(connection)
        flex = flex_savings(connection)
        cache = response_cache_stats(connection, until=DAY + timedelta(days=2))
    levers = lever_savings(ledger, WHOLE_DAYS)
    assert levers.batch == batch
    assert levers.flex == flex
    assert totals.batch_standard_cost_usd == batch.standard_cost_usd
    chat = next(stats for stats in cache if stats.feature == "chat")
    groups = {group.values["feature"]: group.totals for group in ledger.report(WHOLE_DAYS).groups}
    assert groups["chat"].cache_hit_rate == chat.hit_rate
    assert groups["chat"].cache_saved_usd == chat.saved_usd
    assert groups["chat"].cache_unpriced_hits == chat.unpriced_hits
    assert groups["chat"].cache_embedding_usd == chat.embedding_usd
    assert groups["chat"].cache_net_saving_usd == chat.net_saving_usd


def test_rebuild_gives_same_savings_rows(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    written = rollup_rows(ledger)
    with ledger.engine.begin() as connection:
        rebuild_rollups(connection)
    assert rollup_rows(ledger) == written


def test_migration_backfills_savings(db_url: str) -> None:
    engine = create_ledger_engine(db_url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as connection:
            connection.execute(sa.insert(requests), [record_to_row(r) for r in RECORDS])
            tags = [row for record in RECORDS for row in tag_rows(record)]
            connection.execute(sa.insert(request_tags), tags)
        upgrade(engine, "0003")
        with engine.connect() as connection:
            assert current_revisions(connection) == {"0003"}
    finally:
        engine.dispose()

    ledger = open_ledger(db_url)
    try:
        with ledger.engine.connect() as connection:
            assert current_revisions(connection) == head_revisions()
        check_savings_totals(ledger, WHOLE_DAYS)
        migrated = rollup_rows(ledger)
        with ledger.engine.begin() as connection:
            rebuild_rollups(connection)
        assert rollup_rows(ledger) == migrated
    finally:
        ledger.close()


def upgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def rollup_rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    statement = sa.select(request_rollups).order_by(
        request_rollups.c.resolution, request_rollups.c.bucket, request_rollups.c.group_key
    )
    with ledger.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]


def run_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> str:
    monkeypatch.setattr(sys, "argv", ["thrifty", "report", *args])
    main()
    return capsys.readouterr().out


@pytest.fixture
def filled_url(ledger: Ledger, db_url: str) -> str:
    ledger.write(RECORDS)
    return db_url


REPORT_PERIOD = ("--since", "2026-11-03", "--until", "2026-11-05")


def test_report_json_has_cache_and_levers(
    filled_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_report(
        capsys, monkeypatch, "--db", filled_url, "--by", "feature", *REPORT_PERIOD,
        "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    chat = next(group for group in data["groups"] if group["feature"] == "chat")
    assert {name: chat[name] for name in CACHE_FIELDS} == {
        "cache_lookups": 4,
        "cache_hits": 2,
        "cache_semantic_hits": 1,
        "cache_misses": 1,
        "cache_hit_rate": 0.75,
        "cache_saved_usd": "0.0031000416666666666666664",
        "cache_unpriced_hits": 1,
        "cache_embedding_requests": 2,
        "cache_embedding_usd": "0.0000200416666666666666664",
        "cache_net_saving_usd": "0.0030800000000000000000000",
    }
    assert data["cache_lookups"] == 5
    assert data["cache_hit_rate"] == 0.6
    assert data["savings"]["batch"] == {
        "results": 3,
        "cost_usd": "0.0010000416666666666666664",
        "standard_cost_usd": "0.00200025",
        "savings_usd": "0.0010002083333333333333336",
    }
    assert data["savings"]["flex"]["savings_usd"] == "0.0002"
    assert data["savings"]["flex"]["fallback_rate"] == pytest.approx(1 / 3)


def test_report_csv_has_cache_columns(
    filled_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_report(
        capsys, monkeypatch, "--db", filled_url, "--by", "feature", *REPORT_PERIOD,
        "--format", "csv",
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["feature", *TOTAL_FIELDS, *CACHE_FIELDS]
    search = next(row for row in rows if row[0] == "search")
    cache = dict(zip(CACHE_FIELDS, search[1 + len(TOTAL_FIELDS) :], strict=True))
    assert cache["cache_lookups"] == "1"
    assert cache["cache_hit_rate"] == "0.0"
    assert cache["cache_net_saving_usd"] == "0"


def test_report_table_shows_hit_rate_and_net(
    filled_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_report(capsys, monkeypatch, "--db", filled_url, "--by", "feature", *REPORT_PERIOD)
    assert "Cache hit rate" in out
    assert "75.0%" in out
    assert "0.003080" in out
    assert CACHE_NET_NOTE in " ".join(out.split())
    assert "Batch: 3 results" in out
