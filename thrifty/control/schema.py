"""The control plane's tables in the ledger database.

They have their own metadata and their own Alembic branch (``control``), so
the requests schema and these tables change independently. Every change to
keys, budgets, rate limits or cutoffs increments ``control_state.epoch`` in
the same transaction; replicas poll it to know when to reload.
"""

from __future__ import annotations

import sqlalchemy as sa

from thrifty.ledger.schema import ExactDecimal, UTCDateTime

metadata = sa.MetaData()

keys = sa.Table(
    "control_keys",
    metadata,
    sa.Column("key_id", sa.Text(), primary_key=True),
    sa.Column("key_hash", sa.Text(), nullable=False, unique=True),
    sa.Column("prefix", sa.Text(), nullable=False),
    sa.Column("name", sa.Text()),
    sa.Column("team", sa.Text()),
    sa.Column("project", sa.Text()),
    sa.Column("user", sa.Text()),
    sa.Column("feature", sa.Text()),
    # JSON text: an object of tags, and lists of allowed models, providers and tiers.
    sa.Column("tags", sa.Text(), nullable=False),
    sa.Column("allowed_models", sa.Text(), nullable=False),
    sa.Column("allowed_providers", sa.Text(), nullable=False),
    sa.Column("allowed_tiers", sa.Text(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

budgets = sa.Table(
    "control_budgets",
    metadata,
    sa.Column("budget_id", sa.Text(), primary_key=True),
    sa.Column("scope", sa.Text(), nullable=False, index=True),
    sa.Column("limit_usd", ExactDecimal(), nullable=False),
    sa.Column("period", sa.Text(), nullable=False),
    # JSON text: a list of decimal strings, or NULL for the configured thresholds.
    sa.Column("thresholds", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

rate_limits = sa.Table(
    "control_rate_limits",
    metadata,
    sa.Column("scope", sa.Text(), primary_key=True),
    sa.Column("rpm", sa.Integer()),
    sa.Column("tpm", sa.BigInteger()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

cutoffs = sa.Table(
    "control_cutoffs",
    metadata,
    sa.Column("scope", sa.Text(), primary_key=True),
    sa.Column("reason", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

audit = sa.Table(
    "control_audit",
    metadata,
    sa.Column("audit_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    # JSON text with the change's details; never a key's secret.
    sa.Column("details", sa.Text(), nullable=False),
)

state = sa.Table(
    "control_state",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

EPOCH = "epoch"
