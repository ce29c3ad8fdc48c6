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

- ``cache_status``: the response cache's verdict (``hit``, ``miss``...);
- ``model_priced``: the catalog model a request was priced as;
- ``batch``: the batch job a batch result belongs to (``details["batch"]["job"]``),
  None for other requests.
- ``route``: the route a ``thrifty/<route>`` request went through
  (``details["routing"]["route"]``), None for requests not routed.

``cost_usd`` adds only priced requests; unpriced ones are counted in
``unpriced_requests`` and add nothing. ``cache_saved_usd`` adds what the
response cache's hits saved: the cost of the original calls they replayed.
``errors`` counts requests with an ``error_type`` or an HTTP status of 400
or more. The ``cache_*``, ``batch_*`` and ``flex_*`` totals are the sums
that ``thrifty.ledger.savings`` defines per request: the response cache's
hits, misses and embedding calls, and the Batch and Flex costs against
standard prices.

When the rollups keep every dimension and filter of a query, its whole
hours and days are read from ``request_rollups`` and the rest from the
request rows (see ``thrifty.ledger.rollup``). Both give the same sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.errors import ReportError
from thrifty.ledger.database import add_exact
from thrifty.ledger.rollup import ROLLUP_DIMENSIONS, CacheSavedUsd, Segment, plan_segments
from thrifty.ledger.savings import SavingsSql
from thrifty.ledger.schema import (
    ROLLUP_SAVINGS_COUNT_COLUMNS,
    ROLLUP_SAVINGS_DECIMAL_COLUMNS,
    request_rollups,
    request_tags,
    requests,
)
from thrifty.ledger.sqlfuncs import ExactSum, JsonText, UtcDay, UtcHour

_r = requests.c
_u = request_rollups.c

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
    "cache_status": _r.cache_status,
    "model_priced": _r.model_priced,
    "batch": JsonText(_r.details, "batch", "job"),
    "route": JsonText(_r.details, "routing", "route"),
}

DIMENSIONS: tuple[str, ...] = (*_COLUMN_DIMENSIONS, "tag", "tag:KEY")

TOKEN_TOTALS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class ReportQuery:
    """A report request: the dimensions to group by and the requests to include.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``.
    ``where`` maps a dimension (``feature``, ``tag:env``, ``day``, ...) to the
    value a request must have. ``limit`` keeps only that many groups, those
    of highest cost; the totals still cover every matching request.
    """

    by: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    where: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


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
    cache_write_1h_tokens: int = 0
    cache_saved_usd: Decimal = Decimal(0)
    cache_hits: int = 0
    cache_semantic_hits: int = 0
    cache_misses: int = 0
    cache_unpriced_hits: int = 0
    cache_embedding_requests: int = 0
    cache_embedding_usd: Decimal = Decimal(0)
    batch_results: int = 0
    batch_cost_usd: Decimal = Decimal(0)
    batch_standard_cost_usd: Decimal = Decimal(0)
    flex_calls: int = 0
    flex_fallbacks: int = 0
    flex_rejections: int = 0
    flex_served: int = 0
    flex_cost_usd: Decimal = Decimal(0)
    flex_standard_cost_usd: Decimal = Decimal(0)

    def __add__(self, other: Totals) -> Totals:
        """Return the sums of two sets of requests; costs add exactly."""
        sums: dict[str, Any] = {}
        for item in fields(self):
            left, right = getattr(self, item.name), getattr(other, item.name)
            sums[item.name] = add_exact(left, right) if isinstance(left, Decimal) else left + right
        return Totals(**sums)

    @property
    def cache_lookups(self) -> int:
        """Requests the response cache looked up: hits, semantic hits and misses."""
        return self.cache_hits + self.cache_semantic_hits + self.cache_misses

    @property
    def cache_hit_rate(self) -> float | None:
        """Hits and semantic hits per lookup; None without lookups."""
        lookups = self.cache_lookups
        return (self.cache_hits + self.cache_semantic_hits) / lookups if lookups else None

    @property
    def cache_net_saving_usd(self) -> Decimal:
        """What the cache's hits saved minus what its embedding calls cost.

        Storage is not in it: the ledger records no storage cost, and
        ``thrifty cache stats --usd-per-gb-month`` estimates it.
        """
        return add_exact(self.cache_saved_usd, self.cache_embedding_usd.copy_negate())


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
    by = check_dimensions(query.by)
    since = None if query.since is None else _aware(query.since, "since")
    until = None if query.until is None else _aware(query.until, "until")
    filters = {name: _filter(name, value) for name, value in query.where.items()}
    if query.limit is not None and query.limit < 1:
        raise ReportError(f"report limit {query.limit} is invalid; it must be at least 1")

    segments = plan_segments(since, until, by=by, where=query.where)
    columns = _grouping(by).columns
    totals = Totals()
    groups: dict[tuple[str | None, ...], Totals] = {}
    # With one segment, SQL can keep the top groups; several must be merged first.
    limit = query.limit if len(segments) == 1 else None
    for segment in segments:
        if segment.resolution is None:
            statements = _row_statements(segment, by, filters, limit)
        else:
            statements = _rollup_statements(segment, by, query.where, limit)
        totals_statement, grouped_statement = statements
        # Rollup groups split the segment's rows without overlap (no tag
        # joins), so unless SQL keeps only the top groups they add up to its totals.
        totals_from_groups = (
            segment.resolution is not None and grouped_statement is not None and limit is None
        )
        if not totals_from_groups:
            totals += _totals(connection.execute(totals_statement).one()._mapping)
        if grouped_statement is None:
            continue
        for row in connection.execute(grouped_statement):
            values = tuple(row._mapping[f"d{index}"] for index in range(len(columns)))
            found = groups.get(values)
            group_totals = _totals(row._mapping)
            groups[values] = group_totals if found is None else found + group_totals
            if totals_from_groups:
                totals += group_totals

    report_groups = [
        ReportGroup(values=dict(zip(columns, values, strict=True)), totals=group_totals)
        for values, group_totals in groups.items()
    ]
    report_groups.sort(key=_group_order)
    if query.limit is not None:
        report_groups = report_groups[: query.limit]
    return Report(columns=columns, totals=totals, groups=report_groups)


