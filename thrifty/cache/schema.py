"""The response cache's table, as SQLAlchemy Core metadata.

It lives in the ledger's database by default, created by the ``cache``
branch of the ledger's Alembic revisions (``cache_0001``). Times and money use
the ledger's exact types: UTC datetimes, and ``cost_usd`` as NUMERIC on
PostgreSQL and decimal text on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa

from thrifty.ledger.schema import ExactDecimal, UTCDateTime

metadata = sa.MetaData()

cache_entries = sa.Table(
    "cache_entries",
    metadata,
    sa.Column("entry_id", sa.Text(), primary_key=True),
    sa.Column("namespace", sa.Text(), nullable=False),
    sa.Column("partition_key", sa.Text(), nullable=False),
    sa.Column("provider", sa.Text(), nullable=False),
    sa.Column("endpoint", sa.Text(), nullable=False),
    sa.Column("model", sa.Text(), nullable=False),
    sa.Column("feature", sa.Text()),
    sa.Column("query_text", sa.Text()),
    sa.Column("embedder", sa.Text()),
    # float32 little-endian values of the query's embedding.
    sa.Column("vector", sa.LargeBinary()),
    sa.Column("response", sa.LargeBinary(), nullable=False),
    sa.Column("request_id", sa.Text(), nullable=False),
    sa.Column("cost_usd", ExactDecimal()),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("hits", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

sa.Index("ix_cache_entries_expires_at", cache_entries.c.expires_at)
sa.Index("ix_cache_entries_last_used_at", cache_entries.c.last_used_at)
sa.Index("ix_cache_entries_namespace", cache_entries.c.namespace)
sa.Index("ix_cache_entries_feature", cache_entries.c.feature)
