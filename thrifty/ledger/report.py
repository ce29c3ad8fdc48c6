"""Aggregate ledger rows into totals and groups, in SQL, on both backends.

Dimensions for ``ReportQuery.by``:

- ``provider``, ``endpoint``, ``key`` (key_id), ``team``, ``project``,
  ``user``, ``feature``, ``session``;
- ``model``: the model served, or the model requested when none was served;
- ``service_tier``: the tier served, or the tier requested when none was;
- ``day`` and ``hour``: UTC buckets of ``started_at``, as ISO-8601 text;
- ``tag:KEY``: the value of one tag, None for requests without it;
- ``tag``: every tag pair, as ``tag_key`` and ``tag_value``. A request with
  several tags is counted in several groups, so these groups add up to more
  than the totals.

``cost_usd`` adds only priced requests; unpriced ones are counted in
``unpriced_requests`` and add nothing. ``errors`` counts requests with an
``error_type`` or an HTTP status of 400 or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.errors import ReportError
from thrifty.ledger.schema import request_tags, requests
from thrifty.ledger.sqlfuncs import ExactSum, UtcDay, UtcHour

_r = requests.c

_COLUMN_DIMENSIONS: dict[str, ColumnElement[Any]] = {
    "provider": _r.provider,
    "model": sa.func.coalesce(_r.model_served, _r.model_requested),
    "key": _r.key_id,
    "team": _r.team,
    "project": _r.project,
    "user": _r.user,
    "feature": _r.feature,
    "session": _r.session,
    "endpoint": _r.endpoint,
    "service_tier": sa.func.coalesce(_r.service_tier_served, _r.service_tier_requested),
    "day": UtcDay(_r.started_at),
    "hour": UtcHour(_r.started_at),
}

DIMENSIONS: tuple[str, ...] = (*_COLUMN_DIMENSIONS, "tag", "tag:KEY")

TOKEN_TOTALS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class ReportQuery:
    """A report request: the dimensions to group by and the requests to include.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``.
    ``where`` maps a dimension (``feature``, ``tag:env``, ``day``, ...) to the
    value a request must have.
    """

    by: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    where: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over a set of requests."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0


@dataclass(frozen=True, slots=True)
class ReportGroup:
    """One combination of dimension values and the totals of its requests."""

    values: dict[str, str | None]
    totals: Totals


@dataclass(frozen=True, slots=True)
class Report:
    """The totals of every matching request, and its groups sorted by cost, highest first."""

    columns: list[str]
    totals: Totals
    groups: list[ReportGroup]


@dataclass(frozen=True, slots=True)
class _Grouping:
    """The SQL side of the ``by`` dimensions: labelled columns and tag joins."""

    columns: list[str]
    expressions: list[ColumnElement[Any]]
    joins: list[tuple[sa.FromClause, ColumnElement[bool]]]


def run_report(connection: sa.Connection, query: ReportQuery) -> Report:
    """Run the totals and the grouped query for ``query`` on one connection."""
    conditions = _conditions(query)
    totals_row = connection.execute(
        sa.select(*_aggregates()).select_from(requests).where(*conditions)
    ).one()
    totals = _totals(totals_row._mapping)

    grouping = _grouping(query.by)
    if not grouping.columns:
        return Report(columns=[], totals=totals, groups=[])

    source: sa.FromClause = requests
    for joined, onclause in grouping.joins:
        source = source.outerjoin(joined, onclause)
    labelled = [expr.label(f"d{index}") for index, expr in enumerate(grouping.expressions)]
    statement = (
        sa.select(*labelled, *_aggregates())
        .select_from(source)
        .where(*conditions)
        .group_by(*grouping.expressions)
    )
    groups = [
        ReportGroup(
            values={name: row._mapping[f"d{index}"] for index, name in enumerate(grouping.columns)},
            totals=_totals(row._mapping),
        )
        for row in connection.execute(statement)
    ]
    groups.sort(key=_group_order)
    return Report(columns=grouping.columns, totals=totals, groups=groups)


def check_dimensions(by: Sequence[str]) -> list[str]:
    """Return the dimensions without repeats; raise ReportError for an unknown one."""
    unique: list[str] = []
    for name in by:
        _check_dimension(name)
        if name not in unique:
            unique.append(name)
    return unique


def _check_dimension(name: str) -> None:
    if name in _COLUMN_DIMENSIONS or name == "tag":
        return
    if name.startswith("tag:"):
        if name == "tag:":
            raise ReportError("dimension 'tag:' has no tag key; write it as tag:KEY, e.g. tag:env")
        return
    raise ReportError(f"unknown dimension {name!r}; valid dimensions: {', '.join(DIMENSIONS)}")


def _grouping(by: Sequence[str]) -> _Grouping:
    columns: list[str] = []
    expressions: list[ColumnElement[Any]] = []
    joins: list[tuple[sa.FromClause, ColumnElement[bool]]] = []
    for name in check_dimensions(by):
        if name in _COLUMN_DIMENSIONS:
            columns.append(name)
            expressions.append(_COLUMN_DIMENSIONS[name])
            continue

        tags = request_tags.alias(f"tags_{len(joins)}")
        onclause = tags.c.request_id == _r.request_id
        if name == "tag":
            columns += ["tag_key", "tag_value"]
            expressions += [tags.c.key, tags.c.value]
        else:
            onclause = sa.and_(onclause, tags.c.key == name.removeprefix("tag:"))
            columns.append(name)
            expressions.append(tags.c.value)
        joins.append((tags, onclause))
    return _Grouping(columns=columns, expressions=expressions, joins=joins)


def _conditions(query: ReportQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.since is not None:
        conditions.append(_r.started_at >= _aware(query.since, "since"))
    if query.until is not None:
        conditions.append(_r.started_at < _aware(query.until, "until"))
    for name, value in query.where.items():
        conditions.append(_filter(name, value))
    return conditions


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ReportError(
            f"{name} {moment.isoformat()} is a naive datetime; pass a timezone-aware one"
        )
    return moment


def _filter(name: str, value: str) -> ColumnElement[bool]:
    if name == "tag":
        raise ReportError("a filter on tags needs a key: write it as tag:KEY=VALUE")
    _check_dimension(name)
    if name == "model":
        # The same test as coalesce(served, requested) = value, in a form the
        # indexes on model_served and model_requested can serve.
        return sa.or_(
            _r.model_served == value,
            sa.and_(_r.model_served.is_(None), _r.model_requested == value),
        )
    if name in _COLUMN_DIMENSIONS:
        return _COLUMN_DIMENSIONS[name] == value
    tags = request_tags.alias("tag_filter")
    return sa.exists().where(
        tags.c.request_id == _r.request_id,
        tags.c.key == name.removeprefix("tag:"),
        tags.c.value == value,
    )


def _aggregates() -> list[ColumnElement[Any]]:
    is_error = sa.or_(_r.error_type.is_not(None), _r.http_status >= 400)
    return [
        sa.func.count().label("requests"),
        _count_where(is_error).label("errors"),
        *(sa.func.coalesce(sa.func.sum(_r[name]), 0).label(name) for name in TOKEN_TOTALS),
        ExactSum(_r.cost_usd).label("cost_usd"),
        _count_where(_r.unpriced.is_(True)).label("unpriced_requests"),
    ]


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _totals(row: Any) -> Totals:
    # PostgreSQL returns SUM of integers as NUMERIC (Decimal), SQLite as int.
    cost = row["cost_usd"]
    return Totals(
        requests=int(row["requests"]),
        errors=int(row["errors"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        cost_usd=Decimal(0) if cost is None else cost,
        unpriced_requests=int(row["unpriced_requests"]),
    )


def _group_order(group: ReportGroup) -> tuple[Any, ...]:
    values = tuple((value is None, value or "") for value in group.values.values())
    return (-group.totals.cost_usd, -group.totals.requests, values)
