"""The dashboard's data: aggregate ledger queries turned into JSON-ready values.

Totals, charts and top lists go through ``Ledger.report``, which reads the
rollups for whole hours and days. The session and request views read
request rows by indexed columns (session, request id, start time) and
never scan the table. Money leaves here as exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import sqlalchemy as sa

from thrifty.dashboard.view import View
from thrifty.ledger import Ledger, Report, ReportGroup, ReportQuery, Totals
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rows import row_to_record
from thrifty.ledger.schema import request_tags, requests
from thrifty.ledger.serialize import record_to_dict

# Top lists on the main page, by the dimension each ranks.
MAIN_TOP_LISTS = ("feature", "model", "team", "key")
# More stacked series than this are added up into one "other" series.
MAX_STACKS = 8
OTHER = "(other)"
NONE_LABEL = "(none)"
MAX_SESSION_REQUESTS = 2000
RECENT_REQUESTS = 100

# Costs per request are rounded to this many significant digits; sums stay exact.
_PER_REQUEST = Context(prec=12)
_r = requests.c


def totals_json(totals: Totals) -> dict[str, Any]:
    """Return a Totals as JSON values, with its cost per priced request."""
    priced = totals.requests - totals.unpriced_requests
    per_request = None if priced == 0 else _PER_REQUEST.divide(totals.cost_usd, Decimal(priced))
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "cost_usd": format(totals.cost_usd, "f"),
        "unpriced_requests": totals.unpriced_requests,
        "cost_per_request_usd": None if per_request is None else format(per_request, "f"),
    }


def top_rows(report: Report) -> list[dict[str, Any]]:
    """Return a one-dimension report's groups as rows with ``value`` and the totals."""
    (column,) = report.columns
    return [{"value": group.values[column], **totals_json(group.totals)} for group in report.groups]


def overview(ledger: Ledger, view: View, stack: str, top_limit: int = 10) -> dict[str, Any]:
    """Return the main page's data: totals, the stacked spend series and the top lists."""
    totals = ledger.report(view.query()).totals
    return {
        "view": view.public(),
        "stack": stack,
        "totals": totals_json(totals),
        "series": spend_series(ledger, view, stack),
        "top": {
            name: top_rows(ledger.report(view.query([name], limit=top_limit)))
            for name in MAIN_TOP_LISTS
        },
    }


def spend_series(ledger: Ledger, view: View, stack: str) -> dict[str, Any]:
    """Return cost and requests per bucket, one series per value of ``stack``.

    Every bucket of the range is listed, with zeros where nothing was spent.
    The ``MAX_STACKS`` values of highest cost get their own series and the
    rest are added up as ``(other)``.
    """
    report = ledger.report(view.query([stack, view.bucket_dimension()]))
    buckets = bucket_labels(view)
    index = {label: position for position, label in enumerate(buckets)}
    names = _stack_names(report.groups, stack)

    costs = {name: [Decimal(0)] * len(buckets) for name in names}
    counts = {name: [0] * len(buckets) for name in names}
    for group in report.groups:
        name = _label(group.values[stack])
        name = name if name in costs else OTHER
        bucket = _bucket_of(group.values[view.bucket_dimension()], view)
        position = index.get(bucket)
        if position is None:
            continue
        costs[name][position] += group.totals.cost_usd
        counts[name][position] += group.totals.requests
    return {
        "buckets": buckets,
        "stacks": [
            {
                "name": name,
                "cost_usd": [format(cost, "f") for cost in costs[name]],
                "requests": counts[name],
            }
            for name in names
        ],
    }


def _stack_names(groups: Sequence[ReportGroup], stack: str) -> list[str]:
    by_cost: dict[str, Decimal] = {}
    for group in groups:
        name = _label(group.values[stack])
        by_cost[name] = by_cost.get(name, Decimal(0)) + group.totals.cost_usd
    ranked = sorted(by_cost, key=lambda name: (-by_cost[name], name))
    if len(ranked) <= MAX_STACKS:
        return ranked
    return [*ranked[: MAX_STACKS - 1], OTHER]


def _label(value: str | None) -> str:
    return NONE_LABEL if value is None else value


def bucket_labels(view: View) -> list[str]:
    """Return the label of every hour, day or month bucket that overlaps the view's range."""
    return list(dict.fromkeys(_bucket_of(label, view) for label in _fine_labels(view)))


