"""Rollups of the requests table: kept in step with writes, rebuilt in SQL, read by reports.

Reports that read rollups must give exactly the sums a scan of the request
rows gives, for ranges that start and end anywhere, on both backends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, ReportQuery, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rollup import Segment, group_key, plan_segments, rebuild_rollups
from thrifty.ledger.schema import request_rollups

START = datetime(2026, 10, 30, 21, 0, tzinfo=UTC)
FEATURES = ["chat", "search", None]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]


def random_records(count: int, seed: int) -> list[RequestRecord]:
    """Records spread over four days, with costs whose float sums would be wrong."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        started = START + timedelta(seconds=rng.randrange(4 * 86400))
        changes: dict[str, Any] = {
            "started_at": started,
            "feature": rng.choice(FEATURES),
            "model_served": rng.choice(MODELS),
            "team": rng.choice(["search", "support"]),
            "user": rng.choice(["u1", "u2", "u3"]),
            "key_id": rng.choice(["key_a", "key_b", None]),
            "service_tier_served": rng.choice(["default", "flex", None]),
            "cache_status": rng.choice([None, "hit", "miss"]),
            "input_tokens": rng.randrange(10_000),
            "output_tokens": rng.randrange(1_000),
            "http_status": rng.choice([200, 200, 200, 429]),
        }
        if rng.random() < 0.1:
            records.append(unpriced(f"r{number}", **changes))
            continue
        cost = Decimal(rng.randrange(1, 10**6)) / Decimal(10**22) + Decimal("0.1")
        records.append(make_record(f"r{number}", cost_usd=cost, **changes))
    return records


def expected_groups(
    records: list[RequestRecord], by: str, since: datetime | None, until: datetime | None
) -> dict[str | None, tuple[int, Decimal, int, int]]:
    """(requests, cost, errors, input tokens) per value of ``by``, summed in Python."""
    groups: dict[str | None, tuple[int, Decimal, int, int]] = {}
    for record in records:
        if since is not None and record.started_at < since:
            continue
        if until is not None and record.started_at >= until:
            continue
        value = {
            "feature": record.feature,
            "model": record.model_served or record.model_requested,
            "hour": record.started_at.strftime("%Y-%m-%dT%H:00:00Z"),
            "day": record.started_at.strftime("%Y-%m-%d"),
        }[by]
        requests, cost, errors, tokens = groups.get(value, (0, Decimal(0), 0, 0))
        groups[value] = (
            requests + 1,
            cost + (record.cost_usd or Decimal(0)),
            errors + int(record.http_status >= 400),
            tokens + record.input_tokens,
        )
    return groups


def report_groups(
    ledger: Ledger, by: str, since: datetime | None, until: datetime | None
) -> dict[str | None, tuple[int, Decimal, int, int]]:
    report = ledger.report(ReportQuery(by=[by], since=since, until=until))
    return {
        group.values[by]: (
            group.totals.requests,
            group.totals.cost_usd,
            group.totals.errors,
            group.totals.input_tokens,
        )
        for group in report.groups
    }


def rollup_rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    statement = sa.select(request_rollups).order_by(
        request_rollups.c.resolution, request_rollups.c.bucket, request_rollups.c.group_key
    )
    with ledger.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    yield opened
    opened.close()


RECORDS = random_records(400, seed=11)

