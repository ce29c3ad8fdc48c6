"""Create the requests and request_tags tables.

Revision ID: 0001
Revises:
Created: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.Text(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_token_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("model_requested", sa.Text(), nullable=False),
        sa.Column("model_served", sa.Text()),
        sa.Column("model_priced", sa.Text()),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.Text()),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        # Exact cost: NUMERIC without a scale on PostgreSQL, decimal text on SQLite.
        sa.Column("cost_usd", sa.Numeric().with_variant(sa.Text(), "sqlite")),
        sa.Column("cost_nanousd", sa.BigInteger()),
        sa.Column("unpriced", sa.Boolean(), nullable=False),
        sa.Column("cost_breakdown", sa.Text(), nullable=False),
        sa.Column("service_tier_requested", sa.Text()),
        sa.Column("service_tier_served", sa.Text()),
        sa.Column("key_id", sa.Text()),
        sa.Column("team", sa.Text()),
        sa.Column("project", sa.Text()),
        sa.Column("user", sa.Text()),
        sa.Column("feature", sa.Text()),
        sa.Column("session", sa.Text()),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("cache_status", sa.Text()),
        sa.Column("upstream_ms", sa.Double()),
        sa.Column("overhead_ms", sa.Double()),
    )
    op.create_index("ix_requests_started_at", "requests", ["started_at"])
    op.create_index("ix_requests_feature", "requests", ["feature"])
    op.create_index("ix_requests_key_id", "requests", ["key_id"])
    op.create_index("ix_requests_session", "requests", ["session"])
    op.create_index("ix_requests_model_served", "requests", ["model_served"])
    op.create_index("ix_requests_model_requested", "requests", ["model_requested"])

    op.create_table(
        "request_tags",
        sa.Column(
            "request_id",
            sa.Text(),
            sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index("ix_request_tags_key_value", "request_tags", ["key", "value"])


def downgrade() -> None:
    op.drop_table("request_tags")
    op.drop_table("requests")
