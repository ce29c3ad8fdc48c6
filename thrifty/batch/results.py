"""Result files of a job: one per part, and the collected file in input order.

When a part ends, its results are written to ``results/part-NNNN.jsonl`` in
the job's folder, one line per request::

    {"custom_id": "...", "status": "succeeded", "response": {...}, "error": null}

``status`` is ``succeeded``, ``failed``, ``expired`` or ``cancelled``.
``response`` is the provider's response body of a success, and ``error``
has the ``code``, ``message`` and ``status_code`` of anything else. The
collected file has the same lines in input order, each starting with the
request's input ``line`` and its ``attempts``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from thrifty.batch.providers import ResultLine
from thrifty.batch.store import RequestRow

_STATUSES = {"succeeded": "succeeded", "errored": "failed", "expired": "expired"}


def result_status(result: ResultLine) -> str:
    """Return the status a result is reported with: succeeded, failed, expired or cancelled."""
    return _STATUSES.get(result.outcome, "cancelled")


def encode_result(result: ResultLine, status: str | None = None) -> bytes:
    """Encode one line of a part's results file."""
    succeeded = result.outcome == "succeeded"
    error: dict[str, Any] | None = None
    if not succeeded:
        error = {
            "code": result.error_code,
            "message": result.error_message,
            "status_code": result.status_code or None,
        }
    line = {
        "custom_id": result.custom_id,
        "status": status or result_status(result),
        "response": result.body if succeeded else None,
        "error": error,
    }
    return orjson.dumps(line)


class LineFiles:
    """Open files read by byte offset, kept open until ``close``."""

    def __init__(self) -> None:
        self._handles: dict[Path, BinaryIO] = {}

    def read(self, path: Path, offset: int, length: int) -> bytes:
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = path.open("rb")
        handle.seek(offset)
        return handle.read(length)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


@dataclass(frozen=True, slots=True)
class CollectSummary:
    """The output of ``collect``: the file, and how many requests ended in each status."""

    path: Path
    counts: Counter[str]

    @property
    def written(self) -> int:
        return sum(self.counts.values())


def collected_lines(
    requests: Iterator[RequestRow], results_dir: Path, files: LineFiles
) -> Iterator[tuple[str, bytes]]:
    """Yield each request's status and collected line, in input order."""
    for request in requests:
        prefix = b'{"line":%d,"attempts":%d,' % (request.line, request.attempts)
        if request.result_part_id is not None and request.result_offset is not None:
            path = results_dir / f"{request.result_part_id}.jsonl"
            raw = files.read(path, request.result_offset, request.result_length or 0)
            yield request.status, prefix + raw[1:]
            continue
        error = None
        if request.status != "succeeded":
            error = {"code": request.error_code, "message": request.error_message}
        line = {"custom_id": request.custom_id, "status": request.status, "response": None}
        yield request.status, prefix + orjson.dumps({**line, "error": error})[1:]
