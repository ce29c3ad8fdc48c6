"""The response cache: tiers, the vector index and the writer thread behind one object.

Reads go to Redis first when it is configured, then to the SQL store, and
an entry found only in SQL is copied to Redis. Writes never run on the
request path: ``put`` and ``note_hit`` queue work for one writer thread.
That thread stores entries, adds them to the vector index once they are
durable, and counts hits. It also sweeps out expired entries and, past
``max_entries`` or ``max_bytes``, the least recently used ones.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from thrifty.cache.entry import CacheEntry
from thrifty.cache.guards import mismatch, terms_of
from thrifty.cache.redis_tier import RedisTier
from thrifty.cache.store import CacheStore
from thrifty.errors import CacheError

if TYPE_CHECKING:
    from thrifty.cache.index import Vector, VectorIndex

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
SWEEP_AFTER_PUTS = 500
_BATCH = 200
# Index candidates checked against the word-level guards per lookup.
_CANDIDATES = 4


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """An entry found by meaning, and how similar its query is."""

    entry: CacheEntry
    similarity: float


@dataclass(frozen=True, slots=True)
class _Put:
    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class _Hit:
    entry_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class _Backfill:
    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


_Work = _Put | _Hit | _Backfill | _Sweep


class ResponseCache:
    """Cached responses in a SQL store, optionally Redis, and an in-process vector index."""

    def __init__(
        self,
        store: CacheStore,
        *,
        redis: RedisTier | None = None,
        index: VectorIndex | None = None,
        embedder_name: str | None = None,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.redis = redis
        self.index = index
        self.embedder_name = embedder_name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._work: queue.Queue[_Work | None] = queue.Queue()
        self._failures = 0
        self._puts_since_sweep = 0
        self._writer = threading.Thread(target=self._run_writer, name="thrifty-cache-writer")
        self._writer.daemon = True
        self._writer.start()

    def rebuild_index(self) -> int:
        """Load every unexpired semantic entry of this embedder into the index."""
        if self.index is None or self.embedder_name is None:
            return 0
        from thrifty.cache.index import vector_from_bytes

        self.index.clear()
        items = (
            (item.partition, item.entry_id, vector_from_bytes(item.vector), item.query_text)
            for item in self.store.vectors(self.embedder_name, self.clock())
        )
        self.index.add_many(items)
        logger.info("cache: indexed %d semantic entries", len(self.index))
        return len(self.index)

    async def get(self, entry_id: str) -> CacheEntry | None:
        """Return an unexpired entry from the fastest tier that has it."""
        now = self.clock()
        if self.redis is not None:
            entry = await self.redis.get(entry_id, now)
            if entry is not None:
                return entry
        try:
            if self.store.is_sqlite:
                entry = self.store.get(entry_id, now)
            else:
                entry = await asyncio.to_thread(self.store.get, entry_id, now)
        except CacheError as exc:
            logger.warning("cache: lookup failed, treating it as a miss: %s", exc)
            return None
        if entry is not None and self.redis is not None:
            self._work.put(_Backfill(entry))
        return entry

    async def find_similar(
        self, partition: str, vector: Vector, query_text: str, threshold: float
    ) -> SemanticMatch | None:
        """Return the most similar entry that passes the word-level guards, if any."""
        if self.index is None:
            return None
        candidates = self.index.search(partition, vector, threshold, limit=_CANDIDATES)
        query_terms = terms_of(query_text)
        for candidate in candidates:
            reason = mismatch(query_terms, terms_of(candidate.text))
            if reason is not None:
                logger.debug("cache: candidate %s rejected: %s", candidate.entry_id, reason)
                continue
            entry = await self.get(candidate.entry_id)
            if entry is None:
                # Expired, evicted or cleared by another process.
                self.index.remove(candidate.entry_id)
                continue
            return SemanticMatch(entry, candidate.similarity)
        return None

    def put(self, entry: CacheEntry) -> None:
        """Queue an entry to be stored (and indexed, when it has a vector)."""
        self._work.put(_Put(entry))

    def note_hit(self, entry_id: str) -> None:
        self._work.put(_Hit(entry_id, self.clock()))

    def sweep(self) -> None:
        """Queue a sweep of expired and excess entries now."""
        self._work.put(_Sweep())

    def flush(self) -> None:
        """Block until every queued write has been applied."""
        self._work.join()

    def clear(self, *, namespace: str | None = None, feature: str | None = None) -> int:
        """Delete entries (all of them without a filter) from every tier; return the count."""
        self.flush()
        ids = self.store.matching_ids(namespace=namespace, feature=feature)
        self._delete(ids)
        if self.redis is not None and namespace is None and feature is None:
            self.redis.clear()
        return len(ids)

    def close(self) -> None:
        """Apply the queued writes, then stop the writer and close the tiers."""
        if self._writer.is_alive():
            self._work.put(None)
            self._writer.join(timeout=30)
        if self.redis is not None:
            self.redis.close()
        self.store.close()

    def _run_writer(self) -> None:
        next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        while True:
            try:
                first = self._work.get(timeout=max(0.0, next_sweep - time.monotonic()))
            except queue.Empty:
                self._apply([_Sweep()])
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
                continue
            batch = [first]
            while len(batch) < _BATCH and first is not None:
                try:
                    batch.append(self._work.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            self._apply([work for work in batch if work is not None])
            for _ in batch:
                self._work.task_done()
            if stop:
                return

    def _apply(self, batch: list[_Work]) -> None:
        puts = [work.entry for work in batch if isinstance(work, _Put)]
        hits: dict[str, tuple[int, datetime]] = {}
        for work in batch:
            if isinstance(work, _Hit):
                count, _ = hits.get(work.entry_id, (0, work.at))
                hits[work.entry_id] = (count + 1, work.at)
        backfills = [work.entry for work in batch if isinstance(work, _Backfill)]
        try:
            self._store(puts)
            self.store.touch(hits)
            if self.redis is not None and backfills:
                self.redis.put(backfills, self.clock())
            self._puts_since_sweep += len(puts)
            # Sweep on a timer, and also after many writes so the limits hold between timers.
            if self._puts_since_sweep >= SWEEP_AFTER_PUTS or any(
                isinstance(work, _Sweep) for work in batch
            ):
                self._sweep()
                self._puts_since_sweep = 0
            self._failures = 0
        except CacheError as exc:
            self._failures += 1
            # One line per run of failures, not one per batch.
            if self._failures == 1:
                logger.warning(
                    "cache: a write batch failed, dropping %d entries and %d hit counts: %s",
                    len(puts),
                    len(hits),
                    exc,
                )
        except Exception:
            logger.exception("cache: the writer failed on a batch of %d", len(batch))

    def _store(self, entries: list[CacheEntry]) -> None:
        if not entries:
            return
        self.store.put(entries)
        if self.redis is not None:
            self.redis.put(entries, self.clock())
        if self.index is not None:
            from thrifty.cache.index import vector_from_bytes

            for entry in entries:
                if entry.vector is not None and entry.query_text is not None:
                    vector = vector_from_bytes(entry.vector)
                    self.index.add(entry.partition, entry.entry_id, vector, entry.query_text)

    def _sweep(self) -> None:
        expired = self.store.expired_ids(self.clock())
        self._delete(expired)
        excess = self.store.eviction_candidates(self.max_entries, self.max_bytes)
        self._delete(excess)
        if expired or excess:
            logger.info(
                "cache: removed %d expired and %d least recently used entries",
                len(expired),
                len(excess),
            )

    def _delete(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        self.store.delete(entry_ids)
        if self.redis is not None:
            self.redis.delete(entry_ids)
        if self.index is not None:
            for entry_id in entry_ids:
                self.index.remove(entry_id)
