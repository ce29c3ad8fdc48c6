"""Two gateway processes sharing PostgreSQL and Redis: budgets, limits, cutoffs, keys."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
import sqlalchemy as sa
from openai.types.chat import ChatCompletionMessageParam

from tests.control_support import (
    MASTER_KEY,
    RedisServer,
    Replica,
    chat_cost,
    delete_prefix,
    new_redis_prefix,
    replicas,
    worker_gateway,
)
from tests.ledger_support import postgres_schema_url
from thrifty.control.scopes import Scope
from thrifty.control.store import ControlStore
from thrifty.ledger.database import create_ledger_engine
from thrifty.tokens import count_chat_messages

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three rivers."}]
MAX_TOKENS = 40
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def db_url(postgres_url: str) -> Iterator[str]:
    yield from postgres_schema_url(postgres_url)


@pytest.fixture(scope="module")
def store(db_url: str) -> Iterator[ControlStore]:
    engine = create_ledger_engine(db_url)
    yield ControlStore(engine)
    engine.dispose()


def _pair(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_url: str,
    db_url: str,
    redis_url: str,
    **control: Any,
) -> Iterator[list[Replica]]:
    prefix = new_redis_prefix()
    settings = {"redis": {"url": redis_url, "prefix": prefix}, "refresh_interval_s": 0.2, **control}
    try:
        with replicas(
            tmp_path_factory.mktemp("replicas"),
            sandbox_url=sandbox_url,
            db_url=db_url,
            control=settings,
        ) as pair:
            yield pair
    finally:
        delete_prefix(redis_url, prefix)


@pytest.fixture(scope="module")
def private_redis(redis_url: str) -> Iterator[RedisServer | None]:
    """A Redis server of this module's own, which one test restarts; None without redis-server."""
    if shutil.which("redis-server") is None:
        yield None
        return
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_url: str,
    db_url: str,
    redis_url: str,
    private_redis: RedisServer | None,
) -> Iterator[list[Replica]]:
    url = redis_url if private_redis is None else private_redis.url
    yield from _pair(tmp_path_factory, sandbox_url, db_url, url)


@pytest.fixture(scope="module")
def strict_pair(
    tmp_path_factory: pytest.TempPathFactory, sandbox_url: str, db_url: str, redis_url: str
) -> Iterator[list[Replica]]:
    yield from _pair(tmp_path_factory, sandbox_url, db_url, redis_url, budget_mode="fail_closed")


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, sandbox_url: str, db_url: str, redis_url: str
) -> Iterator[Replica]:
    """One ``thrifty serve --workers 2``: two processes behind one port."""
    prefix = new_redis_prefix()
    control = {"redis": {"url": redis_url, "prefix": prefix}, "refresh_interval_s": 0.2}
    try:
        with worker_gateway(
            tmp_path_factory.mktemp("workers"),
            sandbox_url=sandbox_url,
            db_url=db_url,
            control=control,
            workers=2,
        ) as gateway:
            yield gateway
    finally:
        delete_prefix(redis_url, prefix)


def _client(replica: Replica, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{replica.url}/v1", api_key=key, max_retries=0)


async def _burst(
    pair: list[Replica], key: str, count: int, max_tokens: list[int] | None = None
) -> list[tuple[int, str]]:
    """Send ``count`` chat completions at once, alternating replicas; return (status, text)."""
    clients = [_client(replica, key) for replica in pair]

    async def one(index: int) -> tuple[int, str]:
        client = clients[index % len(clients)]
        limit = MAX_TOKENS if max_tokens is None else max_tokens[index]
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=limit,
            )
        except openai.APIStatusError as exc:
            return exc.status_code, exc.message
        return 200, str(limit)

    try:
        return await asyncio.gather(*(one(index) for index in range(count)))
    finally:
        for client in clients:
            await client.close()


def _spend(store: ControlStore, key_id: str, requests: int) -> Decimal:
    """Wait until the ledger contains ``requests`` records of a key; return their cost."""
    deadline = time.monotonic() + 10
    while True:
        with store.engine.connect() as connection:
            stored = connection.execute(
                sa.text("SELECT count(*) FROM requests WHERE key_id = :key"), {"key": key_id}
            ).scalar_one()
        if stored >= requests or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert stored == requests
    return store.spend(Scope("key", key_id), None, None)


