"""An append-only local file of records on their way to the ledger.

Each record is one JSON line, written with a single ``write`` call to a file
opened with O_APPEND, so a killed process leaves at most its last line torn.

Segments: new lines go to the active file (``spool.jsonl``). Before the
writer sends a batch to the database it seals the active file, renaming it to
a numbered segment (``spool.000001.jsonl``), and new lines go to a fresh
active file. Once every record of the sealed segments is in the database the
writer deletes them. At each step the records are in at least one file or in
the database, and replaying a record twice is harmless because ledger writes
skip request ids already stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from thrifty.errors import LedgerError
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.serialize import decode_record, encode_record

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

DEFAULT_FILE_NAME = "spool.jsonl"


class Spool:
    """Local, durable queue of records in JSON lines, owned by one process.

    ``path`` is the active file, or a folder (an existing one, or a path
    without a suffix) to keep ``spool.jsonl`` and its segments in.

    ``fsync`` makes every append reach the disk before it returns, which
    survives power loss as well as a killed process at the cost of a disk
    flush per record. Without it, an appended line is in the operating
    system's cache, which survives the process being killed.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        if path.is_dir() or not path.suffix:
            path = path / DEFAULT_FILE_NAME
        self.path = path
        self.fsync = fsync
        self._segment_pattern = re.compile(
            rf"{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(path)
        except OSError as exc:
            raise LedgerError(f"could not open spool {path}: {exc}") from exc
        try:
            _repair_torn_tail(path)
            self._fd = _open_append(path)
        except OSError as exc:
            os.close(self._lock_fd)
            raise LedgerError(f"could not open spool {path}: {exc}") from exc
        self._next_segment = max(self._sealed_segments(), default=0) + 1

    def append(self, record: RequestRecord) -> None:
        """Append one record; on return it survives the process being killed."""
        line = encode_record(record)
        written = 0
        try:
            while written < len(line):
                written += os.write(self._fd, line[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            if 0 < written < len(line):
                # Cut the partial line (a full disk), so the next one starts clean.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise LedgerError(
                f"could not append record {record.request_id} to spool {self.path}: {exc}"
            ) from exc

    def pending(self) -> list[RequestRecord]:
        """Read back every record in the sealed segments, then the active file."""
        records: list[RequestRecord] = []
        for number in self._sealed_segments():
            records += _read_segment(self._segment_path(number))
        records += _read_segment(self.path)
        return records

    def seal(self) -> int | None:
        """Seal the active file if it has records, and start a fresh one.

        Returns the number of the newest sealed segment, or None when there is
        no sealed segment at all.
        """
        try:
            if os.fstat(self._fd).st_size > 0:
                sealed = self._segment_path(self._next_segment)
                os.replace(self.path, sealed)
                old_fd, self._fd = self._fd, _open_append(self.path)
                os.close(old_fd)
                self._next_segment += 1
                if self.fsync:
                    _fsync_folder(self.path.parent)
        except OSError as exc:
            raise LedgerError(f"could not seal spool {self.path}: {exc}") from exc
        return max(self._sealed_segments(), default=None)

    def truncate_committed(self, through: int) -> None:
        """Delete the sealed segments up to number ``through``, now in the ledger."""
        for number in self._sealed_segments():
            if number <= through:
                self._segment_path(number).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the active file and release the lock, leaving the files in place."""
        for fd in (self._fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fd = self._lock_fd = -1

    def _segment_path(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{number:06d}{self.path.suffix}")

    def _sealed_segments(self) -> list[int]:
        numbers = []
        for candidate in self.path.parent.iterdir():
            match = self._segment_pattern.fullmatch(candidate.name)
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _lock(spool_path: Path) -> int:
    """Lock ``SPOOL.lock`` for as long as the spool is open (not on Windows)."""
    fd = os.open(spool_path.with_name(spool_path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    if sys.platform == "win32":
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise LedgerError(
            f"spool {spool_path} is in use by another process or writer; "
            "give each gateway process its own spool path"
        ) from exc
    return fd


def _repair_torn_tail(path: Path) -> None:
    """End the file on a complete line before new lines are appended to it.

    A process killed mid-append leaves a partial last line; appending after
    it would glue the next record onto it. A tail that is a whole record
    missing only its newline gets the newline; anything else is cut off.
    """
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        decode_record(data[start:])
    except LedgerError:
        _warn_torn(path, len(data) - start)
        os.truncate(path, start)
        return
    with path.open("ab") as file:
        file.write(b"\n")


def _read_segment(path: Path) -> list[RequestRecord]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LedgerError(f"could not read spool {path}: {exc}") from exc

    lines = data.split(b"\n")
    # After the last newline comes b"" or a line whose write never finished.
    last = lines.pop()
    records = [_decode_line(path, number, line) for number, line in enumerate(lines, 1) if line]
    if last:
        try:
            records.append(decode_record(last))
        except LedgerError:
            _warn_torn(path, len(last))
    return records


def _warn_torn(path: Path, size: int) -> None:
    logger.warning(
        "spool %s: skipped a torn last line of %d bytes, left by a process killed while writing it",
        path,
        size,
    )


def _decode_line(path: Path, number: int, line: bytes) -> RequestRecord:
    try:
        return decode_record(line)
    except LedgerError as exc:
        raise LedgerError(
            f"spool {path} line {number} is not a valid record ({exc}); "
            "move the file aside to start without it, or fix the line and restart"
        ) from exc


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
