"""The batch tables in the ledger database, as SQLAlchemy Core metadata.

The revision ``b001`` (branch ``batch``) creates them. A job is one logical
batch, and its parts are the provider batches it was split into, over one
or more rounds. Each request of the job has one row, which follows it from
part to part until it has a final result.

Job statuses: ``submitting`` (parts not all sent yet), ``in_progress``,
``cancelling``, and the final ``completed`` (every request has a final
result), ``cancelled`` and ``failed`` (nothing could be submitted).

Request statuses: ``pending`` (in a part not sent yet), ``submitted``,
``retry`` (expired or failed with a retryable error, waiting for the next
round), and the final ``succeeded``, ``failed``, ``expired`` and ``cancelled``.
"""

from __future__ import annotations

import sqlalchemy as sa

from thrifty.ledger.schema import UTCDateTime

metadata = sa.MetaData()

JOB_FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})
REQUEST_FINAL_STATUSES = frozenset({"succeeded", "failed", "expired", "cancelled"})

batch_jobs = sa.Table(
    "batch_jobs",
    metadata,
    sa.Column("job_id", sa.Text(), primary_key=True),
    sa.Column("name", sa.Text()),
    # "manager" for jobs submitted with Thrifty, "gateway" for batches an SDK
    # client created through the gateway.
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("provider", sa.Text(), nullable=False),
    sa.Column("provider_kind", sa.Text(), nullable=False),
    sa.Column("base_url", sa.Text(), nullable=False),
    # The variable the provider key is read from; the key itself is never stored.
    sa.Column("api_key_env", sa.Text()),
    sa.Column("pricing_provider", sa.Text()),
    sa.Column("input_path", sa.Text()),
    sa.Column("work_dir", sa.Text()),
    sa.Column("request_count", sa.BigInteger(), nullable=False),
    sa.Column("round", sa.Integer(), nullable=False),
    sa.Column("max_rounds", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deadline_at", UTCDateTime()),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("team", sa.Text()),
    sa.Column("project", sa.Text()),
    sa.Column("user", sa.Text()),
    sa.Column("feature", sa.Text()),
    sa.Column("session", sa.Text()),
    # Tag key -> value, JSON text.
    sa.Column("tags", sa.Text(), nullable=False),
    # Options of the job (metadata sent with each batch...), JSON text.
    sa.Column("options", sa.Text(), nullable=False),
    sa.Column("message", sa.Text()),
    # The process working on the job, and until when its claim holds.
    sa.Column("lease_owner", sa.Text()),
    sa.Column("lease_until", UTCDateTime()),
)
sa.Index("ix_batch_jobs_created_at", batch_jobs.c.created_at)
sa.Index("ix_batch_jobs_status", batch_jobs.c.status)

batch_parts = sa.Table(
    "batch_parts",
    metadata,
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
    # "pending", "uploaded" (OpenAI input file sent), "sending" (batch creation
    # sent, its id not stored yet), "submitted", "ended", then "collected" once
    # its results are recorded. A part the provider rejected is "failed".
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("provider_status", sa.Text()),
    sa.Column("provider_file_id", sa.Text()),
    sa.Column("provider_batch_id", sa.Text()),
    sa.Column("output_file_id", sa.Text()),
    sa.Column("error_file_id", sa.Text()),
    sa.Column("results_url", sa.Text()),
    sa.Column("processed_count", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("submitted_at", UTCDateTime()),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("message", sa.Text()),
)
sa.Index("ix_batch_parts_job_id", batch_parts.c.job_id, batch_parts.c.sequence)
sa.Index("ix_batch_parts_provider_batch_id", batch_parts.c.provider_batch_id)

batch_requests = sa.Table(
    "batch_requests",
    metadata,
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
    # The part the request is in now, and the first part, whose file keeps its line.
    sa.Column("part_id", sa.Text()),
    sa.Column("source_part_id", sa.Text(), nullable=False),
    sa.Column("source_offset", sa.BigInteger(), nullable=False),
    sa.Column("source_length", sa.BigInteger(), nullable=False),
    sa.Column("error_code", sa.Text()),
    sa.Column("error_message", sa.Text()),
    # Where the request's last result line is in its part's results file.
    sa.Column("result_part_id", sa.Text()),
    sa.Column("result_offset", sa.BigInteger()),
    sa.Column("result_length", sa.BigInteger()),
)
sa.Index("ix_batch_requests_position", batch_requests.c.job_id, batch_requests.c.position)
sa.Index("ix_batch_requests_part", batch_requests.c.part_id)