async def test_budget_holds_under_concurrent_burst(
    pair: list[Replica], store: ControlStore
) -> None:
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    limit = cost * Decimal("10.5")
    key = pair[0].create_key(budgets=[{"limit_usd": str(limit), "period": "monthly"}])

    results = await _burst(pair, key["key"], 50)

    admitted = [status for status, _ in results if status == 200]
    refused = [text for status, text in results if status == 429]
    assert len(admitted) == 10
    assert len(refused) == 40
    budget_id = key["budgets"][0]["budget_id"]
    assert all(f"budget {budget_id}" in text for text in refused)
    # The sandbox's usage equals the estimate here, so the bound (limit plus the
    # estimates' shortfall of the reservations in flight) is the limit itself.
    spent = _spend(store, key["key_id"], 10)
    assert spent == cost * 10
    assert spent <= limit


async def test_budget_holds_across_workers(workers: Replica, store: ControlStore) -> None:
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    limit = cost * Decimal("11.5")
    key = workers.create_key(budgets=[{"limit_usd": str(limit), "period": "monthly"}])

    results = await _burst([workers], key["key"], 50)

    assert sorted(status for status, _ in results) == [200] * 11 + [429] * 39
    assert _spend(store, key["key_id"], 11) == cost * 11
    # Each worker's /metrics counts the requests it served. Two processes
    # answer, and their counts add up to the 11 admitted. Which worker won
    # the budget's requests depends on timing, so one of them may have served
    # none of the 11 (its requests were the rejected ones).
    served = _served_per_worker(workers)
    assert len(served) == 2
    assert sum(served) == 11


def _served_per_worker(gateway: Replica) -> set[int]:
    """Read /metrics over fresh connections, which the kernel spreads over the workers."""
    counts = set()
    for _ in range(40):
        text = httpx.get(f"{gateway.url}/metrics", headers=MASTER, timeout=10).text
        lines = [line for line in text.splitlines() if line.startswith("thrifty_requests_total{")]
        counts.add(sum(int(float(line.rsplit(" ", 1)[1])) for line in lines))
    return counts


async def test_fail_closed_never_exceeds(strict_pair: list[Replica], store: ControlStore) -> None:
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    limit = cost * Decimal("10.5")
    key = strict_pair[0].create_key(budgets=[{"limit_usd": str(limit), "period": "monthly"}])

    results = await _burst(strict_pair, key["key"], 50)

    admitted = [status for status, _ in results if status == 200]
    assert 1 <= len(admitted) < 10
    assert all(status in (200, 429) for status, _ in results)
    spent = _spend(store, key["key_id"], len(admitted))
    assert spent <= limit


async def test_tokens_per_minute_admit_only_what_fits(pair: list[Replica]) -> None:
    prompt = count_chat_messages(MESSAGES, "gpt-4o-mini")
    sizes = [58, 80, 175, 175, 175]
    key = pair[1].create_key(tpm=100)

    results = await _burst(pair, key["key"], 5, [size - prompt for size in sizes])

    admitted = [sizes[index] for index, (status, _) in enumerate(results) if status == 200]
    assert len(admitted) == 1
    assert admitted[0] in (58, 80)
    assert sum(admitted) <= 100
    for index in (2, 3, 4):
        status, text = results[index]
        assert status == 429
        assert "100 tokens per minute" in text


async def test_team_budget_applies_to_key(pair: list[Replica]) -> None:
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    team = f"growth-{time.monotonic_ns()}"
    budget = pair[0].admin(
        "POST",
        "/budgets",
        {"scope": f"team:{team}", "limit_usd": str(cost * Decimal("2.5")), "period": "daily"},
    )
    key = pair[0].create_key(team=team)

    statuses = await _sequential(pair, key["key"], 3)
    assert statuses == [200, 200, 429]
    client = _client(pair[1], key["key"])
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS
        )
    await client.close()
    assert f"budget {budget['budget_id']} (team:{team}, daily)" in refused.value.message


