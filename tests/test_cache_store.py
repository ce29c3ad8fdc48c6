"""Cache storage: the SQL store on SQLite and PostgreSQL, Redis, and the writer thread."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.ledger_support import BACKENDS, ledger_db_url
from thrifty.cache.cache import ResponseCache
from thrifty.cache.entry import CacheEntry
from thrifty.cache.redis_tier import RedisTier, decode_entry, encode_entry
from thrifty.cache.schema import metadata
from thrifty.cache.store import CacheStore, open_store
from thrifty.errors import LedgerError
from thrifty.ledger.schema import VERSION_TABLE

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def entry(entry_id: str, **changes: object) -> CacheEntry:
    values: dict[str, object] = {
        "entry_id": entry_id,
        "namespace": "key=a",
        "partition": "p1",
        "provider": "openai",
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "response": b'{"id":"chatcmpl-1","choices":[]}',
        "request_id": f"req_{entry_id}",
        "created_at": NOW,
        "last_used_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
        "cost_usd": Decimal("0.000123456789012345678"),
        "input_tokens": 40,
        "output_tokens": 12,
        "feature": "faq",
    }
    values.update(changes)
    return CacheEntry(**values)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def store(db_url: str) -> Iterator[CacheStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def test_put_and_get_round_trip(store: CacheStore) -> None:
    stored = entry("e1", query_text="What is X?", embedder="local:m", vector=b"\x00" * 8)
    store.put([stored])
    found = store.get("e1", NOW)
    assert found is not None
    assert found.cost_usd == Decimal("0.000123456789012345678")
    assert found.response == stored.response
    assert found.vector == b"\x00" * 8
    assert found.created_at == NOW
    assert found.feature == "faq"


def test_expired_entry_is_not_returned(store: CacheStore) -> None:
    store.put([entry("e1")])
    assert store.get("e1", NOW + timedelta(hours=2)) is None
    assert store.expired_ids(NOW + timedelta(hours=2)) == ["e1"]


def test_put_replaces_entry(store: CacheStore) -> None:
    store.put([entry("e1")])
    store.put([entry("e1", request_id="req_new")])
    found = store.get("e1", NOW)
    assert found is not None
    assert found.request_id == "req_new"
    assert store.summary().entries == 1


def test_eviction_picks_least_recently_used(store: CacheStore) -> None:
    store.put([entry(f"e{i}", last_used_at=NOW + timedelta(minutes=i)) for i in range(5)])
    store.touch({"e0": (3, NOW + timedelta(minutes=10))})
    assert store.eviction_candidates(max_entries=3, max_bytes=10**9) == ["e1", "e2"]
    size = entry("e0").size_bytes
    assert store.eviction_candidates(max_entries=100, max_bytes=size * 4) == ["e1"]
    assert store.summary().hits == 3


def test_cache_migration_matches_metadata(store: CacheStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        differences = [
            diff
            for diff in compare_metadata(context, metadata)
            if not (diff[0] == "remove_table" and diff[1].name != "cache_entries")
            and not (diff[0] == "remove_index" and diff[1].table.name != "cache_entries")
        ]
    assert differences == []


def test_vectors_yield_only_this_embedder(store: CacheStore) -> None:
    store.put(
        [
            entry("a", query_text="q", embedder="local:m", vector=b"\x01" * 4),
            entry("b", query_text="q", embedder="gateway:x", vector=b"\x02" * 4),
            entry("c"),
        ]
    )
    assert [item.entry_id for item in store.vectors("local:m", NOW)] == ["a"]


@pytest.fixture
def tier(redis_url: str) -> Iterator[RedisTier]:
    prefix = f"thrifty:test:{uuid.uuid4().hex}:"
    opened = RedisTier(redis_url, prefix=prefix, ttl_s=60)
    yield opened
    opened.clear()
    asyncio.run(opened.aclose())
    opened.close()


def test_redis_round_trip_and_expiry(tier: RedisTier, redis_url: str) -> None:
    tier.put([entry("e1", expires_at=NOW + timedelta(seconds=30))], NOW)
    found = asyncio.run(_get_and_close(tier, "e1", NOW))
    ttl = redis.Redis.from_url(redis_url).ttl(tier.prefix + "e1")
    assert found is not None
    assert found.cost_usd == Decimal("0.000123456789012345678")
    assert found.request_id == "req_e1"
    assert 0 < ttl <= 30


def test_redis_ttl_capped_at_tier_ttl(tier: RedisTier, redis_url: str) -> None:
    tier.put([entry("e1", expires_at=NOW + timedelta(days=1))], NOW)
    assert 0 < redis.Redis.from_url(redis_url).ttl(tier.prefix + "e1") <= 60


def test_redis_clear_removes_prefix_only(tier: RedisTier, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("thrifty:test:other", b"keep", ex=60)
    tier.put([entry("e1"), entry("e2")], NOW)
    assert tier.count() == 2
    assert tier.clear() == 2
    assert tier.count() == 0
    assert client.get("thrifty:test:other") == b"keep"
    client.delete("thrifty:test:other")


async def _get_and_close(tier: RedisTier, entry_id: str, now: datetime) -> CacheEntry | None:
    try:
        return await tier.get(entry_id, now)
    finally:
        await tier.aclose()


def test_unreachable_redis_reads_as_miss() -> None:
    tier = RedisTier("redis://127.0.0.1:1/0", prefix="p:", ttl_s=60)
    assert asyncio.run(_get_and_close(tier, "e1", NOW)) is None
    tier.close()


def test_entry_encoding_round_trip() -> None:
    original = entry("e1", query_text="Q?")
    decoded = decode_entry("e1", encode_entry(original))
    assert decoded is not None
    assert decoded.response == original.response
    assert decoded.query_text == "Q?"
    assert decode_entry("e1", b"no header") is None


def test_writer_stores_and_sweeps(tmp_path: Path) -> None:
    clock = [NOW]
    cache = ResponseCache(
        open_store(f"sqlite:///{tmp_path / 'cache.db'}"),
        max_entries=2,
        max_bytes=10**9,
        clock=lambda: clock[0],
    )
    try:
        for number in range(3):
            cache.put(entry(f"e{number}", last_used_at=NOW + timedelta(seconds=number)))
        cache.flush()
        assert asyncio.run(cache.get("e0")) is not None
        clock[0] = NOW + timedelta(minutes=1)
        cache.note_hit("e0")
        cache.sweep()
        cache.flush()
        ids = cache.store.matching_ids()
        assert sorted(ids) == ["e0", "e2"]

        clock[0] = NOW + timedelta(hours=2)
        cache.sweep()
        cache.flush()
        assert cache.store.matching_ids() == []
    finally:
        cache.close()


def test_writer_keeps_index_in_step(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy", reason="the vector index needs numpy")
    from thrifty.cache.index import VectorIndex, vector_to_bytes

    vector = np.ones(4, dtype=np.float32) / 2
    index = VectorIndex()
    cache = ResponseCache(
        open_store(f"sqlite:///{tmp_path / 'cache.db'}"),
        index=index,
        embedder_name="local:m",
        max_entries=10,
        max_bytes=10**9,
        clock=lambda: NOW,
    )
    try:
        cache.put(
            entry("e1", query_text="What is X?", embedder="local:m", vector=vector_to_bytes(vector))
        )
        cache.flush()
        match = asyncio.run(cache.find_similar("p1", vector, "what is x?", 0.99))
        assert match is not None
        assert match.entry.entry_id == "e1"
        assert asyncio.run(cache.find_similar("p1", vector, "what is y?", 0.99)) is None
        assert asyncio.run(cache.find_similar("p2", vector, "what is x?", 0.99)) is None

        index.clear()
        assert cache.rebuild_index() == 1
        assert cache.clear(namespace="key=a") == 1
        assert len(index) == 0
    finally:
        cache.close()


def test_open_store_on_bad_url_names_it() -> None:
    with pytest.raises(LedgerError) as raised:
        open_store("mysql://nowhere/db")
    assert "unsupported database URL scheme 'mysql'" in str(raised.value)
