"""Hourly and daily rollups of the requests table, kept in step with every write.

A report over a month of ten million requests cannot read every row in under
a second, so ``request_rollups`` contains the sums of each hour and each day per
combination of the low-cardinality dimensions (provider, endpoint, model,
model_priced, service tier, cache status, key, team, project, feature).
``Ledger.write`` adds each new record to its hour and day rows in the same
transaction as the insert, so rollups and rows always agree. Rows inserted
by other means (a bulk load, an import that bypasses ``Ledger.write``) need
``rebuild_rollups`` afterwards.

A query is split by ``plan_segments`` into time segments: whole days read the
daily rollup, whole hours at the edges read the hourly rollup, and partial
hours read the request rows. A query that groups or filters by a dimension
the rollups do not keep (user, session, tags, a filter on day or hour) reads
the request rows for its whole range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from thrifty.errors import LedgerError
from thrifty.ledger.database import SQLITE_DECIMAL_ADD, add_exact, dialect_insert
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.savings import SavingsSql, record_savings
from thrifty.ledger.schema import (
    ROLLUP_COUNT_COLUMNS,
    ROLLUP_DIMENSION_COLUMNS,
    ROLLUP_SAVINGS_COUNT_COLUMNS,
    ROLLUP_SAVINGS_DECIMAL_COLUMNS,
    ExactDecimal,
    request_rollups,
    requests,
)
from thrifty.ledger.serialize import to_nanousd
from thrifty.ledger.sqlfuncs import ExactSum

Resolution = Literal["hour", "day"]

# Report dimensions the rollups keep, mapped to their rollup column.
ROLLUP_DIMENSIONS: dict[str, str] = {
    "provider": "provider",
    "endpoint": "endpoint",
    "model": "model",
    "model_priced": "model_priced",
    "service_tier": "service_tier",
    "cache_status": "cache_status",
    "key": "key_id",
    "team": "team",
    "project": "project",
    "feature": "feature",
}

_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_r = requests.c
_u = request_rollups.c


@dataclass(frozen=True, slots=True)
class Segment:
    """A time range read from one source: a rollup resolution, or request rows when None.

    ``since`` is inclusive and ``until`` exclusive; None leaves that side open.
    """

    resolution: Resolution | None
    since: datetime | None
    until: datetime | None


class ExactAdd(FunctionElement[Decimal]):
    """The exact sum of two ExactDecimal values, for upserts."""

    type = ExactDecimal()
    name = "exact_add"
    inherit_cache = True


@compiles(ExactAdd, "sqlite")
def _exact_add_sqlite(element: ExactAdd, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_DECIMAL_ADD}({compiler.process(element.clauses, **kw)})"


@compiles(ExactAdd, "postgresql")
def _exact_add_postgresql(element: ExactAdd, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({left} + {right})"


def plan_segments(
    since: datetime | None,
    until: datetime | None,
    *,
    by: Iterable[str],
    where: Iterable[str],
) -> list[Segment]:
    """Split ``[since, until)`` into the segments a report with ``by`` and ``where`` reads.

    Returns one request-row segment when a dimension in ``by`` or ``where`` is
    not kept by the rollups, and no segment for an empty range.
    """
    by = list(by)
    usable = {*ROLLUP_DIMENSIONS, "day", "hour"}
    if not set(by) <= usable or not set(where) <= set(ROLLUP_DIMENSIONS):
        return [Segment(None, since, until)]

    since = None if since is None else since.astimezone(UTC)
    until = None if until is None else until.astimezone(UTC)
    if since is not None and until is not None and since >= until:
        return []
    levels: list[Resolution] = ["hour"] if "hour" in by else ["day", "hour"]
    return _cover(since, until, levels)


def _cover(
    since: datetime | None, until: datetime | None, levels: Sequence[Resolution]
) -> list[Segment]:
    if not levels:
        return [Segment(None, since, until)]
    level, finer = levels[0], levels[1:]
    start = None if since is None else ceil_bucket(since, level)
    end = None if until is None else bucket_start(until, level)
    if start is not None and end is not None and start >= end:
        return _cover(since, until, finer)

    segments: list[Segment] = []
    if since is not None and start is not None and since < start:
        segments += _cover(since, start, finer)
    segments.append(Segment(level, start, end))
    if until is not None and end is not None and end < until:
        segments += _cover(end, until, finer)
    return segments


def bucket_start(moment: datetime, resolution: Resolution) -> datetime:
    """Return the UTC start of the hour or day that contains ``moment``."""
    utc = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return utc.replace(hour=0) if resolution == "day" else utc


def ceil_bucket(moment: datetime, resolution: Resolution) -> datetime:
    """Return ``moment`` if it starts an hour or day, else the start of the next one."""
    start = bucket_start(moment, resolution)
    return start if start == moment else start + _STEP[resolution]


def group_key(values: Sequence[str | None]) -> str:
    """Encode dimension values as one text key: NULL as ``-``, else ``LENGTH:VALUE``.

    The length prefix makes the encoding reversible, so no two groups share a
    key whatever characters their values contain. ``group_key_sql`` builds
    the same text in SQL.
    """
    return "|".join("-" if value is None else f"{len(value)}:{value}" for value in values)


def group_key_sql(columns: Sequence[ColumnElement[Any]]) -> ColumnElement[str]:
    """Build ``group_key`` of the values of ``columns`` in SQL."""
    parts: list[ColumnElement[str]] = []
    for column in columns:
        encoded = sa.cast(sa.func.length(column), sa.Text()) + sa.literal_column("':'") + column
        parts.append(sa.case((column.is_(None), sa.literal_column("'-'")), else_=encoded))
    key = parts[0]
    for part in parts[1:]:
        key = key + sa.literal_column("'|'") + part
    return key


def _record_dimensions(record: RequestRecord) -> tuple[str | None, ...]:
    """Return a record's values of ``ROLLUP_DIMENSION_COLUMNS``, in that order."""
    return (
        record.provider,
        record.endpoint,
        record.model_served or record.model_requested,
        record.model_priced,
        record.service_tier_served or record.service_tier_requested,
        record.cache_status,
        record.key_id,
        record.team,
        record.project,
        record.feature,
    )


