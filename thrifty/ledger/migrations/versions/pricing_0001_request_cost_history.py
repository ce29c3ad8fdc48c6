"""Create request_cost_history: the cost figures `thrifty reprice` replaced.

The first revision of the "pricing" branch, which starts off the first
revision of the requests chain.

Revision ID: pricing_0001
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pricing_0001"
down_revision = "0001"
branch_labels = ("pricing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_cost_history",
        sa.Column(
            "request_id",
            sa.Text(),
            sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("repriced_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("model_priced", sa.Text()),
        # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
        sa.Column("cost_usd", sa.Numeric().with_variant(sa.Text(), "sqlite")),
        sa.Column("cost_nanousd", sa.BigInteger()),
        sa.Column("unpriced", sa.Boolean(), nullable=False),
        sa.Column("cost_breakdown", sa.Text(), nullable=False),
        sa.Column("new_cost_usd", sa.Numeric().with_variant(sa.Text(), "sqlite")),
        sa.Column("price_source", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("request_cost_history")
