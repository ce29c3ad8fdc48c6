"""Cache entries in SQLite or PostgreSQL: the durable tier.

The table is created by the ledger's migrations, so ``open_store`` upgrades
the database it is given like ``open_ledger`` does. Every method is
synchronous and safe to call from several threads; the gateway reads from
the event loop on SQLite (a primary-key read takes tens of microseconds) and
from a worker thread on PostgreSQL, and writes only from the cache's writer
thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from thrifty.cache.entry import CacheEntry
from thrifty.cache.schema import cache_entries
from thrifty.errors import CacheError
from thrifty.ledger.database import create_ledger_engine, safe_url
from thrifty.ledger.migrate import upgrade_to_head

logger = logging.getLogger(__name__)

_c = cache_entries.c

# Rows deleted per statement when evicting, so one eviction never holds the
# write lock for long.
_DELETE_BATCH = 500


@dataclass(frozen=True, slots=True)
class IndexedVector:
    """What the in-process index needs of one semantic entry."""

    entry_id: str
    partition: str
    query_text: str
    vector: bytes


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """Counts over the stored entries, expired ones included until they are swept."""

    entries: int
    bytes: int
    semantic_entries: int
    hits: int


def open_store(url: str) -> CacheStore:
    """Open the entries' database at ``url`` and create the cache table if needed."""
    engine = create_ledger_engine(url)
    try:
        upgrade_to_head(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise CacheError(
            f"could not open the cache database at {safe_url(engine.url)}: {_first_line(exc)}; "
            "check that the database is reachable and the URL is right"
        ) from exc
    return CacheStore(engine)


class CacheStore:
    """Cache entries in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._get = sa.select(cache_entries).where(_c.entry_id == sa.bindparam("entry_id"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return safe_url(self.engine.url)

    def get(self, entry_id: str, now: datetime) -> CacheEntry | None:
        """Return an unexpired entry, or None."""
        with self._connect("read an entry from") as connection:
            row = connection.execute(self._get, {"entry_id": entry_id}).one_or_none()
        if row is None:
            return None
        entry = row_to_entry(row._mapping)
        return None if entry.expired(now) else entry

    def put(self, entries: Sequence[CacheEntry]) -> None:
        """Insert entries, replacing any stored under the same ids."""
        if not entries:
            return
        rows = [entry_to_row(entry) for entry in entries]
        statement = self._insert(cache_entries)
        replaced = {name: statement.excluded[name] for name in rows[0] if name != "entry_id"}
        statement = statement.on_conflict_do_update(index_elements=[_c.entry_id], set_=replaced)
        with self._connect("write entries to", immediate=True) as connection, connection.begin():
            connection.execute(statement, rows)

    def touch(self, uses: Mapping[str, tuple[int, datetime]]) -> None:
        """Add hits and set the last-used time: entry id -> (hits, last used)."""
        if not uses:
            return
        statement = (
            sa.update(cache_entries)
            .where(_c.entry_id == sa.bindparam("id"))
            .values(hits=_c.hits + sa.bindparam("count"), last_used_at=sa.bindparam("at"))
        )
        rows = [{"id": key, "count": count, "at": at} for key, (count, at) in uses.items()]
        with self._connect("update entries in", immediate=True) as connection, connection.begin():
            connection.execute(statement, rows)

    def delete(self, entry_ids: Sequence[str]) -> None:
        with self._connect("delete entries from", immediate=True) as connection:
            for start in range(0, len(entry_ids), _DELETE_BATCH):
                batch = list(entry_ids[start : start + _DELETE_BATCH])
                with connection.begin():
                    connection.execute(sa.delete(cache_entries).where(_c.entry_id.in_(batch)))

    def expired_ids(self, now: datetime) -> list[str]:
        statement = sa.select(_c.entry_id).where(_c.expires_at <= now)
        with self._connect("read expired entries from") as connection:
            return list(connection.execute(statement).scalars())

    def eviction_candidates(self, max_entries: int, max_bytes: int) -> list[str]:
        """Return the least recently used ids to delete so both limits hold."""
        summary = self.summary()
        excess_entries = summary.entries - max_entries
        excess_bytes = summary.bytes - max_bytes
        if excess_entries <= 0 and excess_bytes <= 0:
            return []
        statement = sa.select(_c.entry_id, _c.size_bytes).order_by(_c.last_used_at, _c.entry_id)
        victims: list[str] = []
        with self._connect("read entries for eviction from") as connection:
            for entry_id, size in connection.execute(statement):
                if excess_entries <= 0 and excess_bytes <= 0:
                    break
                victims.append(entry_id)
                excess_entries -= 1
                excess_bytes -= size
        return victims

    def matching_ids(
        self, *, namespace: str | None = None, feature: str | None = None
    ) -> list[str]:
        """Return the ids of entries in a namespace or of a feature; all ids without either."""
        statement = sa.select(_c.entry_id)
        if namespace is not None:
            statement = statement.where(_c.namespace == namespace)
        if feature is not None:
            statement = statement.where(_c.feature == feature)
        with self._connect("read entries from") as connection:
            return list(connection.execute(statement).scalars())

    def vectors(self, embedder: str, now: datetime) -> Iterator[IndexedVector]:
        """Yield the unexpired semantic entries embedded by ``embedder``."""
        statement = (
            sa.select(_c.entry_id, _c.partition_key, _c.query_text, _c.vector)
            .where(
                _c.embedder == embedder,
                _c.vector.is_not(None),
                _c.query_text.is_not(None),
                _c.expires_at > now,
            )
            .order_by(_c.created_at)
            .execution_options(yield_per=2000)
        )
        with self._connect("read vectors from") as connection:
            for entry_id, partition, text, vector in connection.execute(statement):
                yield IndexedVector(entry_id, partition, text, bytes(vector))

    def summary(self) -> StoreSummary:
        statement = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(_c.size_bytes), 0),
            sa.func.count(_c.vector),
            sa.func.coalesce(sa.func.sum(_c.hits), 0),
        )
        with self._connect("count entries in") as connection:
            count, size, semantic, hits = connection.execute(statement).one()
        return StoreSummary(int(count), int(size), int(semantic), int(hits))

    def feature_bytes(self, since: datetime | None, until: datetime) -> list[tuple[Any, ...]]:
        """Return (feature, size, created_at, expires_at) of entries alive in a time window."""
        statement = sa.select(_c.feature, _c.size_bytes, _c.created_at, _c.expires_at).where(
            _c.created_at < until
        )
        if since is not None:
            statement = statement.where(_c.expires_at > since)
        with self._connect("read entry sizes from") as connection:
            return [tuple(row) for row in connection.execute(statement)]

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _connect(self, action: str, *, immediate: bool = False) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as connection:
                if immediate:
                    connection.execution_options(sqlite_immediate=True)
                yield connection
        except SQLAlchemyError as exc:
            raise CacheError(
                f"could not {action} the cache database at {self.url}: {_first_line(exc)}"
            ) from exc


def entry_to_row(entry: CacheEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "namespace": entry.namespace,
        "partition_key": entry.partition,
        "provider": entry.provider,
        "endpoint": entry.endpoint,
        "model": entry.model,
        "feature": entry.feature,
        "query_text": entry.query_text,
        "embedder": entry.embedder,
        "vector": entry.vector,
        "response": entry.response,
        "request_id": entry.request_id,
        "cost_usd": entry.cost_usd,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "size_bytes": entry.size_bytes,
        "hits": entry.hits,
        "created_at": entry.created_at,
        "last_used_at": entry.last_used_at or entry.created_at,
        "expires_at": entry.expires_at,
    }


def row_to_entry(row: Mapping[Any, Any]) -> CacheEntry:
    vector = row["vector"]
    return CacheEntry(
        entry_id=row["entry_id"],
        namespace=row["namespace"],
        partition=row["partition_key"],
        provider=row["provider"],
        endpoint=row["endpoint"],
        model=row["model"],
        feature=row["feature"],
        query_text=row["query_text"],
        embedder=row["embedder"],
        vector=None if vector is None else bytes(vector),
        response=bytes(row["response"]),
        request_id=row["request_id"],
        cost_usd=row["cost_usd"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        hits=int(row["hits"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
