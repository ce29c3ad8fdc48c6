"""Unit costs over time: one feature call, one conversation, one user or customer.

- A feature call is one request of a feature. Per bucket, the mean is the
  exact cost of its priced requests divided by their number, read from the
  rollups. The p95 is the nearest-rank 95th percentile of their costs in
  whole nano-dollars (``cost_nanousd``), read from ``cost_histograms``: never
  above the exact value and more than 1/1.1 of it (see
  ``thrifty.ledger.histogram``). With
  a filter other than on the feature, both are computed from request rows
  and the p95 is exact. The result's ``p95`` field says which.
- A conversation is a session. Its cost is the sum of its requests inside
  the view's range, and it counts in the bucket of its first request there.
- Users and customers: the top spenders of the range, with their cost per
  bucket. A customer is the value of one tag (``customer`` unless the
  dashboard is configured otherwise).

Conversations without filters read ``session_rollups``, and users over
whole days, with no filter or one on the user, read ``user_rollups`` (see
``thrifty.dashboard.spender_queries``). Other views and customers read
request rows, so their time grows with the number of requests in the range.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.dashboard import spender_queries
from thrifty.dashboard.queries import bucket_labels, row_filters, top_rows
from thrifty.dashboard.view import View
from thrifty.ledger import Ledger, Totals
from thrifty.ledger.database import add_exact, sum_exact
from thrifty.ledger.histogram import P95_BOUND, p95_nanousd, read_histograms
from thrifty.ledger.rollup import plan_segments
from thrifty.ledger.schema import request_tags, requests, user_rollups
from thrifty.ledger.sqlfuncs import ExactSum, UtcDay, UtcHour

_MEAN = Context(prec=12)
_r = requests.c


def bucket_expression(view: View, column: ColumnElement[Any]) -> ColumnElement[str]:
    """Return the SQL label of a timestamp's bucket, as ``bucket_labels`` spells it."""
    if view.resolution == "hour":
        return UtcHour(column)
    if view.resolution == "month":
        # Inline constants, so that SELECT and GROUP BY compile to the same text.
        return sa.func.substr(UtcDay(column), sa.literal_column("1"), sa.literal_column("7"))
    return UtcDay(column)


def feature_call_costs(ledger: Ledger, view: View) -> dict[str, Any]:
    """Return each feature's requests, mean and p95 cost per request, per bucket and in all.

    Reads the rollups and histograms unless the view filters on more than the feature.
    """
    if set(view.where) <= {"feature"}:
        return binned_feature_call_costs(ledger, view)
    return {**exact_feature_call_costs(ledger, view), "p95": {"method": "exact"}}


# Count, exact cost sum and histogram of one feature in one bucket, or in the whole range.
_Cell = tuple[int, Decimal, dict[int, int]]


def binned_feature_call_costs(ledger: Ledger, view: View) -> dict[str, Any]:
    """Return ``feature_call_costs`` from the rollups (mean) and histograms (p95)."""
    cells: dict[str | None, dict[str, _Cell]] = {}
    report = ledger.report(view.query(["feature", view.bucket_dimension()]))
    for group in report.groups:
        bucket = _view_bucket(view, group.values[view.bucket_dimension()] or "")
        _add_cell(cells, group.values["feature"], bucket, group.totals)

    segments = plan_segments(
        view.since, view.until, by=["feature", view.bucket_dimension()], where=view.where
    )
    with ledger.engine.connect() as connection:
        histograms = read_histograms(
            connection,
            segments,
            lambda column: bucket_expression(view, column),
            feature=view.where.get("feature"),
        )
    for (name, bucket), bins in histograms.items():
        _merge_bins(cells.setdefault(name, {}), bucket, bins)
        _merge_bins(cells[name], _WHOLE_RANGE, bins)

    names = sorted(cells, key=lambda name: name or "")
    return {
        "view": view.public(),
        "buckets": bucket_labels(view),
        "p95": {"method": "histogram", "bound": P95_BOUND},
        "series": [
            {
                "name": name,
                "summary": _cell_point(cells[name].get(_WHOLE_RANGE)),
                "points": {
                    bucket: point
                    for bucket, cell in cells[name].items()
                    if bucket != _WHOLE_RANGE and (point := _cell_point(cell)) is not None
                },
            }
            for name in names
        ],
    }


def _view_bucket(view: View, label: str) -> str:
    return label[:7] if view.resolution == "month" else label


def _add_cell(
    cells: dict[str | None, dict[str, _Cell]],
    name: str | None,
    bucket: str,
    totals: Totals,
) -> None:
    priced = totals.requests - totals.unpriced_requests
    for key in (bucket, _WHOLE_RANGE):
        count, cost, stored = cells.setdefault(name, {}).get(key, (0, Decimal(0), {}))
        cells[name][key] = (count + priced, add_exact(cost, totals.cost_usd), stored)


def _merge_bins(cells: dict[str, _Cell], bucket: str, bins: dict[int, int]) -> None:
    # Each cell owns its bins dict (see _add_cell), so it is updated in place.
    if bucket not in cells:
        cells[bucket] = (0, Decimal(0), {})
    stored = cells[bucket][2]
    for number, requests_in_bin in bins.items():
        stored[number] = stored.get(number, 0) + requests_in_bin