RANGES = [
    (None, None),
    (START + timedelta(hours=3), START + timedelta(days=2, hours=3)),
    (START + timedelta(minutes=17), START + timedelta(days=3, minutes=41)),
    (START + timedelta(hours=4, minutes=5), START + timedelta(hours=4, minutes=50)),
    (datetime(2026, 11, 1, tzinfo=UTC), None),
    (None, datetime(2026, 11, 2, 5, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize("by", ["feature", "model", "hour", "day"])
def test_report_matches_python_sums(ledger: Ledger, by: str) -> None:
    ledger.write(RECORDS[:250])
    ledger.write(RECORDS[250:])
    for since, until in RANGES:
        assert report_groups(ledger, by, since, until) == expected_groups(RECORDS, by, since, until)


def test_report_totals_match_row_scan(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    since, until = RANGES[2]
    from_rollups = ledger.report(ReportQuery(since=since, until=until)).totals
    # A filter on user is not kept by the rollups, so this reads the rows.
    users = {record.user or "" for record in RECORDS}
    assert users == {"u1", "u2", "u3"}
    from_rows = [
        ledger.report(ReportQuery(since=since, until=until, where={"user": user})).totals
        for user in users
    ]
    assert from_rollups.requests == sum(totals.requests for totals in from_rows)
    assert from_rollups.cost_usd == sum((totals.cost_usd for totals in from_rows), Decimal(0))
    assert from_rollups.unpriced_requests == sum(t.unpriced_requests for t in from_rows)
    assert from_rollups.errors == sum(totals.errors for totals in from_rows)


def test_filters_on_rollup_dimensions(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    since, until = RANGES[1]
    report = ledger.report(
        ReportQuery(by=["model"], since=since, until=until, where={"feature": "chat"})
    )
    chat = [record for record in RECORDS if record.feature == "chat"]
    expected = expected_groups(chat, "model", since, until)
    assert {g.values["model"]: g.totals.requests for g in report.groups} == {
        model: values[0] for model, values in expected.items()
    }


def test_rewrite_of_stored_records_adds_nothing(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    before = rollup_rows(ledger)
    assert ledger.write(RECORDS[:50]) == 0
    assert rollup_rows(ledger) == before


def test_rebuild_gives_same_rows_as_writes(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    written = rollup_rows(ledger)
    with ledger.engine.begin() as connection:
        rebuild_rollups(connection)
    assert rollup_rows(ledger) == written


def test_rebuild_of_one_day(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    written = rollup_rows(ledger)
    day = datetime(2026, 11, 1, tzinfo=UTC)
    with ledger.engine.begin() as connection:
        connection.execute(sa.delete(request_rollups).where(request_rollups.c.bucket >= day))
        rebuild_rollups(connection, since=day, until=day + timedelta(days=1))
    rebuilt = rollup_rows(ledger)
    assert [row for row in rebuilt if row[1] < day + timedelta(days=1)] == [
        row for row in written if row[1] < day + timedelta(days=1)
    ]
    assert all(row[1] < day + timedelta(days=1) for row in rebuilt)


def test_rebuild_rejects_mid_day_bound(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection, pytest.raises(LedgerError, match="start a UTC day"):
        rebuild_rollups(connection, since=START)


def test_cache_savings_add_up(ledger: Ledger) -> None:
    hits = [
        make_record(
            f"hit{number}",
            started_at=START,
            cost_usd=Decimal(0),
            cache_status="hit",
            user="u9",
            details={"cache": {"saved_usd": Decimal(f"0.00{number}1")}},
        )
        for number in range(3)
    ]
    ledger.write(hits)
    rolled = ledger.report(ReportQuery(by=["cache_status"])).groups[0].totals
    scanned = ledger.report(ReportQuery(where={"user": "u9"})).totals
    assert rolled.cache_saved_usd == Decimal("0.0033")
    assert scanned.cache_saved_usd == Decimal("0.0033")


def test_limit_keeps_top_groups(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    full = ledger.report(ReportQuery(by=["model"]))
    top = ledger.report(ReportQuery(by=["model"], limit=2))
    assert top.groups == full.groups[:2]
    assert top.totals == full.totals
    rows = ledger.report(ReportQuery(by=["user"], limit=1))
    assert len(rows.groups) == 1


def test_group_key_tells_values_apart() -> None:
    assert group_key(["a|1:b", None]) != group_key(["a", "b|-"])
    assert group_key([None, ""]) != group_key(["", None])
    assert group_key(["x"]) == "1:x"


def test_group_key_sql_matches_python(ledger: Ledger) -> None:
    record = make_record("odd", team="a|b", feature="3:x", key_id=None, project="ü")
    ledger.write([record])
    with ledger.engine.begin() as connection:
        stored = set(connection.execute(sa.select(request_rollups.c.group_key)).scalars())
        rebuild_rollups(connection)
        rebuilt = set(connection.execute(sa.select(request_rollups.c.group_key)).scalars())
    assert stored == rebuilt


def test_plan_uses_rows_for_dimensions_rollups_lack() -> None:
    since = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    until = datetime(2026, 11, 3, tzinfo=UTC)
    assert plan_segments(since, until, by=["user"], where=[]) == [Segment(None, since, until)]
    assert plan_segments(since, until, by=[], where=["tag:env"]) == [Segment(None, since, until)]
    assert plan_segments(since, until, by=["feature"], where=["day"]) == [
        Segment(None, since, until)
    ]


def test_plan_splits_range_into_days_hours_and_rows() -> None:
    since = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    until = datetime(2026, 11, 4, 2, 15, tzinfo=UTC)
    assert plan_segments(since, until, by=["feature"], where=["team"]) == [
        Segment(None, since, datetime(2026, 11, 1, 11, tzinfo=UTC)),
        Segment("hour", datetime(2026, 11, 1, 11, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        Segment("day", datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)),
        Segment("hour", datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 4, 2, tzinfo=UTC)),
        Segment(None, datetime(2026, 11, 4, 2, tzinfo=UTC), until),
    ]


def test_plan_by_hour_reads_no_daily_rollup() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    until = datetime(2026, 11, 3, tzinfo=UTC)
    assert plan_segments(since, until, by=["hour"], where=[]) == [Segment("hour", since, until)]


def test_plan_of_open_and_empty_ranges() -> None:
    moment = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    assert plan_segments(None, None, by=[], where=[]) == [Segment("day", None, None)]
    assert plan_segments(moment, moment, by=[], where=[]) == []
    assert plan_segments(moment, None, by=[], where=[]) == [
        Segment(None, moment, datetime(2026, 11, 1, 11, tzinfo=UTC)),
        Segment("hour", datetime(2026, 11, 1, 11, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        Segment("day", datetime(2026, 11, 2, tzinfo=UTC), None),
    ]
