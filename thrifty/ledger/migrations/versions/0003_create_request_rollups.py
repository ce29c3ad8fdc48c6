"""Create request_rollups, the hourly and daily sums of requests, and fill it.

The fill aggregates every stored request in SQL, so upgrading a large
ledger takes one pass over the requests table.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thrifty.ledger.rollup import rebuild_rollups

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DIMENSIONS = (
    "provider",
    "endpoint",
    "model",
    "model_priced",
    "service_tier",
    "cache_status",
    "key_id",
    "team",
    "project",
    "feature",
)
_COUNTS = (
    "requests",
    "errors",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_nanousd",
)


def upgrade() -> None:
    op.create_table(
        "request_rollups",
        sa.Column("resolution", sa.Text(), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("group_key", sa.Text(), primary_key=True),
        *(sa.Column(name, sa.Text()) for name in _DIMENSIONS),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
        sa.Column("cost_usd", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=False),
        sa.Column(
            "cache_saved_usd", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=False
        ),
    )
    # Fill only the columns created above: later revisions add more.
    rebuild_rollups(op.get_bind(), sums=(*_COUNTS, "cost_usd", "cache_saved_usd"))


def downgrade() -> None:
    op.drop_table("request_rollups")
