"""The ledger on real SQLite files and a real PostgreSQL: schema, writes, reads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.database import create_ledger_engine, normalize_url
from thrifty.ledger.migrate import current_revisions, head_revisions
from thrifty.ledger.schema import VERSION_TABLE, metadata


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    yield opened
    opened.close()


def table_count(ledger: Ledger, table: str) -> int:
    with ledger.engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_open_migrates_empty_database_to_head(db_url: str) -> None:
    ledger = open_ledger(db_url)
    try:
        with ledger.engine.connect() as connection:
            assert current_revisions(connection) == head_revisions()
            inspector = sa.inspect(connection)
            tables = set(inspector.get_table_names())
            indexes = {index["name"] for index in inspector.get_indexes("requests")}
        assert {"requests", "request_tags", VERSION_TABLE} <= tables
        assert {
            "ix_requests_started_at",
            "ix_requests_feature",
            "ix_requests_key_id",
            "ix_requests_session",
            "ix_requests_model_served",
            "ix_requests_model_requested",
        } <= indexes
        assert ledger.count() == 0
    finally:
        ledger.close()


def test_open_twice_keeps_records(db_url: str) -> None:
    first = open_ledger(db_url)
    first.write([make_record("req-1")])
    first.close()

    second = open_ledger(db_url)
    try:
        assert second.count() == 1
        with second.engine.connect() as connection:
            assert current_revisions(connection) == head_revisions()
    finally:
        second.close()


def test_migrations_match_schema_metadata(ledger: Ledger) -> None:
    # Feature branches (control, cache...) add tables of their own; each compares its own.
    def own_tables(name: str | None, kind: str, parents: object) -> bool:
        return kind != "table" or name in metadata.tables

    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "include_name": own_tables}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_concurrent_open_upgrades_once(db_url: str) -> None:
    ledgers: list[Ledger] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_at_once() -> None:
        barrier.wait()
        try:
            ledgers.append(open_ledger(db_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(ledgers) == 4
    assert table_count(ledgers[0], VERSION_TABLE) == len(head_revisions())
    for opened in ledgers:
        opened.close()


def test_unknown_newer_revision_is_rejected(db_url: str) -> None:
    ledger = open_ledger(db_url)
    with ledger.engine.begin() as connection:
        one_head = sorted(current_revisions(connection))[0]
        connection.execute(
            sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999' WHERE version_num = :head"),
            {"head": one_head},
        )
    ledger.close()
    with pytest.raises(LedgerError, match="revision '9999', which this version of Thrifty"):
        open_ledger(db_url)


def test_write_then_get_round_trips_exactly(ledger: Ledger) -> None:
    record = make_record(
        "req-exact",
        started_at=datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
        first_token_at=datetime(2025, 7, 1, 7, 0, 0, 1, tzinfo=UTC),
        ended_at=datetime(2025, 7, 1, 7, 0, 2, 500000, tzinfo=UTC),
        streamed=True,
        cache_read_tokens=1024,
        cache_write_tokens=128,
        cache_write_1h_tokens=64,
        reasoning_tokens=200,
        usage_estimated=True,
        cost_usd=Decimal("0.0000000416666666666666664"),
        cost_breakdown={"input": Decimal("1.5E-10"), "output": Decimal("0.000000000000000000001")},
        service_tier_requested="flex",
        service_tier_served="default",
        key_id="key_1",
        team="search",
        project="ranker",
        user="u-1",
        feature="rerank",
        session="s-1",
        tags={"env": "prod", "région": "eu"},
        cache_status="miss",
        upstream_ms=812.0000000000001,
        overhead_ms=0.30000000000000004,
    )
    assert ledger.write([record]) == 1

    stored = ledger.get("req-exact")
    assert stored == record
    assert stored is not None
    assert stored.started_at.tzinfo == UTC
    assert stored.started_at == datetime(2025, 7, 1, 6, 59, 59, 999999, tzinfo=UTC)
    assert stored.cost_usd == Decimal("0.0000000416666666666666664")
    assert stored.overhead_ms == 0.30000000000000004


def test_unpriced_record_round_trips(ledger: Ledger) -> None:
    record = unpriced("req-u", model_requested="mystery-model")
    ledger.write([record])
    assert ledger.get("req-u") == record
    with ledger.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT cost_usd, cost_nanousd, unpriced FROM requests")
        ).one()
    assert row.cost_usd is None
    assert row.cost_nanousd is None
    assert bool(row.unpriced) is True


def test_cost_nanousd_is_rounded_cost(ledger: Ledger) -> None:
    ledger.write([make_record("req-n", cost_usd=Decimal("0.0000000025"))])
    with ledger.engine.connect() as connection:
        nanos = connection.execute(sa.text("SELECT cost_nanousd FROM requests")).scalar_one()
    assert nanos == 2


def test_write_skips_stored_request_ids(ledger: Ledger) -> None:
    first = [make_record(f"req-{i}", tags={"env": "prod"}) for i in range(3)]
    assert ledger.write(first) == 3

    again = [*first[1:], make_record("req-3", tags={"env": "dev"})]
    assert ledger.write(again) == 1
    assert ledger.count() == 4
    assert table_count(ledger, "request_tags") == 4


def test_write_keeps_first_of_repeated_id(ledger: Ledger) -> None:
    records = [make_record("req-1", feature="first"), make_record("req-1", feature="second")]
    assert ledger.write(records) == 1
    stored = ledger.get("req-1")
    assert stored is not None
    assert stored.feature == "first"


def test_write_of_nothing_returns_zero(ledger: Ledger) -> None:
    assert ledger.write([]) == 0


def test_write_rejects_invalid_batch_whole(ledger: Ledger) -> None:
    records = [make_record("req-ok"), make_record("req-naive", started_at=datetime(2025, 1, 1))]
    with pytest.raises(LedgerError, match=r"req-naive: started_at .* naive"):
        ledger.write(records)
    assert ledger.count() == 0


def test_large_batch_is_written(ledger: Ledger) -> None:
    records = [make_record(f"req-{i}", tags={"a": "1", "b": str(i)}) for i in range(1500)]
    assert ledger.write(records) == 1500
    assert ledger.count() == 1500
    assert table_count(ledger, "request_tags") == 3000


def test_sqlite_write_reuses_statements(tmp_path: Path) -> None:
    # The sqlite3 module caches prepared statements by SQL text, so a text
    # per batch size would grow the process's memory with each new size.
    ledger = open_ledger(f"sqlite:///{tmp_path / 'thrifty.db'}")
    statements: set[str] = set()

    def remember(*args: object) -> None:
        statements.add(str(args[2]))

    try:
        sa.event.listen(ledger.engine, "before_cursor_execute", remember)
        written = 0
        for size in range(1, 31):
            batch = [make_record(f"req-{size}-{i}", feature=f"f{i % 3}") for i in range(size)]
            written += ledger.write(batch)
        first_sizes = set(statements)
        ledger.write([make_record(f"again-{i}") for i in range(77)])
        assert ledger.write([make_record("req-5-0"), make_record("req-new")]) == 1
    finally:
        ledger.close()
    assert written == 465
    assert statements == first_sizes
    assert len(statements) <= 8


def test_get_missing_returns_none(ledger: Ledger) -> None:
    assert ledger.get("req-absent") is None


def test_sqlite_pragmas_and_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state" / "thrifty.db"
    ledger = open_ledger(f"sqlite:///{path}", busy_timeout_s=2.5)
    try:
        assert path.exists()
        with ledger.engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        assert journal == "wal"
        assert synchronous == 1
        assert busy == 2500
    finally:
        ledger.close()


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    ledger = open_ledger("sqlite://")
    try:
        thread = threading.Thread(target=ledger.write, args=([make_record("req-t")],))
        thread.start()
        thread.join()
        assert ledger.count() == 1
    finally:
        ledger.close()


def test_plain_postgresql_url_uses_psycopg() -> None:
    url = normalize_url("postgresql://postgres@127.0.0.1:5432/test")
    assert url.drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(LedgerError, match="unsupported database URL scheme 'mysql'"):
        create_ledger_engine("mysql://root:secret@127.0.0.1/thrifty")


def test_invalid_url_is_rejected() -> None:
    with pytest.raises(LedgerError, match="invalid database URL 'not a url'"):
        normalize_url("not a url")


def test_unreachable_postgresql_names_url_without_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://thrifty:hunter2@127.0.0.1:{port}/ledger?connect_timeout=2"
    with pytest.raises(LedgerError) as caught:
        open_ledger(url)
    message = str(caught.value)
    assert f"could not open the ledger at postgresql+psycopg://thrifty:***@127.0.0.1:{port}" in (
        message
    )
    assert "hunter2" not in message
