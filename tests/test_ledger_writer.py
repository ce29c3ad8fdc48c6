"""The record writer: batched writes, replay after a crash, a database that is down."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.ledger_support import BACKENDS, ledger_db_url, make_record
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, RecordWriter, Spool, open_ledger
from thrifty.ledger.serialize import encode_record

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    yield opened
    opened.close()


def stored_ids(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT request_id FROM requests")).scalars())


def spool_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("spool"))


async def wait_until(condition: Callable[[], bool], description: str) -> None:
    # The deadline only keeps a broken writer from hanging the suite.
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {description}")
        await asyncio.sleep(0.01)


async def test_flush_writes_submitted_records(ledger: Ledger, tmp_path: Path) -> None:
    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    for i in range(450):
        writer.submit(make_record(f"req-{i:03d}"))

    await writer.flush()
    assert ledger.count() == 450
    assert writer.pending_count == 0
    await writer.stop()


async def test_submit_does_not_write_to_database(ledger: Ledger, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    writer = RecordWriter(ledger, spool, flush_interval_s=60)
    await writer.start()
    writer.submit(make_record("req-1"))

    assert ledger.count() == 0
    assert [record.request_id for record in spool.pending()] == ["req-1"]
    await writer.stop()


async def test_lookup_reads_pending_then_ledger(ledger: Ledger, tmp_path: Path) -> None:
    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    record = make_record("req-1", feature="search")
    writer.submit(record)

    assert writer.lookup("req-1") is record
    await writer.flush()
    from_ledger = writer.lookup("req-1")
    assert from_ledger is not record
    assert from_ledger == record
    assert writer.lookup("req-absent") is None
    await writer.stop()


async def test_background_task_writes_batches(ledger: Ledger, tmp_path: Path) -> None:
    writer = RecordWriter(
        ledger, Spool(tmp_path / "spool.jsonl"), batch_size=20, flush_interval_s=0.01
    )
    await writer.start()
    for i in range(100):
        writer.submit(make_record(f"req-{i:03d}"))
        if i % 7 == 0:
            await asyncio.sleep(0)

    await wait_until(lambda: writer.pending_count == 0, "every record is written")
    assert ledger.count() == 100
    await writer.stop()


async def test_stop_writes_everything_and_clears_spool(ledger: Ledger, tmp_path: Path) -> None:
    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    for i in range(30):
        writer.submit(make_record(f"req-{i:02d}"))

    await writer.stop()
    assert ledger.count() == 30
    assert spool_files(tmp_path) == ["spool.jsonl", "spool.jsonl.lock"]
    assert (tmp_path / "spool.jsonl").read_bytes() == b""


async def test_replay_after_kill_writes_each_record_once(ledger: Ledger, tmp_path: Path) -> None:
    # A writer that is never stopped: its records are only in the spool, and
    # some of them already reached the database before the "kill".
    spool = Spool(tmp_path / "spool.jsonl")
    crashed = RecordWriter(ledger, spool)
    records = [make_record(f"req-{i:02d}", tags={"run": "1"}) for i in range(40)]
    for record in records:
        crashed.submit(record)
    spool.seal()
    for record in records[:25]:
        crashed.submit(make_record(f"late-{record.request_id}"))
    ledger.write(records[:10])
    spool.close()  # what the kernel does to a killed process's files

    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    expected = {f"req-{i:02d}" for i in range(40)} | {f"late-req-{i:02d}" for i in range(25)}
    ids = stored_ids(ledger)
    assert len(ids) == 65
    assert set(ids) == expected
    await writer.stop()
    assert spool_files(tmp_path) == ["spool.jsonl", "spool.jsonl.lock"]

    with ledger.engine.connect() as connection:
        tags = connection.execute(sa.text("SELECT count(*) FROM request_tags")).scalar_one()
    assert tags == 40


async def test_replay_skips_torn_last_line(
    ledger: Ledger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    lines = b"".join(encode_record(make_record(f"req-{i}")) for i in range(5))
    path.write_bytes(lines + encode_record(make_record("req-torn"))[:-40])

    with caplog.at_level(logging.WARNING, logger="thrifty.ledger.spool"):
        writer = RecordWriter(ledger, Spool(path), flush_interval_s=60)
        await writer.start()
    assert sorted(stored_ids(ledger)) == [f"req-{i}" for i in range(5)]
    assert "skipped a torn last line" in caplog.text
    await writer.stop()


async def test_submit_rejects_invalid_record(ledger: Ledger, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    writer = RecordWriter(ledger, spool, flush_interval_s=60)
    await writer.start()
    with pytest.raises(LedgerError, match="unpriced is True but cost_usd"):
        writer.submit(make_record("req-bad", unpriced=True))
    assert spool.pending() == []
    assert writer.pending_count == 0
    await writer.stop()


async def test_start_twice_is_rejected(ledger: Ledger, tmp_path: Path) -> None:
    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    with pytest.raises(LedgerError, match="already started"):
        await writer.start()
    await writer.stop()


def test_batch_size_below_one_is_rejected(ledger: Ledger, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    with pytest.raises(LedgerError, match="batch_size is 0"):
        RecordWriter(ledger, spool, batch_size=0)
    spool.close()


async def test_database_down_keeps_records_and_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "thrifty.db"
    ledger = open_ledger(f"sqlite:///{path}", busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    spool = Spool(tmp_path / "spool.jsonl")
    writer = RecordWriter(
        ledger, spool, flush_interval_s=0.01, retry_initial_s=0.02, retry_max_s=0.05
    )

    with caplog.at_level(logging.INFO, logger="thrifty.ledger.writer"):
        await writer.start()
        for i in range(5):
            writer.submit(make_record(f"req-{i}"))
        await wait_until(lambda: "(attempt 3)" in caplog.text, "three writes failed")

        assert ledger.count() == 0
        assert writer.pending_count == 5
        assert sorted(record.request_id for record in spool.pending()) == [
            f"req-{i}" for i in range(5)
        ]

        blocker.execute("ROLLBACK")
        await wait_until(lambda: writer.pending_count == 0, "the queue is written")
        await writer.stop()

    assert ledger.count() == 5
    assert "could not write 5 queued records to the ledger (attempt 1)" in caplog.text
    assert "database is locked" in caplog.text
    assert "ledger writes recovered after" in caplog.text
    blocker.close()
    ledger.close()


async def test_stop_with_database_down_leaves_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "thrifty.db"
    ledger = open_ledger(f"sqlite:///{path}", busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    writer = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await writer.start()
    for i in range(3):
        writer.submit(make_record(f"req-{i}"))

    with caplog.at_level(logging.ERROR, logger="thrifty.ledger.writer"):
        await writer.stop()
    assert "could not write 3 records to the ledger at stop" in caplog.text

    blocker.execute("ROLLBACK")
    blocker.close()
    restarted = RecordWriter(ledger, Spool(tmp_path / "spool.jsonl"), flush_interval_s=60)
    await restarted.start()
    assert sorted(stored_ids(ledger)) == ["req-0", "req-1", "req-2"]
    await restarted.stop()
    ledger.close()


async def test_replay_with_database_down_retries_in_background(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "thrifty.db"
    ledger = open_ledger(f"sqlite:///{path}", busy_timeout_s=0.05)
    (tmp_path / "spool.jsonl").write_bytes(
        b"".join(encode_record(make_record(f"req-{i}")) for i in range(4))
    )
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    writer = RecordWriter(
        ledger,
        Spool(tmp_path / "spool.jsonl"),
        flush_interval_s=0.01,
        retry_initial_s=0.02,
        retry_max_s=0.05,
    )

    with caplog.at_level(logging.WARNING, logger="thrifty.ledger.writer"):
        await writer.start()
    assert "could not write 4 queued records to the ledger (attempt 1)" in caplog.text
    assert writer.pending_count == 4
    assert writer.lookup("req-2") == make_record("req-2")

    blocker.execute("ROLLBACK")
    blocker.close()
    await wait_until(lambda: writer.pending_count == 0, "the replayed records are written")
    assert sorted(stored_ids(ledger)) == [f"req-{i}" for i in range(4)]
    await writer.stop()
    ledger.close()


CHILD = """
import asyncio, sys
from pathlib import Path

