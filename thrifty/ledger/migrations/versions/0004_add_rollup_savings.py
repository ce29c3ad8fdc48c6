"""Add the Batch, Flex and response cache savings sums to request_rollups, and fill them.

The fill recomputes every rollup row from the request rows in SQL, one
pass over the requests table, so the new sums agree with the old ones.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thrifty.ledger.rollup import rebuild_rollups

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The sum columns revision 0003 created.
_EARLIER_SUMS = (
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
    "cost_usd",
    "cache_saved_usd",
)
_COUNTS = (
    "cache_unpriced_hits",
    "cache_embedding_requests",
    "batch_results",
    "flex_calls",
    "flex_fallbacks",
    "flex_rejections",
    "flex_served",
)
_AMOUNTS = (
    "cache_embedding_usd",
    "batch_cost_usd",
    "batch_standard_cost_usd",
    "flex_cost_usd",
    "flex_standard_cost_usd",
)


def upgrade() -> None:
    # SQLite's ADD COLUMN accepts NOT NULL only with a default; it fills existing rows.
    for name in _COUNTS:
        op.add_column(
            "request_rollups",
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"),
        )
    for name in _AMOUNTS:
        op.add_column(
            "request_rollups",
            sa.Column(
                name,
                # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
                sa.Numeric().with_variant(sa.Text(), "sqlite"),
                nullable=False,
                server_default="0",
            ),
        )
    rebuild_rollups(op.get_bind(), sums=(*_EARLIER_SUMS, *_COUNTS, *_AMOUNTS))


def downgrade() -> None:
    with op.batch_alter_table("request_rollups") as batch:
        for name in (*_COUNTS, *_AMOUNTS):
            batch.drop_column(name)