def _cell_point(cell: _Cell | None) -> dict[str, Any] | None:
    if cell is None or cell[0] == 0:
        return None
    count, cost, bins = cell
    p95 = p95_nanousd(bins) or 0
    return {
        "count": count,
        "cost_usd": format(cost, "f"),
        "mean_usd": format(_MEAN.divide(cost, Decimal(count)), "f"),
        "p95_usd": format(Decimal(p95).scaleb(-9), "f"),
    }


def exact_feature_call_costs(ledger: Ledger, view: View) -> dict[str, Any]:
    """Return ``feature_call_costs`` from the request rows, with the exact p95."""
    conditions = [
        _r.started_at >= view.since,
        _r.started_at < view.until,
        _r.unpriced.is_(False),
        *row_filters(view),
    ]

    def statements(bucket: ColumnElement[Any] | None) -> tuple[sa.Select[Any], sa.Select[Any]]:
        keys: list[ColumnElement[Any]] = [_r.feature] if bucket is None else [_r.feature, bucket]
        means = (
            sa.select(
                _r.feature.label("name"),
                _bucket_label(bucket),
                sa.func.count().label("count"),
                ExactSum(_r.cost_usd).label("cost"),
            )
            .where(*conditions)
            .group_by(*keys)
        )
        ranked = sa.select(
            _r.feature.label("name"),
            _bucket_label(bucket),
            _r.cost_nanousd.label("nanousd"),
            *_rank_columns(keys, _r.cost_nanousd),
        ).where(*conditions)
        return means, ranked

    return _unit_series(ledger, view, statements, _r.started_at)


def conversation_costs(ledger: Ledger, view: View) -> dict[str, Any]:
    """Return the number of conversations, mean and p95 cost per conversation, per bucket.

    Reads ``session_rollups`` unless the view has filters.
    """
    from_rollups = spender_queries.conversation_sessions(view)
    if from_rollups is not None:
        return _summarize_sessions(ledger, view, from_rollups)
    sessions = _conversation_rows(view)
    name: ColumnElement[Any] = sa.literal_column("'conversation'")

    def statements(bucket: ColumnElement[Any] | None) -> tuple[sa.Select[Any], sa.Select[Any]]:
        keys: list[ColumnElement[Any]] = [] if bucket is None else [bucket]
        means = sa.select(
            name.label("name"),
            _bucket_label(bucket),
            sa.func.count().label("count"),
            ExactSum(sessions.c.cost).label("cost"),
        ).group_by(*keys)
        ranked = sa.select(
            name.label("name"),
            _bucket_label(bucket),
            sessions.c.nanousd.label("nanousd"),
            *_rank_columns(keys, sessions.c.nanousd),
        )
        return means, ranked

    return _unit_series(ledger, view, statements, sessions.c.first_at)


def _summarize_sessions(ledger: Ledger, view: View, sessions: sa.Subquery) -> dict[str, Any]:
    """Return ``conversation_costs`` from one read of the sessions, summed in Python.

    Gives the same values as the SQL of ``_unit_series``, which on SQLite
    would run its exact sums and window functions over every session twice.
    """
    statement = sa.select(
        bucket_expression(view, sessions.c.first_at), sessions.c.cost, sessions.c.nanousd
    )
    per_bucket: dict[str, list[tuple[Decimal, int]]] = {}
    everything: list[tuple[Decimal, int]] = []
    with ledger.engine.connect() as connection:
        for bucket, cost, nanousd in connection.execute(statement):
            session = (cost or Decimal(0), int(nanousd or 0))
            per_bucket.setdefault(bucket, []).append(session)
            everything.append(session)
    series = []
    if everything:
        points = {bucket: _session_point(costs) for bucket, costs in per_bucket.items()}
        series.append(
            {"name": "conversation", "summary": _session_point(everything), "points": points}
        )
    return {"view": view.public(), "buckets": bucket_labels(view), "series": series}


def _session_point(sessions: list[tuple[Decimal, int]]) -> dict[str, Any]:
    count = len(sessions)
    cost = sum_exact(session_cost for session_cost, _ in sessions)
    # Nearest rank, as in _points: the ceil(0.95 * count)-th smallest cost.
    p95 = sorted(nanousd for _, nanousd in sessions)[(count * 95 + 99) // 100 - 1]
    return {
        "count": count,
        "cost_usd": format(cost, "f"),
        "mean_usd": format(_MEAN.divide(cost, Decimal(count)), "f"),
        "p95_usd": format(Decimal(p95).scaleb(-9), "f"),
    }


def _conversation_rows(view: View) -> sa.Subquery:
    """Return each session's first start and cost in the view, summed from request rows."""
    return (
        sa.select(
            _r.session.label("session"),
            sa.func.min(_r.started_at).label("first_at"),
            ExactSum(_r.cost_usd).label("cost"),
            sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0).label("nanousd"),
        )
        .where(
            _r.started_at >= view.since,
            _r.started_at < view.until,
            _r.session.is_not(None),
            *row_filters(view),
        )
        .group_by(_r.session)
        .subquery("sessions")
    )