from tests.ledger_support import make_record
from thrifty.ledger import RecordWriter, Spool, open_ledger


async def main() -> None:
    ledger = open_ledger(sys.argv[1])
    writer = RecordWriter(ledger, Spool(Path(sys.argv[2])), batch_size=50, flush_interval_s=0.005)
    await writer.start()
    number = 0
    while True:
        request_id = f"req-{number:06d}"
        writer.submit(make_record(request_id, tags={"n": str(number)}))
        print(request_id, flush=True)
        number += 1
        if number % 10 == 0:
            await asyncio.sleep(0)


asyncio.run(main())
"""


async def test_sigkill_loses_no_submitted_record(db_url: str, tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(spool_path)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    submitted: list[str] = []
    observer = open_ledger(db_url)
    try:
        # Kill it while it is submitting and its writer is committing batches.
        while len(submitted) < 3000 or observer.count() == 0:
            line = child.stdout.readline()
            assert line, f"the child exited early with status {child.poll()}"
            submitted.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)
        submitted += [line.strip() for line in child.stdout]
        assert child.wait() == -signal.SIGKILL

        writer = RecordWriter(observer, Spool(spool_path), flush_interval_s=60)
        await writer.start()
        await writer.stop()

        ids = sorted(stored_ids(observer))
        assert len(ids) >= len(submitted)
        # Records were submitted in order, so the stored ids have no gap.
        assert ids == [f"req-{number:06d}" for number in range(len(ids))]
        assert set(submitted) <= set(ids)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
        observer.close()
