"""Ledger exports as CSV and Parquet for a date range, and the export command."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.ledger_support import BACKENDS, STARTED_AT, ledger_db_url, make_record, unpriced
from thrifty.cli.main import main
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.exports import COLUMNS, export_records, iter_records

# A cost with more decimal places than a float keeps.
EXACT_COST = Decimal("0.0000123456789012345678901")

RECORDS = [
    make_record(f"r{index:02d}", started_at=STARTED_AT + timedelta(hours=index))
    for index in range(7)
] + [
    make_record(
        "exact",
        started_at=STARTED_AT + timedelta(hours=3),
        cost_usd=EXACT_COST,
        cost_breakdown={"input": EXACT_COST},
        tags={"env": "prod"},
        details={"cache": {"saved_usd": Decimal("0.5")}},
        feature="faq",
    ),
    unpriced("free", started_at=STARTED_AT + timedelta(hours=4)),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    ledger = open_ledger(db_url)
    ledger.write(RECORDS)
    yield ledger
    ledger.close()


def test_records_paged_in_range(ledger: Ledger) -> None:
    since = STARTED_AT + timedelta(hours=2)
    until = STARTED_AT + timedelta(hours=5)

    records = list(iter_records(ledger, since=since, until=until, page_size=2))

    assert [record.request_id for record in records] == ["r02", "exact", "r03", "free", "r04"]


def test_csv_export_exact(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"

    written = export_records(ledger, path, "csv", page_size=3)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    by_id = {row["request_id"]: row for row in rows}

    assert written == len(RECORDS)
    assert list(rows[0]) == list(COLUMNS)
    assert by_id["exact"]["cost_usd"] == "0.0000123456789012345678901"
    assert json.loads(by_id["exact"]["cost_breakdown"]) == {"input": "0.0000123456789012345678901"}
    assert json.loads(by_id["exact"]["tags"]) == {"env": "prod"}
    assert json.loads(by_id["exact"]["details"]) == {"cache": {"saved_usd": "0.5"}}
    assert by_id["exact"]["started_at"] == (STARTED_AT + timedelta(hours=3)).isoformat()
    assert by_id["free"]["cost_usd"] == ""
    assert by_id["free"]["unpriced"] == "true"
    assert by_id["r00"]["ended_at"] == ""


def test_parquet_export_exact(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "ledger.parquet"
    since = STARTED_AT + timedelta(hours=3)

    written = export_records(ledger, path, "parquet", since=since)
    table = pq.read_table(path)
    rows = {row["request_id"]: row for row in table.to_pylist()}

    assert written == 6
    assert table.num_rows == 6
    assert table.column_names == list(COLUMNS)
    assert str(table.schema.field("cost_usd").type) == "decimal256(76, 38)"
    assert rows["exact"]["cost_usd"] == EXACT_COST
    assert rows["exact"]["started_at"] == datetime(2025, 3, 14, 12, 26, 53, 589793, tzinfo=UTC)
    assert rows["exact"]["input_tokens"] == 1200
    assert rows["free"]["cost_usd"] is None
    assert rows["free"]["unpriced"] is True


def test_empty_range_gives_header_only(ledger: Ledger, tmp_path: Path) -> None:
    buffer = io.StringIO()
    future = STARTED_AT + timedelta(days=30)

    written = export_records(ledger, buffer, "csv", since=future)

    assert written == 0
    assert buffer.getvalue() == ",".join(COLUMNS) + "\n"


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_export_command_writes_csv(
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = run_cli(
        monkeypatch,
        "export",
        "--db",
        db_url,
        "--since",
        (STARTED_AT + timedelta(hours=6)).isoformat(),
    )
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))

    assert status == 0
    assert [row["request_id"] for row in rows] == ["r06"]


def test_export_command_parquet_needs_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_cli(
        monkeypatch, "export", "--db", f"sqlite:///{tmp_path}/x.db", "--format", "parquet"
    )

    assert status == 2
    assert "a Parquet export needs a file" in capsys.readouterr().err


def test_export_command_rejects_missing_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"

    status = run_cli(monkeypatch, "export", "--db", f"sqlite:///{missing}")

    assert status == 2
    assert f"no ledger database at {missing}" in capsys.readouterr().err
    assert not missing.exists()
