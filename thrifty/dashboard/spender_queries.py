"""The users page, top sessions and cost per conversation, read from the spender rollups.

A view that ``user_rollups`` or ``session_rollups`` cannot serve is read
from the request rows as before (``user_rollup_usable`` is False, or the
session functions return None):

- the top users need whole UTC days (day or month resolution, bounds at
  midnight) and no filter but one on the user;
- the top sessions and the conversations need a view without filters.

A session whose requests all fall inside the view's range is read from its
rollup row. A session that spans a bound is summed from its request rows
inside the range, found by the session index, so results equal the row scan's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.dashboard.queries import totals_json
from thrifty.dashboard.view import View
from thrifty.ledger import Ledger, Totals
from thrifty.ledger.schema import SPENDER_COUNT_COLUMNS, requests, session_rollups, user_rollups
from thrifty.ledger.sqlfuncs import ExactSum

# View filters the user rollup keeps, mapped to their column.
USER_ROLLUP_FILTERS = {"user": "user"}

_r = requests.c
_ur = user_rollups.c
_sr = session_rollups.c
_TOTAL_FIELDS = tuple(name for name in SPENDER_COUNT_COLUMNS if name != "cost_nanousd")


def user_rollup_usable(view: View) -> bool:
    """Return whether ``user_rollups`` can serve the view: whole days, rollup filters only."""
    return (
        view.resolution != "hour"
        and _is_midnight(view.since)
        and _is_midnight(view.until)
        and set(view.where) <= set(USER_ROLLUP_FILTERS)
    )


def _is_midnight(moment: datetime) -> bool:
    utc = moment.astimezone(UTC)
    return utc == utc.replace(hour=0, minute=0, second=0, microsecond=0)


def top_users(ledger: Ledger, view: View, limit: int) -> list[dict[str, Any]]:
    """Return the ``limit`` users of highest cost in the view, as ``top_rows`` does.

    The users are ranked by their integer nano-dollar sums first, so the
    exact decimal sums, slow on SQLite, are computed for those users only.
    """
    ranked = (
        sa.select(_ur.user)
        .where(*_user_conditions(view))
        .group_by(_ur.user)
        .order_by(sa.func.sum(_ur.cost_nanousd).desc(), sa.func.sum(_ur.requests).desc())
        .limit(limit)
    )
    with ledger.engine.connect() as connection:
        names = list(connection.execute(ranked).scalars())
        chosen = sa.or_(
            _ur.user.in_([name for name in names if name is not None]),
            _ur.user.is_(None) if None in names else sa.false(),
        )
        statement = (
            sa.select(_ur.user.label("value"), *_rollup_sums(user_rollups))
            .where(*_user_conditions(view), chosen)
            .group_by(_ur.user)
        )
        groups = [(row.value, _totals(row._mapping)) for row in connection.execute(statement)]
    return _ranked_rows(groups, limit)


def user_cost_per_bucket(
    ledger: Ledger, view: View, names: Sequence[str], bucket: ColumnElement[str]
) -> dict[str, dict[str, str]]:
    """Return each named user's exact cost per bucket; ``bucket`` labels ``user_rollups.bucket``."""
    statement = (
        sa.select(_ur.user.label("name"), bucket.label("bucket"), ExactSum(_ur.cost_usd))
        .where(*_user_conditions(view), _ur.user.in_(names))
        .group_by(_ur.user, bucket)
    )
    result: dict[str, dict[str, str]] = {name: {} for name in names}
    with ledger.engine.connect() as connection:
        for name, label, cost in connection.execute(statement):
            result[name][label] = format(cost or Decimal(0), "f")
    return result


def _user_conditions(view: View) -> list[ColumnElement[bool]]:
    return [
        _ur.bucket >= view.since,
        _ur.bucket < view.until,
        *(_ur[USER_ROLLUP_FILTERS[name]] == value for name, value in view.where.items()),
    ]


