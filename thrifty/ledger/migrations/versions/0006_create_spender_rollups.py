"""Create user_rollups and session_rollups, the per-day-and-user and per-session sums.

The fill groups the requests table in SQL, one pass for each table, on SQLite
and PostgreSQL alike.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from thrifty.ledger.spender_rollups import rebuild_spender_rollups

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COUNTS = (
    "requests",
    "errors",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanousd",
)


def _exact_decimal() -> sa.types.TypeEngine[Any]:
    # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
    return sa.Numeric().with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_rollups",
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("user_key", sa.Text(), primary_key=True),
        sa.Column("user", sa.Text()),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("cost_usd", _exact_decimal(), nullable=False),
    )
    op.create_table(
        "session_rollups",
        sa.Column("session", sa.Text(), primary_key=True),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("cost_usd", _exact_decimal(), nullable=False),
    )
    op.create_index("ix_session_rollups_first_at", "session_rollups", ["first_at"])
    rebuild_spender_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_session_rollups_first_at", "session_rollups")
    op.drop_table("session_rollups")
    op.drop_table("user_rollups")
