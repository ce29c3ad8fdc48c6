"""Create cost_histograms, the per-feature histograms of cost per request, and fill them.

The fill bins every priced request in SQL, one pass over the requests table.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thrifty.ledger.histogram import rebuild_histograms

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cost_histograms",
        sa.Column("resolution", sa.Text(), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("feature_key", sa.Text(), primary_key=True),
        sa.Column("bin", sa.Integer(), primary_key=True),
        sa.Column("feature", sa.Text()),
        sa.Column("requests", sa.BigInteger(), nullable=False),
    )
    rebuild_histograms(op.get_bind())


def downgrade() -> None:
    op.drop_table("cost_histograms")
