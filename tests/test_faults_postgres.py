"""PostgreSQL unreachable for 30 s under load: requests flow, records wait in the spool.

The gateway reaches the shared test PostgreSQL through a TCP proxy of the
test's own, which the test cuts (closing every connection and rejecting new
ones) and then restores. The gateway has no fail-closed mode for the ledger:
the spool is what keeps metering exact while the database is away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.gateway_support import running_gateway
from tests.ledger_support import postgres_schema_url
from tests.tcp_proxy import TcpProxy, tcp_proxy

CHAT = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"authorization": "Bearer sk", "content-type": "application/json"}
OUTAGE_S = 30.0
WORKERS = 4


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    yield from postgres_schema_url(postgres_url)


class Load:
    """Chat completions from a few workers; keeps every response's status, id and cost."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, int, str | None, str | None]] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(WORKERS)))

    def stop(self) -> None:
        self._stop.set()

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            response = await client.post(
                f"{self.url}/v1/chat/completions", content=CHAT, headers=HEADERS
            )
            self.results.append(
                (
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("x-thrifty-request-id"),
                    response.headers.get("x-thrifty-cost-usd"),
                )
            )
            await asyncio.sleep(0.02)


def _spooled_lines(spool_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in spool_dir.glob("spool*.jsonl"))


def _ledger_rows(schema_url: str) -> list[tuple[str, Decimal | None]]:
    engine = sa.create_engine(make_url(schema_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT request_id, cost_usd FROM requests")).all()
    finally:
        engine.dispose()
    return [(row.request_id, row.cost_usd) for row in rows]


async def _drive(
    load: Load, proxy: TcpProxy, spool_dir: Path, *, stall: bool = False
) -> tuple[float, float, int]:
    """Run the load through an outage of OUTAGE_S; return its times and the spool's size."""
    task = asyncio.ensure_future(load.run())
    await asyncio.sleep(2)
    cut_at = time.monotonic()
    await asyncio.to_thread(proxy.stall if stall else proxy.cut)
    await asyncio.sleep(OUTAGE_S)
    spooled = _spooled_lines(spool_dir)
    await asyncio.to_thread(proxy.restore)
    restored_at = time.monotonic()
    await asyncio.sleep(2)
    load.stop()
    await task
    return cut_at, restored_at, spooled


@pytest.mark.parametrize("stall", [False, True], ids=["cut", "stall"])
def test_postgres_outage_loses_no_record(tmp_path: Path, schema_url: str, stall: bool) -> None:
    real = make_url(schema_url)
    with tcp_proxy(real.port or 5432) as proxy:
        proxied = real.set(port=proxy.port).render_as_string(hide_password=False)
        with running_gateway(tmp_path, db_url=proxied) as gateway:
            load = Load(gateway.url)
            cut_at, restored_at, spooled = asyncio.run(
                _drive(load, proxy, gateway.config.spool_dir, stall=stall)
            )
            served = {rid: cost for _, status, rid, cost in load.results if status == 200}
            deadline = time.monotonic() + 20
            rows = _ledger_rows(schema_url)
            while len(rows) < len(served) and time.monotonic() < deadline:
                time.sleep(0.2)
                rows = _ledger_rows(schema_url)

    statuses = {status for _, status, _, _ in load.results}
    during = [r for r in load.results if cut_at + 1 < r[0] < restored_at]
    assert statuses == {200}
    assert len(during) > 50
    assert spooled >= len(during)
    assert len(rows) == len(served)
    assert {rid for rid, _ in rows} == set(served)
    for rid, cost in rows:
        assert cost == Decimal(served[rid] or "nan")
