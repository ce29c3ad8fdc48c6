"""Fixtures shared across the test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.services import POSTGRES_URL, REDIS_URL, require_port
from thrifty.sandbox import SandboxServer


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL; skips (or fails in CI) when the server is down."""
    url = make_url(POSTGRES_URL)
    require_port("PostgreSQL", url.host or "127.0.0.1", url.port or 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL; skips (or fails in CI) when the server is down."""
    require_port("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """A provider sandbox with default settings on a free loopback port: ``http://127.0.0.1:PORT``.

    It lives for the whole session, so its prompt caches do too: a test that
    checks caching must send prompts no other test sends.
    """
    with SandboxServer() as server:
        yield server.url
