"""The ledger tables, as SQLAlchemy Core metadata.

Alembic revisions under ``migrations/versions`` create this schema; a test
checks that the migrated database and this metadata agree.

Money: ``cost_usd`` is the exact cost. genai-prices can give costs that are
not a whole number of nano-dollars (a price of $0.0416666666666666 per
million tokens gives 22 fractional digits per token), so integer nano-dollars
alone would round. ``cost_usd`` is therefore NUMERIC without a scale on
PostgreSQL, which is exact at any precision, and TEXT on SQLite, which has no
exact decimal type. Reports add it with SUM on PostgreSQL and with an exact
decimal aggregate registered on each SQLite connection (see ``database.py``).
``cost_nanousd`` is the same cost rounded to a whole nano-dollar, half to
even, for tools that want plain integer sums; both are NULL when unpriced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from thrifty.errors import LedgerError

# Alembic's version table for the ledger's own revision chain.
VERSION_TABLE = "ledger_alembic_version"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, kept to the microsecond on both backends.

    PostgreSQL stores TIMESTAMP WITH TIME ZONE. SQLite stores fixed-width text
    in UTC without an offset, so text order is time order; the UTC offset is
    put back on read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise LedgerError(
                f"naive datetime {value.isoformat()} cannot be stored; "
                "pass a timezone-aware datetime (UTC)"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExactDecimal(sa.TypeDecorator[Decimal]):
    """An exact Decimal: NUMERIC on PostgreSQL, decimal text on SQLite."""

    impl = sa.Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> object:
        if value is None:
            return None
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.Text(), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("first_token_at", UTCDateTime()),
    sa.Column("ended_at", UTCDateTime()),
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
    sa.Column("cost_usd", ExactDecimal()),
    sa.Column("cost_nanousd", sa.BigInteger()),
    sa.Column("unpriced", sa.Boolean(), nullable=False),
    # Token class -> USD as decimal strings, JSON text.
    sa.Column("cost_breakdown", sa.Text(), nullable=False),
    sa.Column("service_tier_requested", sa.Text()),
    sa.Column("service_tier_served", sa.Text()),
    sa.Column("key_id", sa.Text()),
    sa.Column("team", sa.Text()),
    sa.Column("project", sa.Text()),
    sa.Column("user", sa.Text()),
    sa.Column("feature", sa.Text()),
    sa.Column("session", sa.Text()),
    # Tag key -> value as JSON text. request_tags contains the same pairs, for queries.
    sa.Column("tags", sa.Text(), nullable=False),
    sa.Column("cache_status", sa.Text()),
    sa.Column("upstream_ms", sa.Double()),
    sa.Column("overhead_ms", sa.Double()),
    # Feature name -> that feature's annotations of the request, JSON text.
    sa.Column("details", sa.Text(), nullable=False, server_default="{}"),
)

sa.Index("ix_requests_started_at", requests.c.started_at)
sa.Index("ix_requests_feature", requests.c.feature)
sa.Index("ix_requests_key_id", requests.c.key_id)
sa.Index("ix_requests_session", requests.c.session)
sa.Index("ix_requests_model_served", requests.c.model_served)
sa.Index("ix_requests_model_requested", requests.c.model_requested)

request_tags = sa.Table(
    "request_tags",
    metadata,
    sa.Column(
        "request_id",
        sa.Text(),
        sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

sa.Index("ix_request_tags_key_value", request_tags.c.key, request_tags.c.value)

# Pre-aggregated sums of ``requests``, so reports and the dashboard read a few
# rows per hour or day instead of every request (see ``thrifty.ledger.rollup``).
# ``resolution`` is "hour" or "day" and ``bucket`` the UTC start of that hour
# or day. ``group_key`` encodes the dimension columns, NULLs included, so that
# one primary key identifies a group on both backends. ``cost_usd`` adds the
# priced requests only and is 0, not NULL, when none was priced.
# ``cache_saved_usd`` adds the ``saved_usd`` the response cache notes in a
# hit's details: what the original, cached call cost. The columns of
# ROLLUP_SAVINGS_COUNT_COLUMNS and ROLLUP_SAVINGS_DECIMAL_COLUMNS add what
# ``thrifty.ledger.savings`` takes from each request for the Batch, Flex and
# response cache savings (revision 0004).
ROLLUP_DIMENSION_COLUMNS = (
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
ROLLUP_COUNT_COLUMNS = (
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
ROLLUP_SAVINGS_COUNT_COLUMNS = (
    "cache_unpriced_hits",
    "cache_embedding_requests",
    "batch_results",
    "flex_calls",
    "flex_fallbacks",
    "flex_rejections",
    "flex_served",
)
ROLLUP_SAVINGS_DECIMAL_COLUMNS = (
    "cache_embedding_usd",
    "batch_cost_usd",
    "batch_standard_cost_usd",
    "flex_cost_usd",
    "flex_standard_cost_usd",
)

request_rollups = sa.Table(
    "request_rollups",
    metadata,
    sa.Column("resolution", sa.Text(), primary_key=True),
    sa.Column("bucket", UTCDateTime(), primary_key=True),
    sa.Column("group_key", sa.Text(), primary_key=True),
    *(sa.Column(name, sa.Text()) for name in ROLLUP_DIMENSION_COLUMNS),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in ROLLUP_COUNT_COLUMNS),
    sa.Column("cost_usd", ExactDecimal(), nullable=False),
    sa.Column("cache_saved_usd", ExactDecimal(), nullable=False),
    *(
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
        for name in ROLLUP_SAVINGS_COUNT_COLUMNS
    ),
    *(
        sa.Column(name, ExactDecimal(), nullable=False, server_default="0")
        for name in ROLLUP_SAVINGS_DECIMAL_COLUMNS
    ),
)

# Histograms of the cost of one request, per feature and hour or day, for
# the dashboard's p95 cost per feature call (see ``thrifty.ledger.histogram``).
# ``bin`` is ``cost_bin`` of a priced request's ``cost_nanousd`` and
# ``requests`` the number of priced requests in it. ``feature_key`` is
# ``group_key`` of the feature, so that NULL features fit the primary key.
cost_histograms = sa.Table(
    "cost_histograms",
    metadata,
    sa.Column("resolution", sa.Text(), primary_key=True),
    sa.Column("bucket", UTCDateTime(), primary_key=True),
    sa.Column("feature_key", sa.Text(), primary_key=True),
    sa.Column("bin", sa.Integer(), primary_key=True),
    sa.Column("feature", sa.Text()),
    sa.Column("requests", sa.BigInteger(), nullable=False),
)

# Sums of the request rows kept per day and user, and per session, for the
# dashboard's users, top sessions and cost per conversation (see
# ``thrifty.ledger.spender_rollups``).
SPENDER_COUNT_COLUMNS = (
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

# ``bucket`` is the UTC day and ``user_key`` is ``group_key`` of the user, so
# that requests without a user fit the primary key. The rows are not split by
# feature, team or key: users spread over many of them, and a row per
# combination would be nearly one row per request.
user_rollups = sa.Table(
    "user_rollups",
    metadata,
    sa.Column("bucket", UTCDateTime(), primary_key=True),
    sa.Column("user_key", sa.Text(), primary_key=True),
    sa.Column("user", sa.Text()),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in SPENDER_COUNT_COLUMNS),
    sa.Column("cost_usd", ExactDecimal(), nullable=False),
)

# One row per session: the start of its first and last request and the sums
# of all its requests. Requests without a session have no row.
session_rollups = sa.Table(
    "session_rollups",
    metadata,
    sa.Column("session", sa.Text(), primary_key=True),
    sa.Column("first_at", UTCDateTime(), nullable=False),
    sa.Column("last_at", UTCDateTime(), nullable=False),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in SPENDER_COUNT_COLUMNS),
    sa.Column("cost_usd", ExactDecimal(), nullable=False),
)
sa.Index("ix_session_rollups_first_at", session_rollups.c.first_at)

# The cost figures `thrifty reprice` replaced, one row per request and run:
# the request's earlier model_priced, cost and breakdown, and the new cost
# with the prices that gave it. Created by the "pricing" branch of migrations.
request_cost_history = sa.Table(
    "request_cost_history",
    metadata,
    sa.Column(
        "request_id",
        sa.Text(),
        sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("repriced_at", UTCDateTime(), primary_key=True),
    sa.Column("model_priced", sa.Text()),
    sa.Column("cost_usd", ExactDecimal()),
    sa.Column("cost_nanousd", sa.BigInteger()),
    sa.Column("unpriced", sa.Boolean(), nullable=False),
    # Token class -> USD as decimal strings, JSON text, as in requests.
    sa.Column("cost_breakdown", sa.Text(), nullable=False),
    sa.Column("new_cost_usd", ExactDecimal()),
    sa.Column("price_source", sa.Text()),
)
