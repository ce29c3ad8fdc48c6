"""A Redis restart under load: budgets keep their spend, and the ledger has one record per call.

The gateway's budget counters live in a private redis-server without
persistence, so the restart loses every key; the control plane rebuilds each
counter from the ledger when it finds it missing.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.control_support import RedisServer, Replica, chat_cost, replicas
from thrifty.control.counters import BudgetCharge, BudgetLevel, MemoryCounters
from thrifty.control.model import Budget
from thrifty.control.periods import window_at
from thrifty.control.redis_counters import RedisCounters
from thrifty.control.scopes import Scope

MESSAGES = [{"role": "user", "content": "Name three lakes."}]
MAX_TOKENS = 30
BUDGET_REQUESTS = 20
WORKERS = 4


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; this test restarts a Redis of its own")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _load(replica: Replica, key: str, redis: RedisServer) -> list[tuple[int, str]]:
    """Send requests until the budget rejects one; restart Redis after the 6th success."""
    results: list[tuple[int, str]] = []
    restarted = asyncio.Event()
    body = {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS, "messages": MESSAGES}

    def answered() -> int:
        return sum(1 for status, _ in results if status != 503)

    async def worker(client: httpx.AsyncClient) -> None:
        while answered() < 3 * BUDGET_REQUESTS:
            response = await client.post(
                f"{replica.url}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key}"},
            )
            results.append((response.status_code, response.headers.get("x-thrifty-cost-usd", "")))
            if response.status_code == 429:
                return
            if response.status_code == 503:
                # Fail-closed while Redis restarts: wait for it rather than spin.
                await asyncio.sleep(0.05)
            successes = sum(1 for status, _ in results if status == 200)
            if successes >= 6 and not restarted.is_set():
                restarted.set()
                await asyncio.to_thread(redis.stop)
                await asyncio.to_thread(redis.start)

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(WORKERS)))
    assert restarted.is_set()
    return results


def _ledger_costs(db_url: str, key_id: str, expected: int) -> list[Decimal]:
    engine = sa.create_engine(db_url)
    deadline = time.monotonic() + 10
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text("SELECT cost_usd FROM requests WHERE key_id = :key"), {"key": key_id}
                ).all()
            if len(rows) >= expected or time.monotonic() > deadline:
                return [Decimal(str(row.cost_usd)) for row in rows]
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.mark.parametrize("on_failure", ["open", "closed"])
def test_redis_restart_keeps_budget_spend(
    tmp_path: Path, sandbox_url: str, private_redis: RedisServer, on_failure: str
) -> None:
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    redis_settings = {
        "url": private_redis.url,
        "prefix": "thrifty-fault:",
        "on_failure": on_failure,
    }
    control = {"redis": redis_settings}
    with replicas(tmp_path, sandbox_url=sandbox_url, db_url=db_url, control=control, count=1) as (
        replica,
    ):
        limit = cost * Decimal(BUDGET_REQUESTS) + cost / 2
        key = replica.create_key(budgets=[{"limit_usd": str(limit), "period": "monthly"}])
        results = asyncio.run(_load(replica, key["key"], private_redis))
        served = [cost_usd for status, cost_usd in results if status == 200]
        rejected = [status for status, _ in results if status != 200]
        costs = _ledger_costs(db_url, key["key_id"], len(served))
        budget = replica.admin("GET", f"/budgets/{key['budgets'][0]['budget_id']}")

    # NOTE: a record written to the ledger while a counter is being rebuilt
    # can be counted twice (see ControlPlane's rebuild), which rejects up to
    # a couple of requests early but never lets the budget overshoot.
    assert BUDGET_REQUESTS - 2 <= len(served) <= BUDGET_REQUESTS
    assert 429 in rejected
    # Failing open admits requests while Redis is down; failing closed rejects them.
    assert set(rejected) <= ({429} if on_failure == "open" else {429, 503})
    assert sorted(costs) == sorted(Decimal(value) for value in served)
    assert sum(costs) == cost * len(served)
    assert Decimal(budget["spent_usd"]) >= cost * len(served)
    assert Decimal(budget["spent_usd"]) <= limit


def _charge() -> BudgetCharge:
    now = datetime(2026, 3, 14, tzinfo=UTC)
    budget = Budget("bud_test", Scope("key", "key_test"), Decimal(1), "monthly", now)
    return BudgetCharge(budget, window_at("monthly", now), limit=10**9, amount=100)


@pytest.fixture(params=["memory", "redis"])
async def counters(
    request: pytest.FixtureRequest,
) -> AsyncIterator[MemoryCounters | RedisCounters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    server = request.getfixturevalue("private_redis")
    redis_counters = RedisCounters(server.url, prefix=f"counted-{uuid.uuid4().hex[:8]}:")
    yield redis_counters
    await redis_counters.close()


async def test_rebuilt_counter_skips_counted_settle(
    counters: MemoryCounters | RedisCounters,
) -> None:
    charge = _charge()
    await counters.load(charge, {0: 500}, counted=["req-in-rebuild"])
    counted = await counters.settle("req-in-rebuild", [(charge, 500)], [], 0.0)
    later = await counters.settle("req-after-rebuild", [(charge, 70)], [], 0.0)
    again = await counters.settle("req-in-rebuild", [(charge, 500)], [], 0.0)
    assert counted == [BudgetLevel(500, 0)]
    assert later == [BudgetLevel(570, 0)]
    # The mark is used once: a second settlement of the same id is counted.
    assert again == [BudgetLevel(1070, 0)]


async def test_rebuild_adds_settled_while_missing(
    counters: MemoryCounters | RedisCounters,
) -> None:
    charge = _charge()
    missing = await counters.settle("req-early", [(charge, 40)], [], 0.0)
    seen = await counters.settle("req-seen", [(charge, 300)], [], 0.0)
    assert missing == [None]
    assert seen == [None]
    # The rebuild read req-seen's record (in its 500) but not req-early's.
    await counters.load(charge, {0: 500}, counted=["req-seen", "req-pending"])
    levels = await counters.levels([charge], 0.0)
    pending = await counters.settle("req-pending", [(charge, 60)], [], 0.0)
    assert levels == [BudgetLevel(540, 0)]
    assert pending == [BudgetLevel(540, 0)]
