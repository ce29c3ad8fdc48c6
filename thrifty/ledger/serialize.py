"""Check RequestRecords and convert them to and from JSON, exactly.

Decimals travel as decimal strings and datetimes as ISO-8601 text with their
UTC offset, so a record read back equals the record written.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import orjson

from thrifty.errors import LedgerError
from thrifty.ledger.record import RequestRecord

# Enough digits for any amount a record holds, so no operation on it rounds
# except the final one to whole nano-dollars.
_NANO_CONTEXT = Context(prec=100, Emax=999_999, Emin=-999_999)
_FIELD_NAMES = frozenset(item.name for item in dataclasses.fields(RequestRecord))
_DATETIME_FIELDS = ("started_at", "first_token_at", "ended_at")
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def check_record(record: RequestRecord) -> None:
    """Raise LedgerError if a record cannot be stored faithfully."""
    if not isinstance(record.request_id, str) or not record.request_id:
        raise LedgerError(
            f"invalid request_id {record.request_id!r}; it must be a non-empty string"
        )
    for name in _DATETIME_FIELDS:
        _check_aware(record, name, getattr(record, name))
    for name in _TOKEN_FIELDS:
        _check_count(record, name, getattr(record, name))
    _check_cost(record)
    for token_class, amount in record.cost_breakdown.items():
        _check_amount(record, f"cost_breakdown[{token_class!r}]", amount)
    for key, value in record.tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise LedgerError(
                f"record {record.request_id}: tag {key!r}={value!r} is invalid; "
                "tag keys and values must be strings"
            )


def _check_aware(record: RequestRecord, name: str, value: datetime | None) -> None:
    if value is None:
        if name == "started_at":
            raise LedgerError(f"record {record.request_id}: started_at is missing")
        return
    if value.tzinfo is None or value.utcoffset() is None:
        raise LedgerError(
            f"record {record.request_id}: {name} {value.isoformat()} is a naive datetime; "
            "pass a timezone-aware datetime (UTC)"
        )


def _check_count(record: RequestRecord, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LedgerError(
            f"record {record.request_id}: {name} {value!r} is not a non-negative integer"
        )


def _check_cost(record: RequestRecord) -> None:
    if (record.cost_usd is None) != record.unpriced:
        raise LedgerError(
            f"record {record.request_id}: unpriced is {record.unpriced} but cost_usd is "
            f"{record.cost_usd!r}; an unpriced record has cost_usd None, a priced one a Decimal"
        )
    if record.cost_usd is not None:
        _check_amount(record, "cost_usd", record.cost_usd)


def _check_amount(record: RequestRecord, name: str, value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise LedgerError(
            f"record {record.request_id}: {name} {value!r} is not a finite, non-negative Decimal"
        )


def to_nanousd(amount: Decimal) -> int:
    """Round a USD amount to whole nano-dollars, half to even."""
    # Scaling by 10**9 only moves the exponent, so it is exact; rounding to an
    # integer then happens once, half to even.
    nanos = amount.scaleb(9, _NANO_CONTEXT).to_integral_value(ROUND_HALF_EVEN, _NANO_CONTEXT)
    return int(nanos)


def record_to_dict(record: RequestRecord) -> dict[str, Any]:
    """Return a record as JSON-ready values: decimal strings and ISO-8601 datetimes."""
    data: dict[str, Any] = {}
    for item in dataclasses.fields(record):
        data[item.name] = getattr(record, item.name)
    for name in _DATETIME_FIELDS:
        moment = data[name]
        data[name] = None if moment is None else moment.isoformat()
    data["cost_usd"] = _decimal_text(record.cost_usd)
    data["cost_breakdown"] = {
        token_class: format(amount, "f") for token_class, amount in record.cost_breakdown.items()
    }
    data["tags"] = dict(record.tags)
    data["details"] = orjson.loads(orjson.dumps(record.details, default=details_json_default))
    return data


def record_from_dict(data: dict[str, Any]) -> RequestRecord:
    """Rebuild and check a record from ``record_to_dict`` output; raise LedgerError if invalid."""
    unknown = sorted(set(data) - _FIELD_NAMES)
    if unknown:
        raise LedgerError(f"unknown record fields {unknown}; was it written by a newer Thrifty?")
    data = dict(data)
    try:
        for name in _DATETIME_FIELDS:
            if data.get(name) is not None:
                data[name] = datetime.fromisoformat(data[name])
        if data.get("cost_usd") is not None:
            data["cost_usd"] = _parse_decimal("cost_usd", data["cost_usd"])
        data["cost_breakdown"] = {
            token_class: _parse_decimal(f"cost_breakdown[{token_class!r}]", amount)
            for token_class, amount in data.get("cost_breakdown", {}).items()
        }
        record = RequestRecord(**data)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise LedgerError(f"invalid record: {exc}") from exc
    check_record(record)
    return record


def encode_record(record: RequestRecord) -> bytes:
    """Serialize a record as one JSON line, newline included."""
    return orjson.dumps(record_to_dict(record), option=orjson.OPT_APPEND_NEWLINE)


def decode_record(line: bytes) -> RequestRecord:
    """Parse one JSON line written by ``encode_record``; raise LedgerError if invalid."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LedgerError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LedgerError(f"expected a JSON object, got {type(data).__name__}")
    return record_from_dict(data)


def details_json_default(value: object) -> str:
    """Write a Decimal in ``details`` as its exact decimal string."""
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _parse_decimal(name: str, value: object) -> Decimal:
    # A JSON number would arrive as a float, already rounded to binary.
    if not isinstance(value, str):
        raise LedgerError(f"{name} is {value!r}; amounts must be decimal strings such as '0.0125'")
    return Decimal(value)


def _decimal_text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")
