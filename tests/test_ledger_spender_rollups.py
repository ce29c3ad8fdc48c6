"""User and session rollups: kept on write, rebuilt, migrated, and read by the dashboard.

The sums in ``user_rollups`` and ``session_rollups`` must equal, to the last
digit, the sums of the request rows, and the dashboard pages that read them
must return what the request-row queries return.
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
from alembic import command

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.dashboard import spender_queries, unit_costs
from thrifty.dashboard.queries import top_rows
from thrifty.dashboard.view import View
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.database import create_ledger_engine
from thrifty.ledger.migrate import alembic_config, current_revisions, head_revisions
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rollup import bucket_start
from thrifty.ledger.rows import record_to_row
from thrifty.ledger.schema import requests, session_rollups, user_rollups
from thrifty.ledger.spender_rollups import rebuild_spender_rollups

DAY = datetime(2026, 11, 3, tzinfo=UTC)
# A cost whose float sum would lose digits.
ODD = Decimal("0.0000000416666666666666664")


def random_records(count: int, seed: int) -> list[RequestRecord]:
    """Requests over three days, some sessions crossing midnight, some without a session."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        session = rng.choice([None, *(f"s{index}" for index in range(40))])
        offset = rng.randrange(3 * 86400)
        if session is not None:
            # Each session lives within about four hours of its own start.
            offset = (int(session[1:]) * 5400 + rng.randrange(4 * 3600)) % (3 * 86400)
        changes: dict[str, Any] = {
            "started_at": DAY + timedelta(seconds=offset, microseconds=rng.randrange(10**6)),
            "session": session,
            "user": rng.choice(["ana", "bo", "cy", None]),
            "feature": rng.choice(["chat", "search", None]),
            "team": rng.choice(["core", "growth"]),
            "input_tokens": rng.randrange(5000),
            "output_tokens": rng.randrange(900),
            "cache_read_tokens": rng.randrange(100),
            "reasoning_tokens": rng.randrange(50),
        }
        if rng.random() < 0.1:
            records.append(unpriced(f"r{number}", **changes))
            continue
        if rng.random() < 0.1:
            changes["http_status"] = 500
        cost = ODD * rng.randrange(1, 10**6) + Decimal(rng.randrange(1, 10**5)).scaleb(-9)
        records.append(make_record(f"r{number}", cost_usd=cost, **changes))
    return records


RECORDS = random_records(500, seed=11)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    yield opened
    opened.close()


def add_to(sums: dict[Any, list[Any]], key: Any, record: RequestRecord) -> None:
    row = sums.setdefault(key, [0, 0, 0, 0, 0, Decimal(0)])
    row[0] += 1
    row[1] += int(record.http_status >= 400 or record.error_type is not None)
    row[2] += int(record.unpriced)
    row[3] += record.input_tokens
    row[4] += record.reasoning_tokens
    if record.cost_usd is not None:
        row[5] += record.cost_usd


def expected_users(records: list[RequestRecord]) -> dict[Any, list[Any]]:
    sums: dict[Any, list[Any]] = {}
    for record in records:
        key = (bucket_start(record.started_at, "day"), record.user)
        add_to(sums, key, record)
    return sums


def expected_sessions(records: list[RequestRecord]) -> dict[Any, list[Any]]:
    sums: dict[Any, list[Any]] = {}
    for record in records:
        if record.session is not None:
            add_to(sums, record.session, record)
    return sums


def stored_users(ledger: Ledger) -> dict[Any, list[Any]]:
    u = user_rollups.c
    statement = sa.select(
        u.bucket, u.user, u.requests, u.errors, u.unpriced_requests,
        u.input_tokens, u.reasoning_tokens, u.cost_usd,
    )  # fmt: skip
    with ledger.engine.connect() as connection:
        return {
            tuple(row[:2]): [int(value) for value in row[2:7]] + [row[7]]
            for row in connection.execute(statement)
        }


def stored_sessions(ledger: Ledger) -> dict[Any, list[Any]]:
    s = session_rollups.c
    statement = sa.select(
        s.session, s.requests, s.errors, s.unpriced_requests, s.input_tokens,
        s.reasoning_tokens, s.cost_usd,
    )  # fmt: skip
    with ledger.engine.connect() as connection:
        return {
            row[0]: [int(value) for value in row[1:6]] + [row[6]]
            for row in connection.execute(statement)
        }


def session_times(ledger: Ledger) -> dict[str, tuple[datetime, datetime]]:
    s = session_rollups.c
    with ledger.engine.connect() as connection:
        rows = connection.execute(sa.select(s.session, s.first_at, s.last_at)).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def all_rows(ledger: Ledger, table: sa.Table) -> list[tuple[Any, ...]]:
    with ledger.engine.connect() as connection:
        statement = sa.select(table).order_by(*table.primary_key.columns)
        return [tuple(row) for row in connection.execute(statement)]


def test_writes_keep_user_rollups_exact(ledger: Ledger) -> None:
    for start in range(0, len(RECORDS), 70):
        ledger.write(RECORDS[start : start + 70])
    assert stored_users(ledger) == expected_users(RECORDS)