_Statements = tuple[sa.Select[Any], sa.Select[Any] | None]


def _row_statements(
    segment: Segment,
    by: Sequence[str],
    filters: dict[str, ColumnElement[bool]],
    limit: int | None,
) -> _Statements:
    """Build the totals and grouped queries of a segment read from the request rows."""
    conditions = [*_time_conditions(_r.started_at, segment), *filters.values()]
    totals = sa.select(*_aggregates()).select_from(requests).where(*conditions)
    grouping = _grouping(by)
    if not grouping.columns:
        return totals, None

    source: sa.FromClause = requests
    for joined, onclause in grouping.joins:
        source = source.outerjoin(joined, onclause)
    labelled = [expr.label(f"d{index}") for index, expr in enumerate(grouping.expressions)]
    grouped = (
        sa.select(*labelled, *_aggregates())
        .select_from(source)
        .where(*conditions)
        .group_by(*grouping.expressions)
    )
    if limit is not None:
        nanousd = sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0)
        grouped = grouped.order_by(nanousd.desc(), sa.func.count().desc()).limit(limit)
    return totals, grouped


def _rollup_statements(
    segment: Segment, by: Sequence[str], where: dict[str, str], limit: int | None
) -> _Statements:
    """Build the totals and grouped queries of a segment read from ``request_rollups``."""
    conditions = [
        _u.resolution == segment.resolution,
        *_time_conditions(_u.bucket, segment),
        *(_u[ROLLUP_DIMENSIONS[name]] == value for name, value in where.items()),
    ]
    totals = sa.select(*_rollup_aggregates()).where(*conditions)
    if not by:
        return totals, None

    expressions = [_rollup_dimension(name) for name in by]
    labelled = [expr.label(f"d{index}") for index, expr in enumerate(expressions)]
    grouped = sa.select(*labelled, *_rollup_aggregates()).where(*conditions).group_by(*expressions)
    if limit is not None:
        grouped = grouped.order_by(
            sa.func.sum(_u.cost_nanousd).desc(), sa.func.sum(_u.requests).desc()
        ).limit(limit)
    return totals, grouped


