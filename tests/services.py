"""Reaching the PostgreSQL and Redis servers that some tests need.

On a machine without them those tests skip, saying why. CI sets
THRIFTY_REQUIRE_SERVICES=1, which turns each such skip into a failure, so
the tests that need the services always run there.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get(
    "THRIFTY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("THRIFTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def services_required() -> bool:
    return os.environ.get("THRIFTY_REQUIRE_SERVICES") == "1"


def require_port(name: str, host: str, port: int) -> None:
    """Skip the calling test (or fail it under THRIFTY_REQUIRE_SERVICES=1) if nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})"
        if services_required():
            pytest.fail(f"{message}; THRIFTY_REQUIRE_SERVICES=1 requires it")
        pytest.skip(f"{message}; start it to run this test")


def require_shared_data(relative: str) -> Path:
    """Return a file of the shared public data, or skip when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"shared data file {path} is absent; these tests read the public data sets there"
        )
    return path


CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> Path:
    """Return Debian's Chromium, or skip (fail under THRIFTY_REQUIRE_SERVICES=1) when absent.

    Install it with `apt-get install -y chromium`; the Python playwright
    package drives it, and `playwright install` is never needed.
    """
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "the playwright package is not installed"
    else:
        if CHROMIUM.exists():
            return CHROMIUM
        message = f"{CHROMIUM} is absent (apt-get install -y chromium)"
    if services_required():
        pytest.fail(f"{message}; THRIFTY_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message}; browser tests need it")
