"""Records and databases for the ledger tests: SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from thrifty.ledger.record import RequestRecord

BACKENDS = ["sqlite", "postgresql"]

STARTED_AT = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)

_BASE = RequestRecord(
    request_id="base",
    started_at=STARTED_AT,
    provider="openai",
    endpoint="/v1/chat/completions",
    model_requested="gpt-4o-mini",
    model_served="gpt-4o-mini-2024-07-18",
    model_priced="gpt-4o-mini",
    http_status=200,
    input_tokens=1200,
    output_tokens=300,
    cost_usd=Decimal("0.00036"),
    cost_breakdown={"input": Decimal("0.00018"), "output": Decimal("0.00018")},
    service_tier_served="default",
)


def make_record(request_id: str, **changes: Any) -> RequestRecord:
    """A priced chat completion record, with ``changes`` applied."""
    return replace(_BASE, request_id=request_id, **changes)


def unpriced(request_id: str, **changes: Any) -> RequestRecord:
    """A record of a model without a price."""
    return make_record(request_id, cost_usd=None, unpriced=True, cost_breakdown={}, **changes)


def ledger_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield a fresh ledger URL for ``request.param``: a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger' / 'thrifty.db'}"
        return
    base_url = request.getfixturevalue("postgres_url")
    yield from postgres_schema_url(base_url)


def postgres_schema_url(base_url: str) -> Iterator[str]:
    """Yield a URL whose search_path is a new schema, dropped afterwards.

    A schema per test lets parallel runs share the one test database.
    """
    schema = f"thrifty_test_{uuid.uuid4().hex[:12]}"
    conninfo = make_url(base_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
