"""Export ledger records of a date range as CSV or Parquet.

Columns are the fields of ``RequestRecord`` in order. Costs stay exact. In
CSV, ``cost_usd`` is a decimal string. In Parquet it is a
``decimal256(76, 38)``, exact to 38 decimal places, and an amount with more
places raises LedgerError rather than being rounded. ``cost_breakdown``,
``tags`` and ``details`` are JSON text. Times are ISO 8601 in UTC in CSV and
UTC timestamps in microseconds in Parquet.

Rows are read in pages of ``PAGE_SIZE`` in ``started_at`` order, so an
export of millions of records needs memory for one page only. Parquet
export needs pyarrow (``pip install 'thrifty[parquet]'``).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import sqlalchemy as sa

from thrifty.errors import LedgerError
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rows import row_to_record
from thrifty.ledger.schema import requests
from thrifty.ledger.store import Ledger

ExportFormat = Literal["csv", "parquet"]

PAGE_SIZE = 5000
COLUMNS: tuple[str, ...] = tuple(item.name for item in dataclasses.fields(RequestRecord))
DECIMAL_PRECISION = 76
DECIMAL_SCALE = 38

_JSON_COLUMNS = ("cost_breakdown", "tags", "details")


def iter_records(
    ledger: Ledger,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[RequestRecord]:
    """Yield the records started in ``[since, until)``, oldest first, a page at a time."""
    conditions = []
    if since is not None:
        conditions.append(requests.c.started_at >= since)
    if until is not None:
        conditions.append(requests.c.started_at < until)
    after: tuple[datetime, str] | None = None
    while True:
        statement = sa.select(requests).where(*conditions)
        if after is not None:
            # Keyset paging on (started_at, request_id): stable as rows are added.
            started, request_id = after
            statement = statement.where(
                sa.or_(
                    requests.c.started_at > started,
                    sa.and_(requests.c.started_at == started, requests.c.request_id > request_id),
                )
            )
        statement = statement.order_by(requests.c.started_at, requests.c.request_id).limit(
            page_size
        )
        try:
            with ledger.engine.connect() as connection:
                rows = [row._mapping for row in connection.execute(statement)]
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"could not read the ledger at {ledger.url}: {exc}") from exc
        for row in rows:
            yield row_to_record(row)
        if len(rows) < page_size:
            return
        after = (rows[-1]["started_at"], rows[-1]["request_id"])


def export_records(
    ledger: Ledger,
    output: Path | IO[str],
    export_format: ExportFormat = "csv",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> int:
    """Write the records of ``[since, until)`` to ``output``; return how many were written.

    ``output`` is a path, or for CSV an open text stream (standard output).
    """
    records = iter_records(ledger, since=since, until=until, page_size=page_size)
    if export_format == "csv":
        return write_csv(records, output)
    if export_format == "parquet":
        if not isinstance(output, Path):
            raise LedgerError("a Parquet export is written to a file; pass --output PATH")
        return write_parquet(records, output)
    raise LedgerError(f"unknown export format {export_format!r}; use csv or parquet")


def write_csv(records: Iterator[RequestRecord], output: Path | IO[str]) -> int:
    """Write records as CSV with a header row; return the number of rows."""
    if isinstance(output, Path):
        try:
            with output.open("w", encoding="utf-8", newline="") as handle:
                return _write_csv_rows(records, handle)
        except OSError as exc:
            raise LedgerError(f"could not write {output}: {exc.strerror}") from exc
    return _write_csv_rows(records, output)


def _write_csv_rows(records: Iterator[RequestRecord], handle: IO[str]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(COLUMNS)
    written = 0
    for record in records:
        writer.writerow([_csv_value(name, getattr(record, name)) for name in COLUMNS])
        written += 1
    return written


def _csv_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in _JSON_COLUMNS:
        return orjson.dumps(value, default=_decimal_text).decode()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_parquet(records: Iterator[RequestRecord], path: Path) -> int:
    """Write records as one Parquet file; return the number of rows."""
    try:
        # pyarrow ships no type hints, hence the ignores.
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise LedgerError(
            "Parquet export needs pyarrow; install it with pip install 'thrifty[parquet]', "
            "or export --format csv"
        ) from exc

    schema = _arrow_schema(pa)
    written = 0
    try:
        with pq.ParquetWriter(str(path), schema) as writer:
            for page in _pages(records):
                columns = {
                    name: [_arrow_value(name, getattr(r, name)) for r in page] for name in COLUMNS
                }
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                written += len(page)
            if written == 0:
                writer.write_table(schema.empty_table())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LedgerError(f"could not write {path} as Parquet: {exc}") from exc
    except OSError as exc:
        raise LedgerError(f"could not write {path}: {exc.strerror or exc}") from exc
    return written


def _arrow_schema(pa: Any) -> Any:
    money = pa.decimal256(DECIMAL_PRECISION, DECIMAL_SCALE)
    timestamp = pa.timestamp("us", tz="UTC")
    types = {
        "started_at": timestamp,
        "first_token_at": timestamp,
        "ended_at": timestamp,
        "streamed": pa.bool_(),
        "usage_estimated": pa.bool_(),
        "unpriced": pa.bool_(),
        "http_status": pa.int32(),
        "cost_usd": money,
        "upstream_ms": pa.float64(),
        "overhead_ms": pa.float64(),
    }
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    ):
        types[name] = pa.int64()
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in COLUMNS])


def _arrow_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _JSON_COLUMNS:
        return orjson.dumps(value, default=_decimal_text).decode()
    if name == "cost_usd":
        return _checked_scale(value)
    return value


def _checked_scale(amount: Decimal) -> Decimal:
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > DECIMAL_SCALE:
        raise LedgerError(
            f"cost {format(amount, 'f')} has more than {DECIMAL_SCALE} decimal places and "
            "cannot be stored exactly in Parquet; export --format csv instead"
        )
    return amount


def _pages(records: Iterator[RequestRecord]) -> Iterator[list[RequestRecord]]:
    page: list[RequestRecord] = []
    for record in records:
        page.append(record)
        if len(page) >= PAGE_SIZE:
            yield page
            page = []
    if page:
        yield page


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
