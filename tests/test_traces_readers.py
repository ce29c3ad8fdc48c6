"""Trace readers on the real public traces and on small files written here."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest

from tests.services import require_shared_data
from thrifty.errors import TraceError
from thrifty.traces import TraceRow, detect_format, read_trace

BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def azure_offset(first: str, later: str) -> float:
    """Seconds between two Azure timestamps, computed independently of the reader."""

    def split(value: str) -> tuple[datetime, Decimal]:
        whole, fraction = value.split(".")
        return datetime.strptime(whole, "%Y-%m-%d %H:%M:%S"), Decimal(f"0.{fraction}")

    first_time, first_fraction = split(first)
    later_time, later_fraction = split(later)
    whole_seconds = int((later_time - first_time).total_seconds())
    return float(whole_seconds + later_fraction - first_fraction)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- real traces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows"), [("azure_llm_2023_conv.csv", 19_366), ("azure_llm_2023_code.csv", 8_819)]
)
def test_azure_real_rows_match_csv(name: str, rows: int) -> None:
    path = require_shared_data(f"traces/{name}")
    with path.open(newline="") as handle:
        expected = list(csv.DictReader(handle))

    read = list(read_trace(path))

    assert detect_format(path) == "azure"
    assert len(expected) == rows
    assert len(read) == rows
    first = expected[0]["TIMESTAMP"]
    for index in (0, 1, 2, 999, rows // 2, rows - 1):
        row = read[index]
        assert row.line == index + 2
        assert row.input_tokens == int(expected[index]["ContextTokens"])
        assert row.output_tokens == int(expected[index]["GeneratedTokens"])
        assert row.offset_s == pytest.approx(
            azure_offset(first, expected[index]["TIMESTAMP"]), abs=1e-9
        )
        assert row.prefix_blocks == ()
        assert row.model is None
        assert row.failed is False


def test_azure_first_rows_exact() -> None:
    path = require_shared_data("traces/azure_llm_2023_conv.csv")
    with path.open(newline="") as handle:
        expected = list(islice(csv.DictReader(handle), 500))

    read = list(islice(read_trace(path), 500))

    assert len(read) == 500
    assert [row.input_tokens for row in read] == [int(r["ContextTokens"]) for r in expected]
    assert [row.output_tokens for row in read] == [int(r["GeneratedTokens"]) for r in expected]
    # 18:15:46.6805900 to 18:15:50.9951690: seven fractional digits kept.
    assert read[1].offset_s == pytest.approx(4.314579, abs=1e-9)


def test_mooncake_real_rows_match_json() -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    with path.open() as handle:
        expected = [json.loads(line) for line in handle if line.strip()]

    read = list(read_trace(path))

    assert detect_format(path) == "mooncake"
    assert len(expected) == 12_031
    assert len(read) == 12_031
    first = expected[0]["timestamp"]
    for index in (0, 1, 2, 133, 6_000, 12_030):
        row = read[index]
        assert row.line == index + 1
        assert row.input_tokens == expected[index]["input_length"]
        assert row.output_tokens == expected[index]["output_length"]
        assert row.prefix_blocks == tuple(expected[index]["hash_ids"])
        assert row.offset_s == pytest.approx((expected[index]["timestamp"] - first) / 1000)


def test_mooncake_first_rows_exact() -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    with path.open() as handle:
        expected = [json.loads(line) for line in islice(handle, 300)]

    read = list(islice(read_trace(path), 300))

    assert len(read) == 300
    assert [row.input_tokens for row in read] == [r["input_length"] for r in expected]
    assert [row.output_tokens for row in read] == [r["output_length"] for r in expected]
    assert [list(row.prefix_blocks) for row in read] == [r["hash_ids"] for r in expected]
    assert read[0].prefix_blocks[:3] == (0, 1, 2)


# --- BurstGPT ------------------------------------------------------------------------


def test_burstgpt_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "burst.csv",
        BURSTGPT_HEADER
        + "5,ChatGPT,472,18,490,Conversation log\n"
        + "45.5,GPT-4,1087,0,1087,API log\n"
        + "118,ChatGPT,0,3,3,Conversation log\n",
    )

    rows = list(read_trace(path))

    assert detect_format(path) == "burstgpt"
    assert rows == [
        TraceRow(
            offset_s=0.0,
            input_tokens=472,
            output_tokens=18,
            model="ChatGPT",
            line=2,
            log_type="Conversation log",
        ),
        TraceRow(
            offset_s=40.5,
            input_tokens=1087,
            output_tokens=0,
            model="GPT-4",
            line=3,
            log_type="API log",
            failed=True,
        ),
        TraceRow(
            offset_s=113.0,
            input_tokens=0,
            output_tokens=3,
            model="ChatGPT",
            line=4,
            log_type="Conversation log",
        ),
    ]


def test_burstgpt_column_order_free(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "burst.csv",
        "Log Type,Timestamp,Request tokens,Response tokens,Total tokens,Model\n"
        "API log,10,100,20,120,GPT-4\n",
    )

    (row,) = read_trace(path)

    assert row.input_tokens == 100
    assert row.output_tokens == 20
    assert row.model == "GPT-4"
    assert row.log_type == "API log"


def test_burstgpt_without_log_type(tmp_path: Path) -> None:
    path = write(tmp_path, "burst.csv", "Timestamp,Model,Request tokens,Response tokens\n1,x,2,3\n")

    (row,) = read_trace(path)

    assert row.log_type is None
    assert row.input_tokens == 2


# --- format detection and small files ------------------------------------------------


def test_azure_timestamp_fractions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 23:59:59.9999999,10,1\n"
        "2023-11-17 00:00:00,20,2\n"
        "2023-11-17T00:00:01.5,30,3\n",
    )

    rows = list(read_trace(path))

    assert [row.offset_s for row in rows] == pytest.approx([0.0, 1e-7, 1.5000001], abs=1e-12)
    assert [row.line for row in rows] == [2, 3, 4]


def test_byte_order_mark_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_bytes(
        b"\xef\xbb\xbfTIMESTAMP,ContextTokens,GeneratedTokens\r\n"
        b"2023-11-16 18:15:46.6805900,374,44\r\n\r\n"
        b"2023-11-16 18:15:50.9951690,396,109"
    )

    rows = list(read_trace(path))

    assert detect_format(path) == "azure"
    assert [(row.input_tokens, row.output_tokens, row.line) for row in rows] == [
        (374, 44, 2),
        (396, 109, 4),
    ]


def test_mooncake_without_hash_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.jsonl",
        '{"timestamp": 1000, "input_length": 9, "output_length": 2}\n\n'
        '{"timestamp": 3500, "input_length": 7, "output_length": 0, "hash_ids": [4]}\n',
    )

    rows = list(read_trace(path))

    assert rows == [
        TraceRow(offset_s=0.0, input_tokens=9, output_tokens=2, line=1),
        TraceRow(offset_s=2.5, input_tokens=7, output_tokens=0, prefix_blocks=(4,), line=3),
    ]


def test_format_argument_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n')

    with pytest.raises(TraceError) as caught:
        list(read_trace(path, "azure"))

    assert "missing column 'TIMESTAMP'" in str(caught.value)


def test_rows_stream_before_a_bad_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47.0000000,oops,44\n",
    )
    rows = read_trace(path)

    first = next(rows)

    assert first.input_tokens == 374
    with pytest.raises(TraceError):
        next(rows)


# --- errors --------------------------------------------------------------------------

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
GOOD_AZURE = "2023-11-16 18:15:46.6805900,374,44\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            AZURE_HEADER + GOOD_AZURE + "2023-11-16 18:15:47.1,12a,4\n",
            ":3: invalid ContextTokens '12a'; expected a non-negative integer token count",
        ),
        (
            AZURE_HEADER + GOOD_AZURE + "2023-11-16 18:15:47.1,12,-4\n",
            ":3: invalid GeneratedTokens '-4'; expected a non-negative integer token count",
        ),
        (
            AZURE_HEADER + "16/11/2023 18:15,12,4\n",
            ":2: invalid TIMESTAMP '16/11/2023 18:15'; expected a timestamp like",
        ),
        (
            AZURE_HEADER + "2023-13-16 18:15:46.1,12,4\n",
            ":2: invalid TIMESTAMP '2023-13-16 18:15:46.1'; expected a valid date and time",
        ),
        (AZURE_HEADER + GOOD_AZURE + "2023-11-16 18:15:47.1,12\n", ":3: expected 3 columns"),
        ("TIMESTAMP,Context,Generated\n" + GOOD_AZURE, ":1: unrecognized trace header"),
        (
            BURSTGPT_HEADER + "-3,ChatGPT,1,2,3,API log\n",
            ":2: invalid Timestamp '-3'; expected a non-negative number of seconds",
        ),
        (
            BURSTGPT_HEADER + "nan,ChatGPT,1,2,3,API log\n",
            ":2: invalid Timestamp 'nan'; expected a non-negative number of seconds",
        ),
        (
            BURSTGPT_HEADER + "3,ChatGPT,1.5,2,3,API log\n",
            ":2: invalid Request tokens '1.5'; expected a non-negative integer token count",
        ),
        (
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1,\n',
            ":2: invalid JSON",
        ),
        ('{"timestamp": 0, "output_length": 1}\n', ":1: missing field 'input_length'"),
        (
            '{"timestamp": 0, "input_length": -5, "output_length": 1}\n',
            ":1: invalid input_length '-5'; expected a non-negative integer token count",
        ),
        (
            '{"timestamp": 0, "input_length": 5, "output_length": true}\n',
            ":1: invalid output_length 'true'; expected a non-negative integer token count",
        ),
        (
            '{"timestamp": "now", "input_length": 5, "output_length": 1}\n',
            ":1: invalid timestamp '\"now\"'; expected a non-negative number",
        ),
        (
            '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1, "a"]}\n',
            ":1: invalid hash_ids '[1, \"a\"]'; expected a list of non-negative integer ids",
        ),
        ('{"timestamp": 0}\n[1, 2]\n', ":1: missing field 'input_length'"),
        ('{"timestamp": 0, "input_length": 5, "output_length": 1}\n[1]\n', ":2: invalid row"),
    ],
)
def test_malformed_row_names_file_line_value(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "trace.txt", text)

    with pytest.raises(TraceError) as caught:
        list(read_trace(path))

    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    with pytest.raises(TraceError) as caught:
        read_trace(path)

    assert str(caught.value) == f"trace file '{path}' not found; check the path"


def test_missing_file_with_format(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    with pytest.raises(TraceError) as caught:
        read_trace(path, "azure")

    assert "not found" in str(caught.value)


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", "\n\n")

    with pytest.raises(TraceError) as caught:
        detect_format(path)

    assert f"trace file '{path}' is empty" in str(caught.value)


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, "azure.csv", AZURE_HEADER + GOOD_AZURE)

    with pytest.raises(TraceError) as caught:
        read_trace(path, "sharegpt")

    assert str(caught.value) == (
        "unknown trace format 'sharegpt'; use one of azure, mooncake, burstgpt"
    )


def test_long_value_shortened(tmp_path: Path) -> None:
    path = write(
        tmp_path, "azure.csv", AZURE_HEADER + "2023-11-16 18:15:46.1," + "9x" * 100 + ",1\n"
    )

    with pytest.raises(TraceError) as caught:
        list(read_trace(path))

    assert "'" + "9x" * 28 + "9...'" in str(caught.value)
