"""Histograms of the cost of one request per feature, for an approximate p95 at any scale.

An exact 95th percentile needs every cost of the range, so at ten million
requests a month it means reading ten million rows. ``cost_histograms``
instead counts priced requests per feature, hour or day and cost bin, kept
in step with every write as ``request_rollups`` is.

Bins are on the whole nano-dollar cost (``cost_nanousd``). Costs below 100
nano-dollars have one bin each, so they are exact. A larger cost falls in
the bin of its number of digits and its first two digits: 123,456 is in
[120,000, 129,999]. The p95 read from the bins is the bottom of the bin
that contains the nearest-rank p95. It is never above the exact nearest-rank
p95 of ``cost_nanousd``, and the exact value is less than 1.1 times it,
because every cost in a bin is below 1.1 times the bin's bottom.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.errors import LedgerError
from thrifty.ledger.database import dialect_insert
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rollup import (
    BucketStart,
    Resolution,
    Segment,
    bucket_start,
    group_key,
    group_key_sql,
)
from thrifty.ledger.schema import cost_histograms, requests
from thrifty.ledger.serialize import to_nanousd

# Costs below this many nano-dollars have a bin each; larger ones share bins of
# the same digit count and first two digits.
EXACT_BINS = 100
P95_BOUND = (
    "at or below the exact nearest-rank p95 of whole nano-dollar costs; "
    "the exact value is less than 1.1 times it"
)

_r = requests.c
_h = cost_histograms.c

# Labels a timestamp column as the bucket a caller groups by (UtcDay, UtcHour...).
BucketLabel = Any


def cost_bin(nanousd: int) -> int:
    """Return the histogram bin of a cost in whole nano-dollars (0 for zero or less)."""
    if nanousd < EXACT_BINS:
        return max(nanousd, 0)
    digits = str(nanousd)
    return EXACT_BINS + (len(digits) - 3) * 90 + int(digits[:2]) - 10


def bin_bottom_nanousd(number: int) -> int:
    """Return the smallest cost in whole nano-dollars that falls in bin ``number``."""
    if number < EXACT_BINS:
        return number
    offset = number - EXACT_BINS
    digits, leading = offset // 90 + 3, offset % 90 + 10
    return int(leading * 10 ** (digits - 2))


def cost_bin_sql(nanousd: ColumnElement[Any]) -> ColumnElement[int]:
    """Build ``cost_bin`` of an integer column in SQL, from its decimal digits.

    Constants are inlined, so that PostgreSQL gets the same text in SELECT
    and GROUP BY.
    """

    def number(value: int) -> ColumnElement[int]:
        return sa.literal_column(str(value), sa.Integer())

    digits = sa.cast(nanousd, sa.Text())
    leading = sa.cast(sa.func.substr(digits, number(1), number(2)), sa.Integer())
    binned = number(EXACT_BINS - 10) + (sa.func.length(digits) - number(3)) * number(90) + leading
    return sa.case(
        (nanousd < number(0), number(0)),
        (nanousd < number(EXACT_BINS), nanousd),
        else_=binned,
    )


def p95_nanousd(counts: Mapping[int, int]) -> int | None:
    """Return the bottom of the bin with the nearest-rank p95 of ``counts``; None if empty."""
    size = sum(counts.values())
    if size == 0:
        return None
    # Nearest rank: the ceil(0.95 * size)-th smallest cost, in integer arithmetic.
    rank = (size * 95 + 99) // 100
    seen = 0
    for number in sorted(counts):
        seen += counts[number]
        if seen >= rank:
            return bin_bottom_nanousd(number)
    raise AssertionError("the cumulative count reaches the size")


def histogram_rows(records: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """Return the histogram rows that add the priced ``records``, sorted by key.

    The sort gives concurrent writers one lock order, as ``rollup_rows`` does.
    """
    rows: dict[tuple[str, datetime, str, int], dict[str, Any]] = {}
    for record in records:
        if record.cost_usd is None:
            continue
        number = cost_bin(to_nanousd(record.cost_usd))
        feature_key = group_key([record.feature])
        for resolution in ("hour", "day"):
            bucket = bucket_start(record.started_at, resolution)
            key = (resolution, bucket, feature_key, number)
            row = rows.setdefault(
                key,
                {
                    "resolution": resolution,
                    "bucket": bucket,
                    "feature_key": feature_key,
                    "bin": number,
                    "feature": record.feature,
                    "requests": 0,
                },
            )
            row["requests"] += 1
    return [rows[key] for key in sorted(rows)]


def upsert_histograms(connection: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows`` from ``histogram_rows`` to the stored histograms, in the open transaction."""
    if not rows:
        return
    insert = dialect_insert(connection.dialect.name)
    statement = insert(cost_histograms)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_h.resolution, _h.bucket, _h.feature_key, _h.bin],
            set_={"requests": _h.requests + statement.excluded.requests},
        ),
        list(rows),
    )


