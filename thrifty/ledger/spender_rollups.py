"""Per-day-and-user and per-session sums of the requests table, kept in step with every write.

``request_rollups`` does not keep the user or the session, because each has
too many values, so the users page, the top sessions and the cost per
conversation would read every request row of their range. ``user_rollups``
contains the sums of each UTC day per user, and ``session_rollups`` the sums
of each session with the start of its first and last request.
``Ledger.write`` adds each new record to them in the same transaction as the
insert, as it does for ``request_rollups``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.errors import LedgerError
from thrifty.ledger.database import add_exact, dialect_insert
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rollup import BucketStart, ExactAdd, bucket_start, group_key, group_key_sql
from thrifty.ledger.schema import (
    SPENDER_COUNT_COLUMNS,
    requests,
    session_rollups,
    user_rollups,
)
from thrifty.ledger.serialize import to_nanousd
from thrifty.ledger.sqlfuncs import ExactSum

_r = requests.c
_ur = user_rollups.c
_sr = session_rollups.c
_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def user_rollup_rows(records: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """Return the user rollup rows that add ``records`` to their days, sorted by key.

    The sort gives concurrent writers one lock order, as in ``rollup_rows``.
    """
    rows: dict[tuple[datetime, str], dict[str, Any]] = {}
    for record in records:
        key_text = group_key([record.user])
        day = bucket_start(record.started_at, "day")
        row = rows.get((day, key_text))
        if row is None:
            row = {"bucket": day, "user_key": key_text, "user": record.user, **_zero_sums()}
            rows[(day, key_text)] = row
        _add_record(row, record)
    return [rows[key] for key in sorted(rows)]


def session_rollup_rows(records: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """Return the session rollup rows that add ``records`` to their sessions, sorted by session."""
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.session is None:
            continue
        row = rows.get(record.session)
        if row is None:
            row = {
                "session": record.session,
                "first_at": record.started_at,
                "last_at": record.started_at,
                **_zero_sums(),
            }
            rows[record.session] = row
        row["first_at"] = min(row["first_at"], record.started_at)
        row["last_at"] = max(row["last_at"], record.started_at)
        _add_record(row, record)
    return [rows[key] for key in sorted(rows)]


def _zero_sums() -> dict[str, Any]:
    return {**dict.fromkeys(SPENDER_COUNT_COLUMNS, 0), "cost_usd": Decimal(0)}


def _add_record(row: dict[str, Any], record: RequestRecord) -> None:
    row["requests"] += 1
    row["errors"] += int(record.error_type is not None or record.http_status >= 400)
    row["unpriced_requests"] += int(record.unpriced)
    for name in _TOKENS:
        row[name] += getattr(record, name)
    if record.cost_usd is not None:
        row["cost_usd"] = add_exact(row["cost_usd"], record.cost_usd)
        row["cost_nanousd"] += to_nanousd(record.cost_usd)


def upsert_spender_rollups(connection: sa.Connection, records: Sequence[RequestRecord]) -> None:
    """Add ``records`` to the stored user and session rollups, in the caller's transaction."""
    insert = dialect_insert(connection.dialect.name)
    users = user_rollup_rows(records)
    if users:
        statement = insert(user_rollups)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[_ur.bucket, _ur.user_key],
                set_=_sum_updates(user_rollups, statement.excluded),
            ),
            users,
        )
    sessions = session_rollup_rows(records)
    if sessions:
        statement = insert(session_rollups)
        excluded = statement.excluded
        updates = _sum_updates(session_rollups, excluded)
        updates["first_at"] = sa.case(
            (excluded.first_at < _sr.first_at, excluded.first_at), else_=_sr.first_at
        )
        updates["last_at"] = sa.case(
            (excluded.last_at > _sr.last_at, excluded.last_at), else_=_sr.last_at
        )
        connection.execute(
            statement.on_conflict_do_update(index_elements=[_sr.session], set_=updates),
            sessions,
        )


def _sum_updates(table: sa.Table, excluded: Any) -> dict[str, ColumnElement[Any]]:
    updates: dict[str, ColumnElement[Any]] = {
        name: table.c[name] + excluded[name] for name in SPENDER_COUNT_COLUMNS
    }
    updates["cost_usd"] = ExactAdd(table.c.cost_usd, excluded.cost_usd)
    return updates


def rebuild_spender_rollups(
    connection: sa.Connection, *, since: datetime | None = None, until: datetime | None = None
) -> None:
    """Recompute the user rollups of ``[since, until)`` and the sessions with a request there.

    Both bounds must start a UTC day, as for ``rebuild_rollups``. A session
    with a request in the range is recomputed from all its requests, so its
    sums stay whole even when it spans a bound. Runs inside the caller's
    transaction, in SQL.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and bucket_start(moment, "day") != moment:
            raise LedgerError(
                f"user and session rollup rebuild {name} {moment.isoformat()} does not start "
                "a UTC day; pass a midnight UTC datetime, or None for no bound"
            )
    in_range = _range_conditions(since, until)
    delete_users = sa.delete(user_rollups)
    if since is not None:
        delete_users = delete_users.where(_ur.bucket >= since)
    if until is not None:
        delete_users = delete_users.where(_ur.bucket < until)
    connection.execute(delete_users)
    connection.execute(_rebuild_users(in_range))

    touched = sa.select(_r.session).where(_r.session.is_not(None), *in_range).distinct()
    if in_range:
        connection.execute(sa.delete(session_rollups).where(_sr.session.in_(touched)))
    else:
        connection.execute(sa.delete(session_rollups))
    connection.execute(_rebuild_sessions(None if not in_range else touched))


def _range_conditions(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(_r.started_at >= since)
    if until is not None:
        conditions.append(_r.started_at < until)
    return conditions


def _row_sums() -> list[ColumnElement[Any]]:
    """Return the SPENDER_COUNT_COLUMNS and cost_usd as aggregates of request rows, in order."""
    is_error = sa.or_(_r.error_type.is_not(None), _r.http_status >= 400)
    return [
        sa.func.count(),
        sa.func.sum(sa.case((is_error, 1), else_=0)),
        sa.func.sum(sa.case((_r.unpriced.is_(True), 1), else_=0)),
        *(sa.func.sum(_r[name]) for name in _TOKENS),
        sa.func.coalesce(sa.func.sum(_r.cost_nanousd), 0),
        sa.func.coalesce(ExactSum(_r.cost_usd), sa.literal_column("'0'")),
    ]


def _rebuild_users(in_range: list[ColumnElement[bool]]) -> sa.Insert:
    day = BucketStart(_r.started_at, sa.literal_column("'day'"))
    select = (
        sa.select(day, group_key_sql([_r.user]), _r.user, *_row_sums())
        .where(*in_range)
        .group_by(day, _r.user)
    )
    columns = ["bucket", "user_key", "user", *SPENDER_COUNT_COLUMNS, "cost_usd"]
    return sa.insert(user_rollups).from_select(columns, select)


def _rebuild_sessions(only: sa.Select[Any] | None) -> sa.Insert:
    select = (
        sa.select(
            _r.session,
            sa.func.min(_r.started_at),
            sa.func.max(_r.started_at),
            *_row_sums(),
        )
        .where(_r.session.is_not(None))
        .group_by(_r.session)
    )
    if only is not None:
        select = select.where(_r.session.in_(only))
    columns = ["session", "first_at", "last_at", *SPENDER_COUNT_COLUMNS, "cost_usd"]
    return sa.insert(session_rollups).from_select(columns, select)