# Builds the mean and ranked queries for one bucket expression, or for the whole range (None).
_Statements = Callable[[ColumnElement[Any] | None], tuple[sa.Select[Any], sa.Select[Any]]]
_WHOLE_RANGE = "all"


def _bucket_label(bucket: ColumnElement[Any] | None) -> Any:
    if bucket is None:
        return sa.literal_column(f"'{_WHOLE_RANGE}'").label("bucket")
    return bucket.label("bucket")


def _unit_series(
    ledger: Ledger, view: View, statements: _Statements, moment: ColumnElement[Any]
) -> dict[str, Any]:
    """Run the mean and p95 queries per bucket and over the whole range."""
    per_bucket = _points(ledger, *statements(bucket_expression(view, moment)))
    overall = _points(ledger, *statements(None))
    names = sorted(set(per_bucket) | set(overall), key=lambda name: name or "")
    return {
        "view": view.public(),
        "buckets": bucket_labels(view),
        "series": [
            {
                "name": name,
                "summary": overall.get(name, {}).get(_WHOLE_RANGE),
                "points": per_bucket.get(name, {}),
            }
            for name in names
        ],
    }


def _rank_columns(
    partition: list[ColumnElement[Any]], order: ColumnElement[Any]
) -> list[ColumnElement[Any]]:
    partition_by = partition or None
    return [
        sa.func.row_number().over(partition_by=partition_by, order_by=order).label("position"),
        sa.func.count().over(partition_by=partition_by).label("size"),
    ]


def _points(
    ledger: Ledger, means: sa.Select[Any], ranked: sa.Select[Any]
) -> dict[str | None, dict[str, dict[str, Any]]]:
    """Return name -> bucket -> count, total, mean and p95 cost."""
    ranked_rows = ranked.subquery("ranked")
    # Nearest rank: the ceil(0.95 * size)-th smallest cost, in integer arithmetic.
    p95 = sa.select(ranked_rows.c.name, ranked_rows.c.bucket, ranked_rows.c.nanousd).where(
        ranked_rows.c.position == (ranked_rows.c.size * 95 + 99) // 100
    )
    with ledger.engine.connect() as connection:
        mean_rows = connection.execute(means).all()
        p95_values = {(row[0], row[1]): int(row[2] or 0) for row in connection.execute(p95)}

    points: dict[str | None, dict[str, dict[str, Any]]] = {}
    for row in mean_rows:
        name, bucket, count, cost = row[0], row[1], int(row[2]), row[3] or Decimal(0)
        points.setdefault(name, {})[bucket] = {
            "count": count,
            "cost_usd": format(cost, "f"),
            "mean_usd": format(_MEAN.divide(cost, Decimal(count)), "f"),
            "p95_usd": format(Decimal(p95_values.get((name, bucket), 0)).scaleb(-9), "f"),
        }
    return points


def top_spenders(ledger: Ledger, view: View, dimension: str, limit: int = 10) -> dict[str, Any]:
    """Return the top users or customers (``tag:KEY``) of a view and their cost per bucket."""
    from_rollups = dimension == "user" and spender_queries.user_rollup_usable(view)
    if from_rollups:
        top = spender_queries.top_users(ledger, view, limit)
    else:
        top = top_rows(ledger.report(view.query([dimension], limit=limit)))
    names = [row["value"] for row in top if row["value"] is not None]
    buckets = bucket_labels(view)
    per_bucket: dict[str, dict[str, str]] = {name: {} for name in names}
    if names and from_rollups:
        bucket = bucket_expression(view, user_rollups.c.bucket)
        per_bucket = spender_queries.user_cost_per_bucket(ledger, view, names, bucket)
    elif names:
        per_bucket = _cost_per_bucket(ledger, view, dimension, names)
    return {
        "view": view.public(),
        "dimension": dimension,
        "buckets": buckets,
        "rows": [{**row, "cost_per_bucket": per_bucket.get(row["value"] or "", {})} for row in top],
    }


def _cost_per_bucket(
    ledger: Ledger, view: View, dimension: str, names: list[str]
) -> dict[str, dict[str, str]]:
    bucket = bucket_expression(view, _r.started_at)
    source: sa.FromClause = requests
    if dimension.startswith("tag:"):
        tags = request_tags.alias("spender_tag")
        source = requests.join(
            tags,
            sa.and_(
                tags.c.request_id == _r.request_id, tags.c.key == dimension.removeprefix("tag:")
            ),
        )
        value: ColumnElement[Any] = tags.c.value
    else:
        value = _r.user
    statement = (
        sa.select(value.label("name"), bucket.label("bucket"), ExactSum(_r.cost_usd).label("cost"))
        .select_from(source)
        .where(
            _r.started_at >= view.since,
            _r.started_at < view.until,
            value.in_(names),
            *row_filters(view),
        )
        .group_by(value, bucket)
    )
    result: dict[str, dict[str, str]] = {name: {} for name in names}
    with ledger.engine.connect() as connection:
        for row in connection.execute(statement):
            result[row.name][row.bucket] = format(row.cost or Decimal(0), "f")
    return result
