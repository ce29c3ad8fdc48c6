"""Redis as a hot tier in front of the SQL store, shared by gateway replicas.

Each entry is one Redis string under ``PREFIX + entry_id``: a JSON header
line with the entry's fields, then the response bytes. Its Redis expiry is
the entry's remaining lifetime capped at ``ttl_s``, so Redis forgets entries
by itself and the SQL store stays the record. Vectors are not stored here:
each replica's index is rebuilt from the SQL store.

Reads use the asyncio client from the event loop; writes, deletions and
clears use the blocking client from the cache's writer thread or the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import redis
import redis.asyncio

from thrifty.cache.entry import CacheEntry
from thrifty.errors import CacheError

logger = logging.getLogger(__name__)

# A read that takes longer than this is abandoned and the SQL store asked instead.
READ_TIMEOUT_S = 0.25
_SCAN_BATCH = 1000


class RedisTier:
    """Entries in Redis, with both a blocking and an asyncio client."""

    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._sync = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self._async: redis.asyncio.Redis | None = None

    def _key(self, entry_id: str) -> str:
        return self.prefix + entry_id

    async def get(self, entry_id: str, now: datetime) -> CacheEntry | None:
        """Return an unexpired entry, or None when it is absent or Redis fails."""
        if self._async is None:
            self._async = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=READ_TIMEOUT_S, socket_connect_timeout=READ_TIMEOUT_S
            )
        try:
            value = await self._async.get(self._key(entry_id))
        except (redis.RedisError, OSError) as exc:
            logger.warning("cache: reading from Redis failed, using the database: %s", exc)
            return None
        if not isinstance(value, bytes):
            return None
        entry = decode_entry(entry_id, value)
        return None if entry is None or entry.expired(now) else entry

    def put(self, entries: Sequence[CacheEntry], now: datetime) -> None:
        """Store entries with their remaining lifetime, capped at ``ttl_s``."""
        pipeline = self._sync.pipeline(transaction=False)
        for entry in entries:
            remaining = int((entry.expires_at - now).total_seconds())
            if remaining <= 0:
                continue
            pipeline.set(
                self._key(entry.entry_id), encode_entry(entry), ex=min(remaining, self.ttl_s)
            )
        self._run(pipeline, "write entries to")

    def delete(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        pipeline = self._sync.pipeline(transaction=False)
        for start in range(0, len(entry_ids), _SCAN_BATCH):
            pipeline.unlink(*(self._key(key) for key in entry_ids[start : start + _SCAN_BATCH]))
        self._run(pipeline, "delete entries from")

    def clear(self) -> int:
        """Delete every key under the prefix; return how many there were."""
        deleted = 0
        try:
            batch: list[bytes] = []
            for key in self._sync.scan_iter(match=self.prefix + "*", count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    deleted += int(self._sync.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self._sync.unlink(*batch))
        except (redis.RedisError, OSError) as exc:
            raise CacheError(
                f"could not clear the cache in Redis at {self._safe_url()}: {exc}"
            ) from exc
        return deleted

    def count(self) -> int:
        """Count the keys under the prefix (a full SCAN: for the CLI, not the request path)."""
        try:
            return sum(1 for _ in self._sync.scan_iter(match=self.prefix + "*", count=_SCAN_BATCH))
        except (redis.RedisError, OSError) as exc:
            raise CacheError(
                f"could not read the cache in Redis at {self._safe_url()}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def close(self) -> None:
        self._sync.close()

    def _run(self, pipeline: Any, action: str) -> None:
        try:
            pipeline.execute()
        except (redis.RedisError, OSError) as exc:
            raise CacheError(f"could not {action} Redis at {self._safe_url()}: {exc}") from exc

    def _safe_url(self) -> str:
        scheme, sep, rest = self.url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        return scheme + sep + rest


def encode_entry(entry: CacheEntry) -> bytes:
    header = {
        "namespace": entry.namespace,
        "partition": entry.partition,
        "provider": entry.provider,
        "endpoint": entry.endpoint,
        "model": entry.model,
        "feature": entry.feature,
        "query_text": entry.query_text,
        "request_id": entry.request_id,
        "cost_usd": None if entry.cost_usd is None else format(entry.cost_usd, "f"),
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "created_at": entry.created_at.isoformat(),
        "expires_at": entry.expires_at.isoformat(),
    }
    return orjson.dumps(header) + b"\n" + entry.response


def decode_entry(entry_id: str, value: bytes) -> CacheEntry | None:
    """Parse a stored value; None (and a warning) for a value this version cannot read."""
    header_bytes, separator, response = value.partition(b"\n")
    if not separator:
        logger.warning("cache: ignoring a Redis entry %s without a header line", entry_id)
        return None
    try:
        header = orjson.loads(header_bytes)
        cost = header["cost_usd"]
        return CacheEntry(
            entry_id=entry_id,
            namespace=header["namespace"],
            partition=header["partition"],
            provider=header["provider"],
            endpoint=header["endpoint"],
            model=header["model"],
            feature=header["feature"],
            query_text=header["query_text"],
            response=response,
            request_id=header["request_id"],
            cost_usd=None if cost is None else Decimal(cost),
            input_tokens=int(header["input_tokens"]),
            output_tokens=int(header["output_tokens"]),
            created_at=datetime.fromisoformat(header["created_at"]),
            expires_at=datetime.fromisoformat(header["expires_at"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.warning("cache: ignoring an unreadable Redis entry %s: %s", entry_id, exc)
        return None
