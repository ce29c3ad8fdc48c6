"""Alembic environment for the ledger, run by ``thrifty.ledger.migrate``.

Online runs use the connection the caller put in ``config.attributes``,
inside the caller's transaction. Offline runs (``--sql``) print the DDL for
the dialect of ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from thrifty.ledger.schema import VERSION_TABLE, metadata


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