def _rollup_dimension(name: str) -> ColumnElement[Any]:
    if name == "day":
        return UtcDay(_u.bucket)
    if name == "hour":
        return UtcHour(_u.bucket)
    return _u[ROLLUP_DIMENSIONS[name]]


def _time_conditions(column: ColumnElement[Any], segment: Segment) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if segment.since is not None:
        conditions.append(column >= segment.since)
    if segment.until is not None:
        conditions.append(column < segment.until)
    return conditions


def request_conditions(query: ReportQuery) -> list[ColumnElement[bool]]:
    """Return the conditions on ``requests`` rows of ``query``'s period and filters.

    For summaries computed beside a report, such as the Batch and Flex savings.
    """
    conditions: list[ColumnElement[bool]] = []
    if query.since is not None:
        conditions.append(_r.started_at >= _aware(query.since, "since"))
    if query.until is not None:
        conditions.append(_r.started_at < _aware(query.until, "until"))
    conditions += [_filter(name, value) for name, value in query.where.items()]
    return conditions


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
    savings = SavingsSql()
    return [
        sa.func.count().label("requests"),
        _count_where(is_error).label("errors"),
        *(sa.func.coalesce(sa.func.sum(_r[name]), 0).label(name) for name in TOKEN_TOTALS),
        ExactSum(_r.cost_usd).label("cost_usd"),
        _count_where(_r.unpriced.is_(True)).label("unpriced_requests"),
        ExactSum(CacheSavedUsd(_r.details)).label("cache_saved_usd"),
        *(
            _count_where(_r.cache_status == status).label(name)
            for name, status in _CACHE_STATUS_COUNTS.items()
        ),
        *(total.label(name) for name, total in savings.count_sums().items()),
        *(total.label(name) for name, total in savings.amount_sums().items()),
    ]


# Totals counted from the cache_status dimension, which rows and rollups both keep.
_CACHE_STATUS_COUNTS = {
    "cache_hits": "hit",
    "cache_semantic_hits": "semantic-hit",
    "cache_misses": "miss",
}


def _rollup_aggregates() -> list[ColumnElement[Any]]:
    """Return the aggregates of ``_aggregates``, with the same labels, summed over rollup rows."""
    sums = [
        sa.func.coalesce(sa.func.sum(_u[name]), 0).label(name)
        for name in ("requests", "errors", *TOKEN_TOTALS, "unpriced_requests")
    ]
    status_counts = [
        sa.func.coalesce(
            sa.func.sum(sa.case((_u.cache_status == status, _u.requests), else_=0)), 0
        ).label(name)
        for name, status in _CACHE_STATUS_COUNTS.items()
    ]
    # Most rollup rows have no cache saving, Batch or Flex: FILTER skips them, so
    # SQLite's exact sum, a Python function, runs only on the rows that add something.
    return [
        *sums,
        ExactSum(_u.cost_usd).label("cost_usd"),
        _nonzero_sum(_u.cache_saved_usd).label("cache_saved_usd"),
        *status_counts,
        *(
            sa.func.coalesce(sa.func.sum(_u[name]), 0).label(name)
            for name in ROLLUP_SAVINGS_COUNT_COLUMNS
        ),
        *(_nonzero_sum(_u[name]).label(name) for name in ROLLUP_SAVINGS_DECIMAL_COLUMNS),
    ]


def _nonzero_sum(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return ExactSum(column).filter(column != Decimal(0))


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


_DECIMAL_TOTALS = frozenset(
    item.name for item in fields(Totals) if item.type in ("Decimal", Decimal)
)


def _totals(row: Any) -> Totals:
    # PostgreSQL returns SUM of integers as NUMERIC (Decimal), SQLite as int.
    values: dict[str, Any] = {}
    for item in fields(Totals):
        value = row[item.name]
        if item.name in _DECIMAL_TOTALS:
            values[item.name] = Decimal(0) if value is None else value
        else:
            values[item.name] = int(value)
    return Totals(**values)


def _group_order(group: ReportGroup) -> tuple[Any, ...]:
    values = tuple((value is None, value or "") for value in group.values.values())
    return (-group.totals.cost_usd, -group.totals.requests, values)
