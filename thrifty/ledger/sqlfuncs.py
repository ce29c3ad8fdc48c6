"""SQL expressions written differently on SQLite and PostgreSQL.

Each renders its constant arguments inline, so that the same expression in
SELECT and GROUP BY compiles to identical text, as PostgreSQL requires.
"""

from __future__ import annotations

import re
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


_JSON_KEY = re.compile(r"^[A-Za-z0-9_]+$")


def _json_path(keys: tuple[str, ...]) -> list[sa.ColumnElement[Any]]:
    for key in keys:
        if not _JSON_KEY.match(key):
            raise ValueError(f"JSON path key {key!r} must be letters, digits or '_'")
    return [sa.literal_column(key) for key in keys]


class JsonText(FunctionElement[str]):
    """The text at a path of keys inside a JSON text column: ``JsonText(details, "batch", "job")``.

    NULL where the path is absent. The keys are written into the SQL, so
    they are checked to be plain names.
    """

    type = sa.Text()
    name = "json_text"
    inherit_cache = True

    def __init__(self, column: sa.ColumnElement[Any], *keys: str) -> None:
        super().__init__(column, *_json_path(keys))


class JsonFlag(FunctionElement[bool]):
    """Whether the value at a path of keys inside a JSON text column is ``true``."""

    type = sa.Boolean()
    name = "json_flag"
    inherit_cache = True

    def __init__(self, column: sa.ColumnElement[Any], *keys: str) -> None:
        super().__init__(column, *_json_path(keys))


def _column_and_keys(
    element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any
) -> tuple[str, list[str]]:
    column, *keys = list(element.clauses)
    return compiler.process(column, **kw), [str(getattr(key, "text", key)) for key in keys]


@compiles(JsonText, "sqlite")
def _json_text_sqlite(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, keys = _column_and_keys(element, compiler, **kw)
    return f"json_extract({column}, '$.{'.'.join(keys)}')"


@compiles(JsonText, "postgresql")
def _json_text_postgresql(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, keys = _column_and_keys(element, compiler, **kw)
    return f"(CAST({column} AS jsonb) #>> '{{{','.join(keys)}}}')"


@compiles(JsonFlag, "sqlite")
def _json_flag_sqlite(element: JsonFlag, compiler: SQLCompiler, **kw: Any) -> str:
    # json_type, unlike json_extract, returns 'true' for JSON true and not 1.
    column, keys = _column_and_keys(element, compiler, **kw)
    return f"(json_type({column}, '$.{'.'.join(keys)}') = 'true')"


@compiles(JsonFlag, "postgresql")
def _json_flag_postgresql(element: JsonFlag, compiler: SQLCompiler, **kw: Any) -> str:
    column, keys = _column_and_keys(element, compiler, **kw)
    return f"((CAST({column} AS jsonb) #>> '{{{','.join(keys)}}}') = 'true')"
