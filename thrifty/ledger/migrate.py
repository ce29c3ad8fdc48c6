"""Upgrade a ledger database to the newest Alembic revisions, from Python.

The revisions live in ``thrifty/ledger/migrations/versions``. The requests
tables form the main chain; a feature package that adds tables of its own
(keys and budgets, batch jobs, cache entries...) may start a branch off the
first revision with a ``branch_labels`` of its name, so features can add
revisions independently. Every head is upgraded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from thrifty.errors import LedgerError
from thrifty.ledger.migration_heads import HEAD_REVISIONS
from thrifty.ledger.schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Key of the PostgreSQL advisory lock held while upgrading. Any fixed 64-bit
# number works, provided nothing else in the database locks the same one.
MIGRATION_LOCK_KEY = 0x7468726966747931


def alembic_config() -> Config:
    """Return an Alembic configuration for the ledger's revisions, with no ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def head_revisions() -> frozenset[str]:
    """Return the newest revision of each branch shipped with this version of Thrifty."""
    from alembic.script import ScriptDirectory

    heads = frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert heads, "the ledger has at least one revision"
    return heads


def current_revisions(connection: sa.Connection) -> frozenset[str]:
    """Return the revisions a database is at; empty before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return frozenset(context.get_current_heads())


def upgrade_to_head(engine: sa.Engine) -> None:
    """Upgrade the database to the head revision; a no-op when it is already there.

    The upgrade runs in one transaction. On PostgreSQL that transaction first
    takes an advisory lock, so processes starting at once upgrade one after
    the other. On SQLite it begins with BEGIN IMMEDIATE, and the database's
    write lock has the same effect. A database already at ``HEAD_REVISIONS``
    is found so by one plain read, without the lock or Alembic.
    """
    with engine.connect() as connection:
        if stored_revisions(connection) == HEAD_REVISIONS:
            return
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(sqlite_immediate=True)
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            _upgrade(connection)


def stored_revisions(connection: sa.Connection) -> frozenset[str]:
    """Return the revisions in the database's version table, read in plain SQL.

    Returns an empty set when the table does not exist yet.
    """
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    version_num = sa.column("version_num", sa.Text())
    statement = sa.select(version_num).select_from(sa.table(VERSION_TABLE))
    return frozenset(connection.execute(statement).scalars())


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    heads = frozenset(script.get_heads())
    current = current_revisions(connection)
    if current == heads:
        return
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:
        raise LedgerError(
            f"the ledger database is at schema revision {unknown[0]!r}, which this version "
            f"of Thrifty does not know (its newest are {', '.join(sorted(heads))}); "
            "upgrade Thrifty"
        )
    logger.info(
        "upgrading the ledger schema from %s to %s",
        ", ".join(sorted(current)) or "empty",
        ", ".join(sorted(heads)),
    )
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")