def top_sessions(ledger: Ledger, view: View, limit: int) -> list[dict[str, Any]] | None:
    """Return the ``limit`` sessions of highest cost in the view, or None with filters.

    Requests without a session are one group, as in a report by session,
    summed from their rows through the session index.
    """
    if view.where:
        return None
    top = (
        sa.select(_sr.session.label("value"), *_rollup_sums(session_rollups, aggregate=False))
        .where(*_inside(view))
        .order_by(_sr.cost_nanousd.desc(), _sr.requests.desc())
        .limit(limit)
    )
    partial = (
        sa.select(_r.session.label("value"), *_row_sums())
        .where(*_spanning_rows(view))
        .group_by(_r.session)
    )
    no_session = sa.select(*_row_sums()).where(
        _r.session.is_(None), _r.started_at >= view.since, _r.started_at < view.until
    )
    with ledger.engine.connect() as connection:
        groups = [(row.value, _totals(row._mapping)) for row in connection.execute(top)]
        groups += [(row.value, _totals(row._mapping)) for row in connection.execute(partial)]
        without = _totals(connection.execute(no_session).one()._mapping)
    if without.requests > 0:
        groups.append((None, without))
    return _ranked_rows(groups, limit)


def conversation_sessions(view: View) -> sa.Subquery | None:
    """Return each session's first start, cost and nano-dollar cost in the view, or None.

    The columns are those of the row query in ``conversation_costs``:
    ``session``, ``first_at``, ``cost`` and ``nanousd``.
    """
    if view.where:
        return None
    inside = sa.select(
        _sr.session.label("session"),
        _sr.first_at.label("first_at"),
        _sr.cost_usd.label("cost"),
        _sr.cost_nanousd.label("nanousd"),
    ).where(*_inside(view))
    partial = (
        sa.select(
            _r.session.label("session"),
            sa.func.min(_r.started_at).label("first_at"),
            sa.func.coalesce(ExactSum(_r.cost_usd), sa.literal_column("'0'")).label("cost"),
            sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0).label("nanousd"),
        )
        .where(*_spanning_rows(view))
        .group_by(_r.session)
    )
    return sa.union_all(inside, partial).subquery("sessions")


def _inside(view: View) -> list[ColumnElement[bool]]:
    return [_sr.first_at >= view.since, _sr.last_at < view.until]


def _spanning_rows(view: View) -> list[ColumnElement[bool]]:
    """Return the conditions on request rows in the range of sessions that span a bound."""
    spanning = sa.select(_sr.session).where(
        _sr.first_at < view.until,
        _sr.last_at >= view.since,
        sa.or_(_sr.first_at < view.since, _sr.last_at >= view.until),
    )
    return [
        _r.session.in_(spanning),
        _r.started_at >= view.since,
        _r.started_at < view.until,
    ]


def _rollup_sums(table: sa.Table, *, aggregate: bool = True) -> list[ColumnElement[Any]]:
    if not aggregate:
        return [table.c[name] for name in (*SPENDER_COUNT_COLUMNS, "cost_usd")]
    return [
        *(
            sa.func.coalesce(sa.func.sum(table.c[name]), 0).label(name)
            for name in SPENDER_COUNT_COLUMNS
        ),
        ExactSum(table.c.cost_usd).label("cost_usd"),
    ]


def _row_sums() -> list[ColumnElement[Any]]:
    is_error = sa.or_(_r.error_type.is_not(None), _r.http_status >= 400)
    tokens = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    return [
        sa.func.count().label("requests"),
        sa.func.sum(sa.case((is_error, 1), else_=0)).label("errors"),
        sa.func.sum(sa.case((_r.unpriced.is_(True), 1), else_=0)).label("unpriced_requests"),
        *(sa.func.coalesce(sa.func.sum(_r[name]), 0).label(name) for name in tokens),
        sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0).label("cost_nanousd"),
        ExactSum(_r.cost_usd).label("cost_usd"),
    ]


def _totals(row: Any) -> Totals:
    # PostgreSQL returns SUM of integers as NUMERIC (Decimal), SQLite as int.
    cost = row["cost_usd"]
    counts: dict[str, Any] = {name: int(row[name] or 0) for name in _TOTAL_FIELDS}
    return Totals(**counts, cost_usd=Decimal(0) if cost is None else cost)


def _ranked_rows(groups: list[tuple[str | None, Totals]], limit: int) -> list[dict[str, Any]]:
    """Sort groups as a report does (cost, requests, then value) and keep ``limit``."""
    groups.sort(key=lambda group: (-group[1].cost_usd, -group[1].requests, _value_order(group[0])))
    return [{"value": value, **totals_json(totals)} for value, totals in groups[:limit]]


def _value_order(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")
