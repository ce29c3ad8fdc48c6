"""Create the batch_jobs, batch_parts and batch_requests tables (branch "batch").

Revision ID: b001
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b001"
down_revision = "0001"
branch_labels = ("batch",)
depends_on = None


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "batch_jobs",
        sa.Column("job_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text()),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_kind", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("api_key_env", sa.Text()),
        sa.Column("pricing_provider", sa.Text()),
        sa.Column("input_path", sa.Text()),
        sa.Column("work_dir", sa.Text()),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("max_rounds", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        _timestamp("deadline_at"),
        _timestamp("ended_at"),
        sa.Column("team", sa.Text()),
        sa.Column("project", sa.Text()),
        sa.Column("user", sa.Text()),
        sa.Column("feature", sa.Text()),
        sa.Column("session", sa.Text()),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("message", sa.Text()),
        sa.Column("lease_owner", sa.Text()),
        _timestamp("lease_until"),
    )
    op.create_index("ix_batch_jobs_created_at", "batch_jobs", ["created_at"])
    op.create_index("ix_batch_jobs_status", "batch_jobs", ["status"])

    op.create_table(
        "batch_parts",
        sa.Column("part_id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id",
            sa.Text(),
            sa.ForeignKey("batch_jobs.job_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("model", sa.Text()),
        sa.Column("file_path", sa.Text()),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("provider_status", sa.Text()),
        sa.Column("provider_file_id", sa.Text()),
        sa.Column("provider_batch_id", sa.Text()),
        sa.Column("output_file_id", sa.Text()),
        sa.Column("error_file_id", sa.Text()),
        sa.Column("results_url", sa.Text()),
        sa.Column("processed_count", sa.BigInteger(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("submitted_at"),
        _timestamp("ended_at"),
        sa.Column("message", sa.Text()),
    )
    op.create_index("ix_batch_parts_job_id", "batch_parts", ["job_id", "sequence"])
    op.create_index("ix_batch_parts_provider_batch_id", "batch_parts", ["provider_batch_id"])

    op.create_table(
        "batch_requests",
        sa.Column(
            "job_id",
            sa.Text(),
            sa.ForeignKey("batch_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("custom_id", sa.Text(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Text()),
        sa.Column("source_part_id", sa.Text(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("source_length", sa.BigInteger(), nullable=False),
        sa.Column("error_code", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("result_part_id", sa.Text()),
        sa.Column("result_offset", sa.BigInteger()),
        sa.Column("result_length", sa.BigInteger()),
    )
    op.create_index("ix_batch_requests_position", "batch_requests", ["job_id", "position"])
    op.create_index("ix_batch_requests_part", "batch_requests", ["part_id"])


def downgrade() -> None:
    op.drop_table("batch_requests")
    op.drop_table("batch_parts")
    op.drop_table("batch_jobs")
