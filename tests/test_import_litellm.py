"""Import of LiteLLM spend-log CSV exports, imported twice."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from thrifty.errors import ImportFileError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.imports import ALREADY_IMPORTED, import_file

MILLION = Decimal(1_000_000)

# Columns of the LiteLLM_SpendLogs table, in its schema's order.
COLUMNS = [
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "request_duration_ms",
    "completionStartTime",
    "model",
    "model_id",
    "model_group",
    "custom_llm_provider",
    "api_base",
    "user",
    "metadata",
    "cache_hit",
    "cache_key",
    "request_tags",
    "team_id",
    "organization_id",
    "end_user",
    "requester_ip_address",
    "messages",
    "response",
    "session_id",
    "status",
]


def row(request_id: str, **values: str) -> dict[str, str]:
    base = dict.fromkeys(COLUMNS, "")
    base.update(
        request_id=request_id,
        call_type="acompletion",
        api_key="88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        spend="0.00042",
        startTime="2025-03-01 10:00:00.123",
        endTime="2025-03-01 10:00:01.500",
        model="gpt-4o-mini",
        custom_llm_provider="openai",
        metadata="{}",
        cache_hit="False",
        request_tags="[]",
        messages="{}",
        response="{}",
        status="success",
    )
    base.update(values)
    return base


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


@pytest.fixture
def spend_logs(tmp_path: Path) -> Path:
    usage = {"usage_object": {"prompt_tokens_details": {"cached_tokens": 1024}}}
    return write_csv(
        tmp_path / "spend_logs.csv",
        [
            row(
                "chatcmpl-1",
                prompt_tokens="2048",
                completion_tokens="100",
                total_tokens="2148",
                user="alice",
                team_id="team-reef",
                session_id="sess-1",
                request_tags=json.dumps(["jobID:214590", "nightly"]),
                metadata=json.dumps(usage),
                completionStartTime="2025-03-01 10:00:00.400",
            ),
            row(
                "chatcmpl-2",
                model="my-finetune-v3",
                custom_llm_provider="",
                prompt_tokens="10",
                completion_tokens="5",
                spend="0.125",
                end_user="customer-4",
            ),
            row("chatcmpl-3", prompt_tokens="50", completion_tokens="7", cache_hit="True"),
            row("chatcmpl-4", startTime="", prompt_tokens="1", completion_tokens="1"),
            row("chatcmpl-5", prompt_tokens="-3", completion_tokens="1"),
            row("chatcmpl-6", status="failure", prompt_tokens="12", completion_tokens="0"),
        ],
    )


def test_spend_logs_imported_once(ledger: Ledger, spend_logs: Path) -> None:
    first = import_file(ledger, "litellm", spend_logs)
    second = import_file(ledger, "litellm", spend_logs)

    assert first.rows_read == 6
    assert first.imported == 4
    assert first.skipped == {"missing startTime": 1, "negative prompt_tokens": 1}
    assert first.first_skipped["missing startTime"] == "line 5"
    assert second.imported == 0
    assert second.skipped[ALREADY_IMPORTED] == 4
    assert ledger.count() == 4


def test_spend_log_row_mapped(ledger: Ledger, spend_logs: Path) -> None:
    import_file(ledger, "litellm", spend_logs)

    record = ledger.get("litellm:chatcmpl-1")

    assert record is not None
    assert record.started_at == datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert record.first_token_at == datetime(2025, 3, 1, 10, 0, 0, 400000, tzinfo=UTC)
    assert record.ended_at == datetime(2025, 3, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert record.provider == "openai"
    assert record.endpoint == "chat.completions"
    assert record.input_tokens == 2048
    assert record.cache_read_tokens == 1024
    assert record.output_tokens == 100
    assert (
        record.cost_usd
        == (1024 * Decimal("0.15") + 1024 * Decimal("0.075") + 100 * Decimal("0.6")) / MILLION
    )
    assert record.user == "alice"
    assert record.team == "team-reef"
    assert record.session == "sess-1"
    assert record.tags == {"jobID": "214590", "nightly": "true"}
    assert record.details["import"]["price_source"] == "thrifty"
    assert record.details["import"]["source_cost_usd"] == "0.00042"


def test_unknown_model_falls_back_to_litellm_spend(ledger: Ledger, spend_logs: Path) -> None:
    import_file(ledger, "litellm", spend_logs)

    record = ledger.get("litellm:chatcmpl-2")

    assert record is not None
    assert record.provider == "unknown"
    assert record.cost_usd == Decimal("0.125")
    assert record.unpriced is False
    assert record.user == "customer-4"
    assert record.details["import"]["price_source"] == "litellm spend"


def test_cache_hit_and_failure_rows(ledger: Ledger, spend_logs: Path) -> None:
    import_file(ledger, "litellm", spend_logs)

    hit = ledger.get("litellm:chatcmpl-3")
    failed = ledger.get("litellm:chatcmpl-6")

    assert hit is not None
    assert hit.cache_status == "hit"
    assert hit.cost_usd == Decimal(0)
    assert hit.input_tokens == 50
    assert failed is not None
    assert failed.error_type == "litellm_failure"
    assert failed.http_status == 0


def test_csv_without_required_columns_rejected(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,cost\n1,0.5\n", encoding="utf-8")

    with pytest.raises(ImportFileError, match="has no request_id, startTime, model column"):
        import_file(ledger, "litellm", path)
