"""A record writer usable from any thread and any event loop.

The ledger's ``RecordWriter`` belongs to one event loop. An app may call a
wrapped client from plain threads, from several event loops, or from
``asyncio.run`` called again and again. So the writer here runs a
``RecordWriter`` on an event loop of its own, in a daemon thread.

Each process writes its own spool folder, ``<spool root>/<pid>``. At start
the writer replays the folders of processes that are gone (their spool lock
is free), so records a killed process left behind reach the ledger too.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, RecordWriter, Spool
from thrifty.ledger.record import RequestRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")

STOP_TIMEOUT_S = 30.0


class BackgroundWriter:
    """Submit records from any thread; a background event loop writes them in batches.

    ``submit`` never blocks on the database: it hands the record to the
    writer's loop, which appends it to the spool and queues it. ``flush``
    waits until every record submitted so far is in the ledger.
    """

    def __init__(self, ledger: Ledger, spool_root: Path, *, flush_interval_s: float = 0.25) -> None:
        self.ledger = ledger
        self.spool_root = spool_root
        self.spool_dir = spool_root / str(os.getpid())
        replay_orphaned_spools(ledger, spool_root, self.spool_dir.name)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="thrifty-track-writer", daemon=True
        )
        self._closed = False
        self._pid = os.getpid()
        self._thread.start()
        try:
            self._writer = self._call(self._start(flush_interval_s), timeout_s=STOP_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise
        atexit.register(self.close)

    def submit(self, record: RequestRecord) -> None:
        """Hand one record to the writer; it reaches the spool moments later."""
        if self._closed:
            logger.error("record %s was not written: the tracker is closed", record.request_id)
            return
        self._loop.call_soon_threadsafe(self._submit, record)

    def flush(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Block until every record submitted so far is in the ledger.

        Raises LedgerError when the database cannot be written; the records
        then stay in the spool and are retried.
        """
        self._call(self._writer.flush(), timeout_s=timeout_s)

    async def aflush(self) -> None:
        """Wait, without blocking the caller's event loop, until the ledger has every record."""
        future = asyncio.run_coroutine_threadsafe(self._writer.flush(), self._loop)
        await asyncio.wrap_future(future)

    def close(self) -> None:
        """Write what is queued, stop the background loop and close the ledger."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if os.getpid() != self._pid:
            return  # a forked child's copy: its thread and loop live in the parent only
        try:
            self._call(self._writer.stop(), timeout_s=STOP_TIMEOUT_S)
        except (TimeoutError, LedgerError) as exc:
            logger.error(
                "could not write every record at close (%s); they stay in spool %s",
                exc,
                self.spool_dir,
            )
        finally:
            self._stop_loop()
            self.ledger.close()

    async def _start(self, flush_interval_s: float) -> RecordWriter:
        spool = Spool(self.spool_dir, fsync=False)
        writer = RecordWriter(self.ledger, spool, flush_interval_s=flush_interval_s)
        try:
            await writer.start()
        except BaseException:
            spool.close()
            raise
        return writer

    def _submit(self, record: RequestRecord) -> None:
        try:
            self._writer.submit(record)
        except LedgerError as exc:
            logger.error("record %s was not written: %s", record.request_id, exc)

    def _call(self, coroutine: Coroutine[Any, Any, T], *, timeout_s: float) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=timeout_s)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()


def replay_orphaned_spools(ledger: Ledger, spool_root: Path, own_name: str) -> int:
    """Write the records of spool folders whose process is gone, then delete them.

    A folder whose lock another process holds is in use and left alone.
    Returns the number of records written.
    """
    if not spool_root.is_dir():
        return 0
    written = 0
    for folder in sorted(spool_root.iterdir()):
        if folder.name == own_name or not folder.is_dir():
            continue
        try:
            spool = Spool(folder)
        except LedgerError:
            continue  # a live process owns it
        try:
            records = spool.pending()
            if records:
                written += ledger.write(records)
                logger.info("replayed %d records from orphaned spool %s", len(records), folder)
        except LedgerError as exc:
            logger.warning("could not replay orphaned spool %s: %s; it is kept", folder, exc)
            continue
        finally:
            spool.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    return written
