"""Map RequestRecords to rows of the ``requests`` and ``request_tags`` tables and back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from thrifty.ledger.record import RequestRecord
from thrifty.ledger.serialize import details_json_default, to_nanousd

_JSON_FIELDS = ("cost_breakdown", "tags", "details")
_RECORD_FIELDS = tuple(item.name for item in dataclasses.fields(RequestRecord))


def record_to_row(record: RequestRecord) -> dict[str, Any]:
    """Return the ``requests`` row of a checked record."""
    row = {name: getattr(record, name) for name in _RECORD_FIELDS}
    row["cost_nanousd"] = None if record.cost_usd is None else to_nanousd(record.cost_usd)
    row["cost_breakdown"] = orjson.dumps(
        {token_class: format(amount, "f") for token_class, amount in record.cost_breakdown.items()}
    ).decode()
    row["tags"] = orjson.dumps(record.tags).decode()
    row["details"] = orjson.dumps(record.details, default=details_json_default).decode()
    return row


def tag_rows(record: RequestRecord) -> list[dict[str, str]]:
    """Return the ``request_tags`` rows of a record, one per tag."""
    return [
        {"request_id": record.request_id, "key": key, "value": value}
        for key, value in record.tags.items()
    ]


def row_to_record(row: Mapping[Any, Any]) -> RequestRecord:
    """Rebuild a record from a ``requests`` row."""
    values = {name: row[name] for name in _record_columns()}
    breakdown = orjson.loads(row["cost_breakdown"])
    values["cost_breakdown"] = {
        token_class: Decimal(amount) for token_class, amount in breakdown.items()
    }
    values["tags"] = orjson.loads(row["tags"])
    values["details"] = orjson.loads(row["details"])
    return RequestRecord(**values)


def _record_columns() -> list[str]:
    return [
        item.name for item in dataclasses.fields(RequestRecord) if item.name not in _JSON_FIELDS
    ]
