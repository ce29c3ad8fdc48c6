"""SQL expressions written differently on SQLite and PostgreSQL.

Each renders its constant arguments inline, so that the same expression in
SELECT and GROUP BY compiles to identical text, as PostgreSQL requires.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from thrifty.ledger.database import SQLITE_DECIMAL_SUM
from thrifty.ledger.schema import ExactDecimal


class UtcDay(FunctionElement[str]):
    """The UTC calendar day of a timestamp, as text: ``2025-01-31``."""

    type = sa.Text()
    name = "utc_day"
    inherit_cache = True


class UtcHour(FunctionElement[str]):
    """The UTC hour of a timestamp, as text: ``2025-01-31T13:00:00Z``."""

    type = sa.Text()
    name = "utc_hour"
    inherit_cache = True


class ExactSum(FunctionElement[Any]):
    """The exact sum of an ExactDecimal column; NULL when every value is NULL."""

    type = ExactDecimal()
    name = "exact_sum"
    inherit_cache = True


def _argument(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(UtcDay, "sqlite")
def _utc_day_sqlite(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d', {_argument(element, compiler, **kw)})"


@compiles(UtcDay, "postgresql")
def _utc_day_postgresql(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({_argument(element, compiler, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(UtcHour, "sqlite")
def _utc_hour_sqlite(element: UtcHour, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%dT%H:00:00Z', {_argument(element, compiler, **kw)})"


@compiles(UtcHour, "postgresql")
def _utc_hour_postgresql(element: UtcHour, compiler: SQLCompiler, **kw: Any) -> str:
    argument = _argument(element, compiler, **kw)
    return f"to_char(({argument}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')"


@compiles(ExactSum, "sqlite")
def _exact_sum_sqlite(element: ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_DECIMAL_SUM}({_argument(element, compiler, **kw)})"


@compiles(ExactSum, "postgresql")
def _exact_sum_postgresql(element: ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"sum({_argument(element, compiler, **kw)})"