def rebuild_histograms(
    connection: sa.Connection, *, since: datetime | None = None, until: datetime | None = None
) -> None:
    """Recompute the histograms of ``[since, until)`` from the request rows, in SQL.

    Both bounds must start a UTC day, as for ``rebuild_rollups``.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and bucket_start(moment, "day") != moment:
            raise LedgerError(
                f"histogram rebuild {name} {moment.isoformat()} does not start a UTC day; "
                "pass a midnight UTC datetime, or None for no bound"
            )
    delete = sa.delete(cost_histograms)
    if since is not None:
        delete = delete.where(_h.bucket >= since)
    if until is not None:
        delete = delete.where(_h.bucket < until)
    connection.execute(delete)
    for resolution in ("hour", "day"):
        connection.execute(_rebuild_statement(resolution, since, until))


def _rebuild_statement(
    resolution: Resolution, since: datetime | None, until: datetime | None
) -> sa.Insert:
    bucket = BucketStart(_r.started_at, sa.literal_column(f"'{resolution}'"))
    number = cost_bin_sql(_r.cost_nanousd)
    select = (
        sa.select(
            sa.literal_column(f"'{resolution}'"),
            bucket,
            group_key_sql([_r.feature]),
            number,
            _r.feature,
            sa.func.count(),
        )
        .where(_r.cost_nanousd.is_not(None))
        .group_by(bucket, _r.feature, number)
    )
    if since is not None:
        select = select.where(_r.started_at >= since)
    if until is not None:
        select = select.where(_r.started_at < until)
    columns = ["resolution", "bucket", "feature_key", "bin", "feature", "requests"]
    return sa.insert(cost_histograms).from_select(columns, select)


def read_histograms(
    connection: sa.Connection,
    segments: Sequence[Segment],
    label: BucketLabel,
    feature: str | None = None,
) -> dict[tuple[str | None, str], dict[int, int]]:
    """Return (feature, bucket label) -> bin -> priced requests over ``segments``.

    ``label`` turns a timestamp column into the caller's bucket label.
    Rollup segments read ``cost_histograms`` and request-row segments bin
    the rows in SQL. ``feature`` keeps only that feature.
    """
    counts: dict[tuple[str | None, str], dict[int, int]] = {}
    for segment in segments:
        for name, bucket, number, requests_in_bin in connection.execute(
            _segment_statement(segment, label, feature)
        ):
            bins = counts.setdefault((name, bucket), {})
            bins[int(number)] = bins.get(int(number), 0) + int(requests_in_bin)
    return counts


def _segment_statement(segment: Segment, label: BucketLabel, feature: str | None) -> sa.Select[Any]:
    if segment.resolution is None:
        bucket = label(_r.started_at)
        number = cost_bin_sql(_r.cost_nanousd)
        conditions: list[ColumnElement[bool]] = [_r.cost_nanousd.is_not(None)]
        if segment.since is not None:
            conditions.append(_r.started_at >= segment.since)
        if segment.until is not None:
            conditions.append(_r.started_at < segment.until)
        if feature is not None:
            conditions.append(_r.feature == feature)
        return (
            sa.select(_r.feature, bucket, number, sa.func.count())
            .where(*conditions)
            .group_by(_r.feature, bucket, number)
        )
    bucket = label(_h.bucket)
    conditions = [_h.resolution == segment.resolution]
    if segment.since is not None:
        conditions.append(_h.bucket >= segment.since)
    if segment.until is not None:
        conditions.append(_h.bucket < segment.until)
    if feature is not None:
        conditions.append(_h.feature == feature)
    return (
        sa.select(_h.feature, bucket, _h.bin, sa.func.sum(_h.requests))
        .where(*conditions)
        .group_by(_h.feature, bucket, _h.bin)
    )
