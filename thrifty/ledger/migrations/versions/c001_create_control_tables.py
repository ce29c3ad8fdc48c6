"""Create the control plane's tables: keys, budgets, rate limits, cutoffs, audit, state.

Revision ID: c001
Revises: 0001
Branch: control
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c001"
down_revision = "0001"
branch_labels = ("control",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_keys",
        sa.Column("key_id", sa.Text(), primary_key=True),
        sa.Column("key_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("team", sa.Text()),
        sa.Column("project", sa.Text()),
        sa.Column("user", sa.Text()),
        sa.Column("feature", sa.Text()),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("allowed_models", sa.Text(), nullable=False),
        sa.Column("allowed_providers", sa.Text(), nullable=False),
        sa.Column("allowed_tiers", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "control_budgets",
        sa.Column("budget_id", sa.Text(), primary_key=True),
        sa.Column("scope", sa.Text(), nullable=False),
        # Exact money: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
        sa.Column("limit_usd", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("thresholds", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_control_budgets_scope", "control_budgets", ["scope"])
    op.create_table(
        "control_rate_limits",
        sa.Column("scope", sa.Text(), primary_key=True),
        sa.Column("rpm", sa.Integer()),
        sa.Column("tpm", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "control_cutoffs",
        sa.Column("scope", sa.Text(), primary_key=True),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "control_audit",
        sa.Column("audit_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
    )
    op.create_table(
        "control_state",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "control_state",
        "control_audit",
        "control_cutoffs",
        "control_rate_limits",
        "control_budgets",
        "control_keys",
    ):
        op.drop_table(table)