def rollup_rows(records: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """Return the rollup rows that add ``records`` to their hours and days, sorted by key.

    The sort gives concurrent writers the same lock order on PostgreSQL, so
    two batches that touch the same rows wait for each other instead of deadlocking.
    """
    rows: dict[tuple[str, datetime, str], dict[str, Any]] = {}
    for record in records:
        dimensions = _record_dimensions(record)
        key_text = group_key(dimensions)
        # The record's sums are computed once and added to its hour and its day.
        sums = _record_sums(record)
        hour = bucket_start(record.started_at, "hour")
        for resolution, bucket in (("hour", hour), ("day", hour.replace(hour=0))):
            row = rows.get((resolution, bucket, key_text))
            if row is None:
                row = _empty_row(resolution, bucket, key_text, dimensions)
                rows[(resolution, bucket, key_text)] = row
            _add_sums(row, sums)
    return [rows[key] for key in sorted(rows)]


def _empty_row(
    resolution: str, bucket: datetime, key_text: str, dimensions: Sequence[str | None]
) -> dict[str, Any]:
    row: dict[str, Any] = {"resolution": resolution, "bucket": bucket, "group_key": key_text}
    row.update(zip(ROLLUP_DIMENSION_COLUMNS, dimensions, strict=True))
    row.update(dict.fromkeys(ROLLUP_COUNT_COLUMNS, 0))
    row.update(dict.fromkeys(ROLLUP_SAVINGS_COUNT_COLUMNS, 0))
    for name in ("cost_usd", "cache_saved_usd", *ROLLUP_SAVINGS_DECIMAL_COLUMNS):
        row[name] = Decimal(0)
    return row


_TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _record_sums(record: RequestRecord) -> dict[str, int | Decimal]:
    """Return what one record adds to a rollup row: counts as int, money as Decimal."""
    sums: dict[str, int | Decimal] = {
        "requests": 1,
        "errors": int(record.error_type is not None or record.http_status >= 400),
        "unpriced_requests": int(record.unpriced),
    }
    for name in _TOKEN_COLUMNS:
        sums[name] = getattr(record, name)
    if record.cost_usd is not None:
        sums["cost_usd"] = record.cost_usd
        sums["cost_nanousd"] = to_nanousd(record.cost_usd)
    saved = cache_saved_usd(record)
    if saved is not None:
        sums["cache_saved_usd"] = saved
    for name, amount in record_savings(record).items():
        if amount:
            sums[name] = amount
    return sums


def _add_sums(row: dict[str, Any], sums: dict[str, int | Decimal]) -> None:
    for name, amount in sums.items():
        if isinstance(amount, Decimal):
            row[name] = add_exact(row[name], amount)
        else:
            row[name] += amount


def cache_saved_usd(record: RequestRecord) -> Decimal | None:
    """Return the ``saved_usd`` the response cache noted in a record's details, if any."""
    cache = record.details.get("cache")
    saved = cache.get("saved_usd") if isinstance(cache, dict) else None
    if saved is None or isinstance(saved, bool):
        return None
    try:
        amount = Decimal(str(saved))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None


def upsert_rollups(connection: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows`` from ``rollup_rows`` to the stored rollups, in the caller's transaction."""
    if not rows:
        return
    insert = dialect_insert(connection.dialect.name)
    statement = insert(request_rollups)
    excluded = statement.excluded
    updates: dict[str, ColumnElement[Any]] = {
        name: request_rollups.c[name] + excluded[name]
        for name in (*ROLLUP_COUNT_COLUMNS, *ROLLUP_SAVINGS_COUNT_COLUMNS)
    }
    for name in ("cost_usd", "cache_saved_usd", *ROLLUP_SAVINGS_DECIMAL_COLUMNS):
        updates[name] = ExactAdd(request_rollups.c[name], excluded[name])
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_u.resolution, _u.bucket, _u.group_key], set_=updates
        ),
        list(rows),
    )