def test_cutoff_reaches_other_replica_within_a_second(pair: list[Replica]) -> None:
    feature = f"cutoff-{time.monotonic_ns()}"
    key = pair[0].create_key(feature=feature)
    client = openai.OpenAI(base_url=f"{pair[1].url}/v1", api_key=key["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)

    pair[0].admin("POST", "/cutoffs", {"scope": f"feature:{feature}", "reason": "incident 7"})
    started = time.monotonic()
    refusal = None
    while refusal is None:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)
        except openai.PermissionDeniedError as exc:
            refusal = exc.message
        assert time.monotonic() - started < 1.0
    assert "incident 7" in refusal

    pair[0].admin("POST", "/cutoffs/off", {"scope": f"feature:{feature}"})
    deadline = time.monotonic() + 1.0
    while True:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)
            break
        except openai.PermissionDeniedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    audit = pair[1].admin("GET", "/audit")["entries"]
    actions = [(entry["action"], entry["target"]) for entry in audit[:2]]
    assert actions == [("cutoff.off", f"feature:{feature}"), ("cutoff.on", f"feature:{feature}")]


def test_revoked_key_refused_on_other_replica(pair: list[Replica]) -> None:
    key = pair[0].create_key()
    client = openai.OpenAI(base_url=f"{pair[1].url}/v1", api_key=key["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)

    pair[0].admin("POST", f"/keys/{key['key_id']}/revoke")

    with pytest.raises(openai.AuthenticationError, match=f"{key['key_id']} was revoked"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)
    models = httpx.get(
        f"{pair[1].url}/v1/models", headers={"authorization": f"Bearer {key['key']}"}
    )
    assert models.status_code == 401


def test_expired_key_refused(pair: list[Replica]) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    key = pair[0].create_key(expires_at=past)
    client = openai.OpenAI(base_url=f"{pair[1].url}/v1", api_key=key["key"], max_retries=0)

    with pytest.raises(openai.AuthenticationError, match="expired at"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)


def test_model_limit_holds_on_every_endpoint(pair: list[Replica]) -> None:
    key = pair[0].create_key(allowed_models=["gpt-4o-mini"])
    client = openai.OpenAI(base_url=f"{pair[1].url}/v1", api_key=key["key"], max_retries=0)
    claude = anthropic.Anthropic(base_url=pair[1].url, api_key=key["key"], max_retries=0)

    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4)
    with pytest.raises(openai.PermissionDeniedError, match="may not call model 'gpt-4o'"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4)
    with pytest.raises(openai.PermissionDeniedError, match=r"may not call model 'gpt-4\.1'"):
        client.responses.create(model="gpt-4.1", input="hello", max_output_tokens=16)
    with pytest.raises(openai.PermissionDeniedError, match="text-embedding-3-small"):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    with pytest.raises(anthropic.PermissionDeniedError, match="claude-haiku-4-5"):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )

    line = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", '
    line += b'"body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}\n'
    with pytest.raises(openai.PermissionDeniedError, match="may not call model 'gpt-4o'"):
        client.files.create(file=("batch.jsonl", io.BytesIO(line)), purpose="batch")
    with pytest.raises(openai.PermissionDeniedError, match="unreadable input file"):
        client.batches.create(
            input_file_id="file-unknown",
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
    with pytest.raises(anthropic.PermissionDeniedError, match="claude-haiku-4-5"):
        claude.messages.batches.create(
            requests=[
                {
                    "custom_id": "1",
                    "params": {
                        "model": "claude-haiku-4-5",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                }
            ]
        )


async def test_redis_restart_does_not_reset_budget(
    pair: list[Replica], private_redis: RedisServer | None, store: ControlStore
) -> None:
    if private_redis is None:
        pytest.skip("redis-server is not installed; this test restarts a Redis of its own")
    cost = chat_cost(MESSAGES, MAX_TOKENS)
    key = pair[0].create_key(
        budgets=[{"limit_usd": str(cost * Decimal("5.5")), "period": "monthly"}]
    )
    first = await _sequential(pair, key["key"], 3)
    assert first == [200, 200, 200]
    assert _spend(store, key["key_id"], 3) == cost * 3

    private_redis.stop()
    private_redis.start()

    after = await _sequential(pair, key["key"], 5)
    assert after == [200, 200, 429, 429, 429]
    assert _spend(store, key["key_id"], 5) == cost * 5


async def _sequential(pair: list[Replica], key: str, count: int) -> list[int]:
    statuses = []
    for index in range(count):
        client = _client(pair[index % 2], key)
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=MAX_TOKENS,
            )
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
        finally:
            await client.close()
    return statuses
