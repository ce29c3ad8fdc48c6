"""Record checks and the exact JSON form of records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from tests.ledger_support import make_record, unpriced
from thrifty.errors import LedgerError
from thrifty.ledger.serialize import (
    check_record,
    decode_record,
    encode_record,
    record_from_dict,
    record_to_dict,
    to_nanousd,
)

FULL = make_record(
    "req-full",
    started_at=datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
    first_token_at=datetime(2025, 2, 1, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ended_at=datetime(2025, 2, 1, 0, 0, 1, tzinfo=UTC),
    streamed=True,
    error_type=None,
    cache_read_tokens=1024,
    cache_write_tokens=128,
    cache_write_1h_tokens=64,
    reasoning_tokens=100,
    usage_estimated=True,
    cost_usd=Decimal("0.0000000416666666666666664"),
    cost_breakdown={"input": Decimal("1.5E-10"), "cache_read": Decimal("0.000000000000000000001")},
    service_tier_requested="flex",
    service_tier_served="flex",
    key_id="key_7",
    team="search",
    project="p1",
    user="u-42",
    feature="chat",
    session="s-9",
    tags={"env": "prod", "région": "eu-west-1"},
    cache_status="miss",
    upstream_ms=812.0000000000001,
    overhead_ms=0.1,
)


def test_json_round_trip_is_exact() -> None:
    line = encode_record(FULL)
    decoded = decode_record(line)
    assert decoded == FULL
    assert decoded.cost_usd == Decimal("0.0000000416666666666666664")
    assert decoded.upstream_ms == 812.0000000000001
    assert decoded.first_token_at is not None
    assert decoded.first_token_at.utcoffset() == timedelta(hours=2)


def test_json_line_has_decimal_strings_and_offsets() -> None:
    line = encode_record(FULL)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    data = orjson.loads(line)
    assert data["cost_usd"] == "0.0000000416666666666666664"
    assert data["cost_breakdown"]["input"] == "0.00000000015"
    assert data["started_at"] == "2025-01-31T23:59:59.999999+00:00"
    assert data["first_token_at"] == "2025-02-01T01:00:00.000001+02:00"


def test_record_to_dict_is_json_ready() -> None:
    data = record_to_dict(FULL)
    assert orjson.loads(orjson.dumps(data)) == data
    assert record_from_dict(data) == FULL


def test_unpriced_round_trip() -> None:
    record = unpriced("req-u")
    data = orjson.loads(encode_record(record))
    assert data["cost_usd"] is None
    assert data["unpriced"] is True
    assert decode_record(encode_record(record)) == record


def test_decode_rejects_float_cost() -> None:
    data = record_to_dict(FULL)
    data["cost_usd"] = 0.1
    with pytest.raises(LedgerError, match="decimal strings"):
        record_from_dict(data)


def test_decode_rejects_unknown_field() -> None:
    data = record_to_dict(FULL)
    data["surprise"] = 1
    with pytest.raises(LedgerError, match=r"unknown record fields \['surprise'\]"):
        record_from_dict(data)


def test_decode_rejects_invalid_json() -> None:
    with pytest.raises(LedgerError, match="invalid JSON"):
        decode_record(b'{"request_id": "x", "start')


def test_decode_rejects_missing_field() -> None:
    data = record_to_dict(FULL)
    del data["provider"]
    with pytest.raises(LedgerError, match="provider"):
        record_from_dict(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"request_id": ""}, "invalid request_id"),
        ({"started_at": datetime(2025, 1, 1)}, "started_at .* naive"),
        ({"ended_at": datetime(2025, 1, 1)}, "ended_at .* naive"),
        ({"input_tokens": -1}, "input_tokens -1"),
        ({"output_tokens": 1.5}, "output_tokens 1.5"),
        ({"cost_usd": None}, "unpriced is False but cost_usd is None"),
        ({"unpriced": True}, "unpriced is True but cost_usd is Decimal"),
        ({"cost_usd": Decimal("-0.01")}, "cost_usd Decimal\\('-0.01'\\)"),
        ({"cost_usd": Decimal("NaN")}, "cost_usd Decimal\\('NaN'\\)"),
        ({"cost_usd": 0.5}, "cost_usd 0.5"),
        ({"cost_breakdown": {"input": 0.5}}, "cost_breakdown\\['input'\\]"),
        ({"tags": {"env": 3}}, "tag 'env'=3"),
    ],
)
def test_check_record_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        check_record(replace(make_record("req-bad"), **changes))


def test_check_record_accepts_free_request() -> None:
    check_record(make_record("req-free", cost_usd=Decimal(0), cost_breakdown={}))


@pytest.mark.parametrize(
    ("amount", "nanos"),
    [
        ("0", 0),
        ("1", 1_000_000_000),
        ("0.000000001", 1),
        ("0.0000000005", 0),
        ("0.0000000015", 2),
        ("0.0000000025", 2),
        ("0.00000000250000000000001", 3),
        ("0.0000000416666666666666664", 42),
        ("12345678901.123456789", 12_345_678_901_123_456_789),
        ("1E+3", 1_000_000_000_000),
    ],
)
def test_to_nanousd_rounds_half_even(amount: str, nanos: int) -> None:
    assert to_nanousd(Decimal(amount)) == nanos
