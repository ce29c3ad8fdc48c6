"""Streaming readers for public LLM traffic traces.

Three formats are read, each row by row so a trace of millions of rows is never
held in memory:

- ``azure``: the Azure LLM inference traces (2023 and 2024), a CSV with
  ``TIMESTAMP, ContextTokens, GeneratedTokens``;
- ``mooncake``: the Mooncake (Kimi) traces, JSON lines with ``timestamp`` in
  milliseconds, ``input_length``, ``output_length`` and ``hash_ids``;
- ``burstgpt``: the BurstGPT trace, a CSV with ``Timestamp`` (seconds),
  ``Model``, ``Request tokens``, ``Response tokens``, ``Total tokens`` and
  ``Log Type``.

A malformed row raises ``TraceError`` naming the file, the line, the column,
the value and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from thrifty.errors import TraceError
from thrifty.traces.rows import TraceRow

TraceFormat = Literal["azure", "mooncake", "burstgpt"]
FORMATS: tuple[str, ...] = get_args(TraceFormat)

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens")
_BURSTGPT_LOG_TYPE = "Log Type"

# Azure writes "2023-11-16 18:15:46.6805900" with seven fractional digits;
# datetime.fromisoformat (Python 3.11) truncates them to six, so the fraction is
# parsed here as nanoseconds.
_AZURE_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_AZURE_TIMESTAMP_EXAMPLE = "'2023-11-16 18:15:46.6805900'"

_COUNT_EXPECTED = "a non-negative integer token count"
_MAX_VALUE_CHARS = 60


def detect_format(path: Path) -> str:
    """Return the format of a trace file from its first line.

    A line starting with ``{`` is Mooncake JSON lines; a CSV header is Azure
    or BurstGPT by its column names.
    """
    with _open(path) as handle:
        try:
            for line in handle:
                if line.strip():
                    return _format_of_first_line(path, line)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
    raise TraceError(
        f"trace file '{path}' is empty; expected an Azure or BurstGPT CSV header "
        "or Mooncake JSON lines"
    )


def read_trace(path: Path, format: str | None = None) -> Iterator[TraceRow]:
    """Stream the rows of a trace file, detecting its format unless ``format`` is given.

    A missing file or an unknown format raises ``TraceError`` before this
    returns. Rows are parsed lazily, so a malformed row raises ``TraceError``
    when iteration reaches it.
    """
    if format is None:
        resolved = detect_format(path)
    else:
        _open(path).close()
        resolved = format
    readers = {"azure": _read_azure, "mooncake": _read_mooncake, "burstgpt": _read_burstgpt}
    reader = readers.get(resolved)
    if reader is None:
        raise TraceError(f"unknown trace format '{resolved}'; use one of {', '.join(FORMATS)}")
    return _decoded(path, reader(path))


def _decoded(path: Path, rows: Iterator[TraceRow]) -> Iterator[TraceRow]:
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> TraceError:
    return TraceError(
        f"trace file '{path}' is not UTF-8 text (byte {exc.start} of a read block); "
        "convert it to UTF-8"
    )


def _format_of_first_line(path: Path, line: str) -> str:
    if line.lstrip().startswith("{"):
        return "mooncake"
    header = {name.strip().lower() for name in next(csv.reader([line]))}
    if {name.lower() for name in _AZURE_COLUMNS} <= header:
        return "azure"
    if {name.lower() for name in _BURSTGPT_COLUMNS} <= header:
        return "burstgpt"
    raise TraceError(
        f"{path}:1: unrecognized trace header {_shorten(line.strip())}; expected Azure "
        f"columns {', '.join(_AZURE_COLUMNS)}, BurstGPT columns "
        f"{', '.join(_BURSTGPT_COLUMNS)}, or Mooncake JSON lines"
    )


def _open(path: Path) -> TextIO:
    # utf-8-sig drops the byte-order mark some spreadsheet exports write.
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise TraceError(f"trace file '{path}' not found; check the path") from None
    except OSError as exc:
        raise TraceError(f"trace file '{path}' could not be read: {exc.strerror}") from None


# --- Azure ---------------------------------------------------------------------------


def _read_azure(path: Path) -> Iterator[TraceRow]:
    first: tuple[int, int] | None = None
    for line, fields in _csv_rows(path, _AZURE_COLUMNS):
        timestamp, context, generated = fields
        seconds, nanoseconds = _parse_azure_timestamp(path, line, "TIMESTAMP", timestamp)
        if first is None:
            first = (seconds, nanoseconds)
        yield TraceRow(
            offset_s=(seconds - first[0]) + (nanoseconds - first[1]) / 1e9,
            input_tokens=_parse_count(path, line, "ContextTokens", context),
            output_tokens=_parse_count(path, line, "GeneratedTokens", generated),
            line=line,
        )


def _parse_azure_timestamp(path: Path, line: int, column: str, value: str) -> tuple[int, int]:
    """Parse an Azure timestamp into whole seconds since the epoch and nanoseconds."""
    match = _AZURE_TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise _row_error(path, line, column, value, f"a timestamp like {_AZURE_TIMESTAMP_EXAMPLE}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _row_error(
            path, line, column, value, f"a valid date and time like {_AZURE_TIMESTAMP_EXAMPLE}"
        ) from None
    fraction = match.group(7) or ""
    return int(moment.timestamp()), int(fraction.ljust(9, "0"))


# --- BurstGPT ------------------------------------------------------------------------


def _read_burstgpt(path: Path) -> Iterator[TraceRow]:
    first: float | None = None
    for line, fields in _csv_rows(path, _BURSTGPT_COLUMNS, optional=(_BURSTGPT_LOG_TYPE,)):
        timestamp, model, request, response, log_type = fields
        seconds = _parse_seconds(path, line, "Timestamp", timestamp)
        if first is None:
            first = seconds
        output_tokens = _parse_count(path, line, "Response tokens", response)
        yield TraceRow(
            offset_s=seconds - first,
            input_tokens=_parse_count(path, line, "Request tokens", request),
            output_tokens=output_tokens,
            model=model.strip() or None,
            line=line,
            log_type=log_type.strip() or None,
            failed=output_tokens == 0,
        )


def _parse_seconds(path: Path, line: int, column: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise _row_error(path, line, column, value, "a non-negative number of seconds")
    return seconds


# --- Mooncake ------------------------------------------------------------------------


def _read_mooncake(path: Path) -> Iterator[TraceRow]:
    first: float | None = None
    with _open(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            record = _parse_json_object(path, line, text)
            timestamp = _json_number(path, line, record, "timestamp")
            if first is None:
                first = timestamp
            yield TraceRow(
                offset_s=(timestamp - first) / 1000,
                input_tokens=_json_count(path, line, record, "input_length"),
                output_tokens=_json_count(path, line, record, "output_length"),
                prefix_blocks=_json_block_ids(path, line, record),
                line=line,
            )


def _parse_json_object(path: Path, line: int, text: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(
            f"{path}:{line}: invalid JSON ({exc.msg} at column {exc.colno}); "
            "expected one JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise _row_error(path, line, "row", json.dumps(record), "a JSON object")
    return record


def _json_field(path: Path, line: int, record: dict[str, Any], name: str) -> Any:
    if name not in record:
        raise TraceError(
            f"{path}:{line}: missing field '{name}'; a Mooncake row has timestamp, "
            "input_length, output_length and hash_ids"
        )
    return record[name]


def _json_number(path: Path, line: int, record: dict[str, Any], name: str) -> float:
    value = _json_field(path, line, record, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _row_error(path, line, name, json.dumps(value), "a non-negative number")
    return float(value)


def _json_count(path: Path, line: int, record: dict[str, Any], name: str) -> int:
    value = _json_field(path, line, record, name)
    if not _is_count(value):
        raise _row_error(path, line, name, json.dumps(value), _COUNT_EXPECTED)
    return int(value)


def _json_block_ids(path: Path, line: int, record: dict[str, Any]) -> tuple[int, ...]:
    value = record.get("hash_ids", [])
    if not isinstance(value, list) or not all(_is_count(item) for item in value):
        raise _row_error(
            path, line, "hash_ids", json.dumps(value), "a list of non-negative integer ids"
        )
    return tuple(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- shared helpers ------------------------------------------------------------------


def _csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str] = ()
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each data row, fields in the order of the columns.

    A missing optional column yields an empty string.
    """
    with _open(path) as handle:
        reader = csv.reader(handle)
        header = next((row for row in reader if row), None)
        if header is None:
            raise TraceError(f"trace file '{path}' is empty; expected a CSV header")
        indexes = _column_indexes(path, reader.line_num, header, required, optional)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise TraceError(
                    f"{path}:{reader.line_num}: expected {len(header)} columns "
                    f"as in the header, found {len(fields)}"
                )
            yield reader.line_num, [fields[index] if index >= 0 else "" for index in indexes]


def _column_indexes(
    path: Path, line: int, header: list[str], required: Sequence[str], optional: Sequence[str]
) -> list[int]:
    positions = {name.strip().lower(): index for index, name in enumerate(header)}
    indexes = []
    for name in required:
        index = positions.get(name.lower())
        if index is None:
            raise TraceError(
                f"{path}:{line}: missing column '{name}'; expected columns {', '.join(required)}"
            )
        indexes.append(index)
    indexes.extend(positions.get(name.lower(), -1) for name in optional)
    return indexes


def _parse_count(path: Path, line: int, column: str, value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise _row_error(path, line, column, value, _COUNT_EXPECTED)
    return int(text)


def _row_error(path: Path, line: int, column: str, value: str, expected: str) -> TraceError:
    return TraceError(f"{path}:{line}: invalid {column} {_shorten(value)}; expected {expected}")


def _shorten(value: str) -> str:
    if len(value) > _MAX_VALUE_CHARS:
        value = value[: _MAX_VALUE_CHARS - 3] + "..."
    return repr(value)