def _fine_labels(view: View) -> Iterator[str]:
    if view.resolution == "hour":
        moment = view.since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while moment < view.until:
            yield moment.strftime("%Y-%m-%dT%H:00:00Z")
            moment += timedelta(hours=1)
        return
    day = view.since.astimezone(UTC).date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < view.until:
        yield day.isoformat()
        day += timedelta(days=1)


def _bucket_of(label: str | None, view: View) -> str:
    """Map an hour or day label to its bucket label; a month is ``YYYY-MM``."""
    text = label or ""
    return text[:7] if view.resolution == "month" else text


def session_view(ledger: Ledger, session: str) -> dict[str, Any]:
    """Return every request of a session in start order, with the session's totals."""
    statement = (
        sa.select(requests)
        .where(_r.session == session)
        .order_by(_r.started_at, _r.request_id)
        .limit(MAX_SESSION_REQUESTS + 1)
    )
    with ledger.engine.connect() as connection:
        rows = [row_to_record(row._mapping) for row in connection.execute(statement)]
    totals = ledger.report(ReportQuery(where={"session": session})).totals
    return {
        "session": session,
        "totals": totals_json(totals),
        "truncated": len(rows) > MAX_SESSION_REQUESTS,
        "requests": [request_row(record) for record in rows[:MAX_SESSION_REQUESTS]],
    }


def recent_requests(
    ledger: Ledger, view: View, limit: int = RECENT_REQUESTS
) -> list[dict[str, Any]]:
    """Return the latest requests of the view's range that match its filters, newest first.

    The query walks the started_at index from the end and stops at ``limit`` matches.
    """
    statement = (
        sa.select(requests)
        .where(_r.started_at >= view.since, _r.started_at < view.until, *row_filters(view))
        .order_by(_r.started_at.desc(), _r.request_id.desc())
        .limit(limit)
    )
    with ledger.engine.connect() as connection:
        records = [row_to_record(row._mapping) for row in connection.execute(statement)]
    return [request_row(record) for record in records]


_ROW_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "provider": _r.provider,
    "feature": _r.feature,
    "team": _r.team,
    "project": _r.project,
    "key": _r.key_id,
    "user": _r.user,
    "session": _r.session,
    "endpoint": _r.endpoint,
    "cache_status": _r.cache_status,
}


def row_filters(view: View) -> list[sa.ColumnElement[bool]]:
    """Return the view's filters as conditions on request rows."""
    conditions: list[sa.ColumnElement[bool]] = []
    for name, value in view.where.items():
        if name in _ROW_COLUMNS:
            conditions.append(_ROW_COLUMNS[name] == value)
        elif name == "model":
            conditions.append(sa.func.coalesce(_r.model_served, _r.model_requested) == value)
        elif name == "service_tier":
            tier = sa.func.coalesce(_r.service_tier_served, _r.service_tier_requested)
            conditions.append(tier == value)
        elif name.startswith("tag:"):
            tags = request_tags.alias("tag_filter")
            conditions.append(
                sa.exists().where(
                    tags.c.request_id == _r.request_id,
                    tags.c.key == name.removeprefix("tag:"),
                    tags.c.value == value,
                )
            )
    return conditions


def request_row(record: RequestRecord) -> dict[str, Any]:
    """Return the columns a request list shows for one record."""
    latency_ms = None
    if record.ended_at is not None:
        latency_ms = round((record.ended_at - record.started_at).total_seconds() * 1000, 1)
    return {
        "request_id": record.request_id,
        "started_at": record.started_at.isoformat(),
        "provider": record.provider,
        "model": record.model_served or record.model_requested,
        "feature": record.feature,
        "user": record.user,
        "session": record.session,
        "http_status": record.http_status,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cost_usd": None if record.cost_usd is None else format(record.cost_usd, "f"),
        "unpriced": record.unpriced,
        "latency_ms": latency_ms,
        "cache_status": record.cache_status,
        "service_tier": record.service_tier_served or record.service_tier_requested,
    }


def request_view(ledger: Ledger, request_id: str) -> dict[str, Any] | None:
    """Return a request's full record, or None when it is not stored.

    The ledger stores no request or response bodies, so there are none to show.
    """
    record = ledger.get(request_id)
    if record is None:
        return None
    return {"record": record_to_dict(record), "bodies_stored": False}
