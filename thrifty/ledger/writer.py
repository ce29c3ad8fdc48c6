"""Write records to the ledger in batches, off the event loop, losing none.

``submit`` appends the record to the spool and queues it; it never touches
the database. A background task seals the spool, writes the queued records
in batches from a worker thread, and then deletes the sealed segments. When
the database is down the records stay queued and in the spool, and the task
retries with exponential backoff. ``start`` first replays whatever an earlier
process left in the spool.

When the spool cannot be written (a full disk), ``submit`` keeps the record
in memory only and ``accepting`` turns false, so the gateway can reject new
requests until the spool takes writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque

from thrifty.errors import LedgerError
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.serialize import check_record
from thrifty.ledger.spool import Spool
from thrifty.ledger.store import Ledger

logger = logging.getLogger(__name__)

# How often a failed spool is tried again, and the free space it needs before then.
SPOOL_PROBE_INTERVAL_S = 1.0
SPOOL_MIN_FREE_BYTES = 64 * 1024


class RecordWriter:
    """Batched, crash-safe writes of RequestRecords to a Ledger.

    Use it from one event loop: ``submit`` and ``lookup`` are synchronous and
    not thread-safe. ``retry_initial_s`` and ``retry_max_s`` bound the
    backoff between attempts while the database fails.
    """

    def __init__(
        self,
        ledger: Ledger,
        spool: Spool,
        *,
        batch_size: int = 200,
        flush_interval_s: float = 0.25,
        retry_initial_s: float = 0.5,
        # Kept short so that records reach the ledger within seconds of it recovering.
        retry_max_s: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise LedgerError(f"batch_size is {batch_size}; it must be at least 1")
        self.ledger = ledger
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        # NOTE: while the database is down the queue keeps every record in
        # memory as well as in the spool, so memory grows with the outage.
        self._queue: deque[RequestRecord] = deque()
        self._pending: dict[str, RequestRecord] = {}
        self._flush_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        # Records the spool could not take: queued for the ledger, but lost if
        # the process dies before they are written.
        self._unspooled: dict[str, RequestRecord] = {}
        self._spool_error: str | None = None
        self._spool_probed_at = 0.0

    @property
    def pending_count(self) -> int:
        """Records submitted or replayed and not yet written to the ledger."""
        return len(self._queue)

    async def start(self) -> None:
        """Replay the spool into the ledger, then start the background task.

        When the replay fails (the database is down), the records stay queued
        and the background task keeps retrying them.
        """
        if self._task is not None:
            raise LedgerError("the record writer is already started")
        replayed = self.spool.pending()
        # The spool contains every record submitted so far, including any
        # submitted before start, so it replaces the queue.
        self._queue = deque(replayed)
        self._pending = {record.request_id: record for record in replayed}
        retry_in = 0.0
        if replayed:
            logger.info("replaying %d records from spool %s", len(replayed), self.spool.path)
            retry_in = await self._flush_or_schedule_retry()
        self._task = asyncio.create_task(self._run(retry_in), name="thrifty-record-writer")
        self._task.add_done_callback(_log_crash)

    @property
    def spool_error(self) -> str | None:
        """Why the spool last failed to take a record, or None while it works."""
        return self._spool_error

    def accepting(self) -> bool:
        """Return whether the spool takes records, trying a failed one again each second.

        A failed spool counts as working again once its folder has free space
        and every record it could not take, and that is not yet in the ledger,
        has been appended to it.
        """
        if self._spool_error is None:
            return True
        now = time.monotonic()
        if now - self._spool_probed_at < SPOOL_PROBE_INTERVAL_S:
            return False
        self._spool_probed_at = now
        if _free_bytes(self.spool.path.parent) < SPOOL_MIN_FREE_BYTES:
            return False
        try:
            for request_id in list(self._unspooled):
                self.spool.append(self._unspooled[request_id])
                del self._unspooled[request_id]
        except LedgerError:
            return False
        logger.info("spool %s takes records again", self.spool.path)
        self._spool_error = None
        return True

    def submit(self, record: RequestRecord) -> None:
        """Append one record to the spool and queue it for the ledger.

        Raises LedgerError for a record that cannot be stored. On return the
        record is in the spool file, which survives the process being killed,
        unless the spool failed (see ``accepting``): then the record is
        queued in memory only.
        """
        check_record(record)
        try:
            self.spool.append(record)
        except LedgerError as exc:
            self._spool_failed(record, exc)
        self._queue.append(record)
        self._pending[record.request_id] = record
        if len(self._queue) >= self.batch_size:
            self._wakeup.set()

    def unwritten(self) -> list[RequestRecord]:
        """Return the records submitted or replayed and not yet written to the ledger."""
        return list(self._pending.values())

    def lookup(self, request_id: str) -> RequestRecord | None:
        """Return a record not yet written from memory, or else from the ledger."""
        record = self._pending.get(request_id)
        if record is not None:
            return record
        return self.ledger.get(request_id)

    async def flush(self) -> None:
        """Write every queued record to the ledger; raise LedgerError if that fails.

        After a failure the records that were not written stay queued and in
        the spool.
        """
        async with self._flush_lock:
            await self._drain()

    async def stop(self) -> None:
        """Stop the background task, write what is queued and close the spool.

        If the database is still failing, the records stay in the spool and
        the next ``start`` replays them.
        """
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            # A task that failed has logged its error already (see _log_crash).
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except LedgerError as exc:
            logger.error(
                "could not write %d records to the ledger at stop: %s; they stay in "
                "spool %s and the next start replays them",
                len(self._queue),
                exc,
                self.spool.path,
            )
        self.spool.close()

    async def _run(self, retry_in: float) -> None:
        if retry_in:
            await _wait(self._stopping, retry_in)
        while not self._stopping.is_set():
            await _wait(self._wakeup, self.flush_interval_s)
            self._wakeup.clear()
            if self._stopping.is_set():
                return
            if self._queue:
                delay = await self._flush_or_schedule_retry()
                if delay:
                    await _wait(self._stopping, delay)

    async def _flush_or_schedule_retry(self) -> float:
        """Flush once; return 0 on success, else the seconds to wait before retrying."""
        try:
            await self.flush()
        except LedgerError as exc:
            self._failures += 1
            delay = min(self.retry_max_s, self.retry_initial_s * 2.0 ** (self._failures - 1))
            logger.warning(
                "could not write %d queued records to the ledger (attempt %d): %s; "
                "they stay in the spool, retrying in %.1f s",
                len(self._queue),
                self._failures,
                exc,
                delay,
            )
            return delay
        if self._failures:
            logger.info("ledger writes recovered after %d failed attempts", self._failures)
            self._failures = 0
        return 0.0

    async def _drain(self) -> None:
        # Every queued record is in a sealed segment once this returns, and
        # records submitted from now on go to the fresh active file.
        newest_sealed = self.spool.seal()
        remaining = len(self._queue)
        while remaining > 0:
            batch = list(itertools.islice(self._queue, min(self.batch_size, remaining)))
            inserted = await asyncio.to_thread(self.ledger.write, batch)
            logger.debug("wrote %d records to the ledger, %d new", len(batch), inserted)
            for _ in batch:
                self._forget(self._queue.popleft())
            remaining -= len(batch)
        if newest_sealed is not None:
            self.spool.truncate_committed(newest_sealed)

    def _forget(self, record: RequestRecord) -> None:
        if self._pending.get(record.request_id) is record:
            del self._pending[record.request_id]
        self._unspooled.pop(record.request_id, None)

    def _spool_failed(self, record: RequestRecord, exc: LedgerError) -> None:
        if self._spool_error is None:
            logger.error(
                "%s; the record is kept in memory until the ledger has it, and new "
                "requests are rejected until the spool takes writes again "
                "(unless gateway.spool_full is fail_open)",
                exc,
            )
        self._spool_error = str(exc)
        self._spool_probed_at = time.monotonic()
        self._unspooled[record.request_id] = record


def _free_bytes(folder: os.PathLike[str] | str) -> int:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until ``event`` is set or ``timeout_s`` passes, whichever is first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "the record writer stopped on an unexpected error; records stay in the spool "
            "until the next start",
            exc_info=task.exception(),
        )