def rebuild_rollups(
    connection: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sums: Sequence[str] | None = None,
) -> None:
    """Recompute the rollups of ``[since, until)`` from the request rows, in SQL.

    Both bounds must start a UTC day, because a day's rollup row sums the
    whole day. ``sums`` names the sum columns to fill, all of them when None;
    a migration passes the columns its revision has. Runs inside the
    caller's transaction.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and bucket_start(moment, "day") != moment:
            raise LedgerError(
                f"rollup rebuild {name} {moment.isoformat()} does not start a UTC day; "
                "pass a midnight UTC datetime, or None for no bound"
            )

    delete = sa.delete(request_rollups)
    if since is not None:
        delete = delete.where(_u.bucket >= since)
    if until is not None:
        delete = delete.where(_u.bucket < until)
    connection.execute(delete)
    for resolution in ("hour", "day"):
        connection.execute(_rebuild_statement(resolution, since, until, sums))


def _rebuild_statement(
    resolution: Resolution,
    since: datetime | None,
    until: datetime | None,
    sums: Sequence[str] | None,
) -> sa.Insert:
    bucket = BucketStart(_r.started_at, sa.literal_column(f"'{resolution}'")).label("bucket")
    dimensions = [
        _r.provider,
        _r.endpoint,
        sa.func.coalesce(_r.model_served, _r.model_requested),
        _r.model_priced,
        sa.func.coalesce(_r.service_tier_served, _r.service_tier_requested),
        _r.cache_status,
        _r.key_id,
        _r.team,
        _r.project,
        _r.feature,
    ]
    all_sums = _rebuild_sums()
    names = list(all_sums) if sums is None else list(sums)
    select = sa.select(
        sa.literal_column(f"'{resolution}'"),
        bucket,
        group_key_sql(dimensions),
        *(
            dimension.label(name)
            for dimension, name in zip(dimensions, ROLLUP_DIMENSION_COLUMNS, strict=True)
        ),
        *(all_sums[name] for name in names),
    ).group_by(bucket.element, *dimensions)
    if since is not None:
        select = select.where(_r.started_at >= since)
    if until is not None:
        select = select.where(_r.started_at < until)
    columns = ["resolution", "bucket", "group_key", *ROLLUP_DIMENSION_COLUMNS, *names]
    return sa.insert(request_rollups).from_select(columns, select)


def _rebuild_sums() -> dict[str, ColumnElement[Any]]:
    """Return each sum column of ``request_rollups`` as an aggregate of request rows."""
    is_error = sa.or_(_r.error_type.is_not(None), _r.http_status >= 400)
    zero: ColumnElement[Any] = sa.literal_column("'0'")
    sums: dict[str, ColumnElement[Any]] = {
        "requests": sa.func.count(),
        "errors": sa.func.sum(sa.case((is_error, 1), else_=0)),
        "unpriced_requests": sa.func.sum(sa.case((_r.unpriced.is_(True), 1), else_=0)),
        "input_tokens": sa.func.sum(_r.input_tokens),
        "output_tokens": sa.func.sum(_r.output_tokens),
        "cache_read_tokens": sa.func.sum(_r.cache_read_tokens),
        "cache_write_tokens": sa.func.sum(_r.cache_write_tokens),
        "cache_write_1h_tokens": sa.func.sum(_r.cache_write_1h_tokens),
        "reasoning_tokens": sa.func.sum(_r.reasoning_tokens),
        "cost_nanousd": sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0),
        "cost_usd": sa.func.coalesce(ExactSum(_r.cost_usd), zero),
        "cache_saved_usd": sa.func.coalesce(ExactSum(CacheSavedUsd(_r.details)), zero),
    }
    savings = SavingsSql()
    sums.update(savings.count_sums())
    for name, amount in savings.amount_sums().items():
        sums[name] = sa.func.coalesce(amount, zero)
    return sums


class BucketStart(FunctionElement[datetime]):
    """The UTC start of the hour or day of a timestamp, in the column's storage form.

    The second argument is the literal ``'hour'`` or ``'day'``.
    """

    type = sa.DateTime(timezone=True)
    name = "bucket_start"
    inherit_cache = True


_SQLITE_BUCKET_FORMATS = {
    "'hour'": "%Y-%m-%d %H:00:00.000000",
    "'day'": "%Y-%m-%d 00:00:00.000000",
}


@compiles(BucketStart, "sqlite")
def _bucket_start_sqlite(element: BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" text in UTC.
    moment, resolution = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"strftime('{_SQLITE_BUCKET_FORMATS[resolution]}', {moment})"


@compiles(BucketStart, "postgresql")
def _bucket_start_postgresql(element: BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    moment, resolution = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(date_trunc({resolution}, ({moment}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


class CacheSavedUsd(FunctionElement[Decimal]):
    """The ``cache.saved_usd`` decimal string of a details JSON column, NULL when absent."""

    type = ExactDecimal()
    name = "cache_saved_usd"
    inherit_cache = True


@compiles(CacheSavedUsd, "sqlite")
def _cache_saved_sqlite(element: CacheSavedUsd, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.cache.saved_usd')"


@compiles(CacheSavedUsd, "postgresql")
def _cache_saved_postgresql(element: CacheSavedUsd, compiler: SQLCompiler, **kw: Any) -> str:
    details = compiler.process(element.clauses, **kw)
    return f"((({details})::jsonb -> 'cache' ->> 'saved_usd')::numeric)"
