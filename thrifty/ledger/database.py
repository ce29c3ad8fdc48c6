"""Database URLs and engines for the ledger: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from decimal import MAX_PREC, Context, Decimal, Inexact, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from thrifty.errors import LedgerError

# The gateway and `thrifty report` both default to this file, relative to the
# current folder, unless THRIFTY_DB_URL names another database.
FALLBACK_DB_URL = "sqlite:///.thrifty/thrifty.db"
DEFAULT_DB_URL = os.environ.get("THRIFTY_DB_URL", FALLBACK_DB_URL)

SQLITE_BUSY_TIMEOUT_S = 5.0

# Name of the exact-sum aggregate registered on every SQLite connection.
SQLITE_DECIMAL_SUM = "thrifty_decimal_sum"
# Name of the exact addition of two decimal strings, also registered on every SQLite connection.
SQLITE_DECIMAL_ADD = "thrifty_decimal_add"

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def default_db_url() -> str:
    """Return THRIFTY_DB_URL as set now, or the SQLite file under ./.thrifty/."""
    return os.environ.get("THRIFTY_DB_URL", FALLBACK_DB_URL)


def normalize_url(url: str) -> URL:
    """Parse a ledger URL and point plain PostgreSQL URLs at the psycopg driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(
            f"invalid database URL {url!r}: {exc}; "
            "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from exc

    if parsed.drivername in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise LedgerError(
        f"unsupported database URL scheme {parsed.drivername!r} in "
        f"{safe_url(parsed)!r}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def safe_url(url: URL | str) -> str:
    """Render a URL for messages and logs, with any password masked."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """Return the file of a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_ledger_engine(url: str, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """Create an engine for a ledger URL, creating a SQLite file's folder if needed."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        # A connection attempt to an unreachable server fails after this many
        # seconds, so the writer backs off instead of hanging; a URL may override it.
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)

    path = sqlite_path(parsed)
    if path is None:
        # One shared connection, so that every thread uses the same in-memory database.
        engine = sa.create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout_s})
    _configure_sqlite(engine, busy_timeout_s, in_memory=path is None)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float, *, in_memory: bool) -> None:
    """Set the pragmas on each new connection and let SQLAlchemy own transactions.

    The sqlite3 module would otherwise begin transactions only before DML, so
    DDL (migrations) would run outside them. With its own handling off, each
    SQLAlchemy transaction emits BEGIN, or BEGIN IMMEDIATE when the connection
    has the ``sqlite_immediate`` execution option, which takes the write lock
    up front so that two writers wait on each other rather than fail.
    """

    def on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if not in_memory:
            _enable_wal(cursor, busy_timeout_s)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        # typeshed types an aggregate's finalize as returning int, but SQLite takes text too.
        dbapi_connection.create_aggregate(SQLITE_DECIMAL_SUM, 1, DecimalSum)  # type: ignore[arg-type]
        dbapi_connection.create_function(SQLITE_DECIMAL_ADD, 2, _decimal_add, deterministic=True)

    def on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)


# Addition at the maximum precision does not round, and the Inexact trap raises if it did.
_EXACT = Context(prec=MAX_PREC, Emax=999_999, Emin=-999_999, traps=[Inexact, InvalidOperation])


def add_exact(left: Decimal, right: Decimal) -> Decimal:
    """Add two Decimals without rounding, whatever the current decimal context."""
    return _EXACT.add(left, right)


def _decimal_add(left: Any, right: Any) -> str | None:
    """Add two decimal strings exactly, as SQLite's ``thrifty_decimal_add``; NULL adds nothing."""
    if left is None and right is None:
        return None
    total = add_exact(Decimal(str(left or 0)), Decimal(str(right or 0)))
    return format(total, "f")


class DecimalSum:
    """SQLite aggregate that adds decimal strings exactly and returns a decimal string.

    SQLite has no exact decimal type: its SUM would turn the text into floats.
    """

    def __init__(self) -> None:
        self.total: Decimal | None = None
        self.zeros = False

    def step(self, value: Any) -> None:
        if value is None:
            return
        if value == "0":
            # Most rollup rows store "0" in most money columns: skip the Decimal work.
            self.zeros = True
            return
        addend = Decimal(str(value))
        self.total = addend if self.total is None else _EXACT.add(self.total, addend)

    def finalize(self) -> str | None:
        if self.total is None:
            return "0" if self.zeros else None
        return format(self.total, "f")


def _enable_wal(cursor: sqlite3.Cursor, busy_timeout_s: float) -> None:
    """Switch a database to WAL, waiting while another connection changes it.

    Changing the journal mode does not wait on the busy timeout: while another
    process opens a new database, it fails at once with "database is locked".
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def dialect_insert(dialect_name: str) -> Callable[[sa.Table], Any]:
    """Return the ``insert`` of the SQLite or PostgreSQL dialect, with its ON CONFLICT clauses.

    The PostgreSQL dialect is imported only when asked for, because importing
    it loads all its drivers, about 40 ms that a SQLite process never needs.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def sum_exact(values: Iterable[Decimal]) -> Decimal:
    """Add Decimals without rounding, whatever the current decimal context.

    Gives the same result as ``add_exact`` applied in turn, at C speed.
    """
    with localcontext(_EXACT):
        return sum(values, Decimal(0))