def test_writes_keep_session_rollups_exact(ledger: Ledger) -> None:
    # Written newest first, so later batches move first_at earlier.
    ordered = sorted(RECORDS, key=lambda record: record.started_at, reverse=True)
    for start in range(0, len(ordered), 70):
        ledger.write(ordered[start : start + 70])
    assert stored_sessions(ledger) == expected_sessions(RECORDS)
    times = session_times(ledger)
    for session in times:
        started = [r.started_at for r in RECORDS if r.session == session]
        assert times[session] == (min(started), max(started))


def test_rewrite_adds_nothing(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    ledger.write(RECORDS[:50])
    assert stored_sessions(ledger) == expected_sessions(RECORDS)


def test_rebuild_gives_same_rows_as_writes(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    users, sessions = all_rows(ledger, user_rollups), all_rows(ledger, session_rollups)
    with ledger.engine.begin() as connection:
        rebuild_spender_rollups(connection)
    assert all_rows(ledger, user_rollups) == users
    assert all_rows(ledger, session_rollups) == sessions


def test_rebuild_of_one_day_keeps_spanning_sessions_whole(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    users, sessions = all_rows(ledger, user_rollups), all_rows(ledger, session_rollups)
    with ledger.engine.begin() as connection:
        rebuild_spender_rollups(
            connection, since=DAY + timedelta(days=1), until=DAY + timedelta(days=2)
        )
    assert all_rows(ledger, user_rollups) == users
    assert all_rows(ledger, session_rollups) == sessions


def test_rebuild_rejects_mid_day_bound(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection, pytest.raises(LedgerError, match="UTC day"):
        rebuild_spender_rollups(connection, since=DAY + timedelta(hours=3))


def test_migration_backfills_spender_rollups(db_url: str) -> None:
    engine = create_ledger_engine(db_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0005")
        with engine.begin() as connection:
            connection.execute(sa.insert(requests), [record_to_row(r) for r in RECORDS])
    finally:
        engine.dispose()

    ledger = open_ledger(db_url)
    try:
        with ledger.engine.connect() as connection:
            assert current_revisions(connection) == head_revisions()
        assert stored_users(ledger) == expected_users(RECORDS)
        assert stored_sessions(ledger) == expected_sessions(RECORDS)
        migrated = all_rows(ledger, session_rollups)
        with ledger.engine.begin() as connection:
            rebuild_spender_rollups(connection)
        assert all_rows(ledger, session_rollups) == migrated
    finally:
        ledger.close()


# Whole days, and bounds inside sessions (10:30 on the first and last day).
WHOLE_DAYS = View(since=DAY, until=DAY + timedelta(days=3))
MID_DAY = View(since=DAY + timedelta(hours=10.5), until=DAY + timedelta(days=2, hours=10.5))


def row_scan_spenders(
    ledger: Ledger, view: View, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(spender_queries, "user_rollup_usable", lambda view: False)
        return unit_costs.top_spenders(ledger, view, "user", limit=3)


@pytest.mark.parametrize(
    "view",
    [
        WHOLE_DAYS,
        View(since=DAY, until=DAY + timedelta(days=2), resolution="month"),
        View(since=DAY, until=DAY + timedelta(days=3), where={"user": "bo"}),
    ],
    ids=["days", "month", "filtered"],
)
def test_top_users_match_row_scan(
    ledger: Ledger, view: View, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.write(RECORDS)
    assert spender_queries.user_rollup_usable(view)
    from_rollups = unit_costs.top_spenders(ledger, view, "user", limit=3)
    assert from_rollups == row_scan_spenders(ledger, view, monkeypatch)
    assert len(from_rollups["rows"]) == (1 if view.where else 3)


def test_users_fall_back_outside_rollups() -> None:
    assert not spender_queries.user_rollup_usable(MID_DAY)
    assert not spender_queries.user_rollup_usable(
        View(since=DAY, until=DAY + timedelta(days=1), resolution="hour")
    )
    assert not spender_queries.user_rollup_usable(
        View(since=DAY, until=DAY + timedelta(days=1), where={"feature": "chat"})
    )


@pytest.mark.parametrize("view", [WHOLE_DAYS, MID_DAY], ids=["days", "mid-day"])
@pytest.mark.parametrize("limit", [5, 100])
def test_top_sessions_match_report(ledger: Ledger, view: View, limit: int) -> None:
    ledger.write(RECORDS)
    expected = top_rows(ledger.report(view.query(["session"], limit=limit)))
    assert spender_queries.top_sessions(ledger, view, limit) == expected
    assert any(row["value"] is None for row in expected) == (limit == 100)


def test_top_sessions_fall_back_with_filters(ledger: Ledger) -> None:
    view = View(since=DAY, until=DAY + timedelta(days=3), where={"feature": "chat"})
    assert spender_queries.top_sessions(ledger, view, 5) is None
    assert spender_queries.conversation_sessions(view) is None


@pytest.mark.parametrize(
    "view",
    [WHOLE_DAYS, MID_DAY, View(since=MID_DAY.since, until=MID_DAY.until, resolution="hour")],
    ids=["days", "mid-day", "hours"],
)
def test_conversation_costs_match_row_scan(
    ledger: Ledger, view: View, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.write(RECORDS)
    from_rollups = unit_costs.conversation_costs(ledger, view)
    with monkeypatch.context() as patch:
        patch.setattr(spender_queries, "conversation_sessions", lambda view: None)
        from_rows = unit_costs.conversation_costs(ledger, view)
    assert from_rollups == from_rows
    (series,) = from_rollups["series"]
    assert series["summary"]["count"] > 30
