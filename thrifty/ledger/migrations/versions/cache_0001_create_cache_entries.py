"""Create the response cache's cache_entries table (the ``cache`` branch).

Revision ID: cache_0001
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cache_0001"
down_revision = "0001"
branch_labels = ("cache",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("entry_id", sa.Text(), primary_key=True),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("partition_key", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("feature", sa.Text()),
        sa.Column("query_text", sa.Text()),
        sa.Column("embedder", sa.Text()),
        sa.Column("vector", sa.LargeBinary()),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
        sa.Column("cost_usd", sa.Numeric().with_variant(sa.Text(), "sqlite")),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cache_entries_expires_at", "cache_entries", ["expires_at"])
    op.create_index("ix_cache_entries_last_used_at", "cache_entries", ["last_used_at"])
    op.create_index("ix_cache_entries_namespace", "cache_entries", ["namespace"])
    op.create_index("ix_cache_entries_feature", "cache_entries", ["feature"])


def downgrade() -> None:
    op.drop_table("cache_entries")
