"""Imports of OpenAI Batch API output, Usage API and Costs API files, each imported twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.ledger_support import BACKENDS, ledger_db_url
from thrifty.errors import ImportFileError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.exports import iter_records
from thrifty.ledger.imports import ALREADY_IMPORTED, ImportOptions, import_file

MILLION = Decimal(1_000_000)
# gpt-4o-mini per million tokens at batch rates: half the list prices 0.15 and 0.6.
BATCH_INPUT = Decimal("0.075")
BATCH_OUTPUT = Decimal("0.3")
CREATED = 1_754_000_000  # 2025-07-31T22:13:20Z


@pytest.fixture(params=BACKENDS)
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    for url in ledger_db_url(request, tmp_path):
        ledger = open_ledger(url)
        yield ledger
        ledger.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def chat_line(line_id: str, custom_id: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": f"req_{line_id}",
            "body": {
                "id": f"chatcmpl-{line_id}",
                "object": "chat.completion",
                "created": CREATED,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": 0},
                },
            },
        },
        "error": None,
    }


def batch_file(tmp_path: Path) -> Path:
    failed = {
        "id": "batch_req_3",
        "custom_id": "task-3",
        "response": None,
        "error": {"code": "batch_expired", "message": "This request could not be executed."},
    }
    embeddings = {
        "id": "batch_req_4",
        "custom_id": "task-4",
        "response": {
            "status_code": 200,
            "request_id": "req_4",
            "body": {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            },
        },
        "error": None,
    }
    return write_jsonl(
        tmp_path / "batch_output.jsonl",
        [
            chat_line("batch_req_1", "task-1", 1000, 200),
            chat_line("batch_req_2", "task-2", 400, 50),
            failed,
            embeddings,
        ],
    )


def test_batch_output_imported_once(any_ledger: Ledger, tmp_path: Path) -> None:
    path = batch_file(tmp_path)

    first = import_file(any_ledger, "openai-batch", path)
    second = import_file(any_ledger, "openai-batch", path)

    assert first.rows_read == 4
    assert first.imported == 2
    assert first.skipped == {
        "request failed (batch_expired); failed requests are not billed": 1,
        "no timestamp in the response; pass --at with the batch's completion time": 1,
    }
    assert (
        first.first_skipped["request failed (batch_expired); failed requests are not billed"]
        == "line 3"
    )
    assert second.rows_read == 4
    assert second.imported == 0
    assert second.skipped[ALREADY_IMPORTED] == 2
    assert any_ledger.count() == 2


def test_batch_record_priced_at_batch_rates(ledger: Ledger, tmp_path: Path) -> None:
    import_file(ledger, "openai-batch", batch_file(tmp_path))

    record = ledger.get("openai-batch:batch_req_1")

    assert record is not None
    assert record.started_at == datetime.fromtimestamp(CREATED, UTC)
    assert record.provider == "openai"
    assert record.endpoint == "chat.completions"
    assert record.model_served == "gpt-4o-mini-2024-07-18"
    assert record.model_priced == "gpt-4o-mini"
    assert record.input_tokens == 1000
    assert record.output_tokens == 200
    assert record.service_tier_served == "batch"
    assert record.cost_usd == (1000 * BATCH_INPUT + 200 * BATCH_OUTPUT) / MILLION
    assert record.details["import"]["custom_id"] == "task-1"
    assert record.details["import"]["provider_request_id"] == "req_batch_req_1"


def test_batch_embeddings_take_at_option(ledger: Ledger, tmp_path: Path) -> None:
    at = datetime(2025, 8, 2, 6, 0, tzinfo=UTC)

    report = import_file(ledger, "openai-batch", batch_file(tmp_path), ImportOptions(at=at))
    record = ledger.get("openai-batch:batch_req_4")

    assert report.imported == 3
    assert record is not None
    assert record.started_at == at
    assert record.endpoint == "embeddings"
    assert record.input_tokens == 8
    assert record.cost_usd == 8 * Decimal("0.01") / MILLION


def test_batch_file_not_json_rejected(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "x"}\nnot json\n', encoding="utf-8")

    with pytest.raises(ImportFileError, match="line 2 is not JSON"):
        import_file(ledger, "openai-batch", path)


USAGE_PAGE = {
    "object": "page",
    "data": [
        {
            "object": "bucket",
            "start_time": 1_730_419_200,
            "end_time": 1_730_505_600,
            "results": [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 1_000_000,
                    "output_tokens": 500_000,
                    "input_cached_tokens": 400_000,
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": 5,
                    "project_id": "proj_reef",
                    "user_id": None,
                    "api_key_id": "key_abc",
                    "model": "gpt-4o-mini",
                    "batch": False,
                },
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 2_000_000,
                    "output_tokens": 0,
                    "input_cached_tokens": 0,
                    "num_model_requests": 3,
                    "project_id": "proj_reef",
                    "user_id": None,
                    "api_key_id": "key_abc",
                    "model": "gpt-4o-mini",
                    "batch": True,
                },
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "num_model_requests": 0,
                    "model": "gpt-4o",
                    "batch": False,
                },
            ],
        },
        {
            "object": "bucket",
            "start_time": 1_730_505_600,
            "end_time": 1_730_592_000,
            "results": [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 10,
                    "output_tokens": 10,
                    "num_model_requests": 1,
                    "model": None,
                    "batch": None,
                }
            ],
        },
    ],
    "has_more": False,
    "next_page": None,
}


def test_usage_buckets_imported_as_aggregates(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(USAGE_PAGE), encoding="utf-8")

    first = import_file(ledger, "openai-usage", path)
    second = import_file(ledger, "openai-usage", path)
    records = list(iter_records(ledger))

    assert first.rows_read == 4
    assert first.imported == 3
    assert first.skipped == {"no requests in the bucket": 1}
    assert second.imported == 0
    assert second.skipped[ALREADY_IMPORTED] == 3
    by_requests = {record.details["import"]["requests"]: record for record in records}
    standard, batch, ungrouped = by_requests[5], by_requests[3], by_requests[1]
    assert standard.endpoint == "usage.completions"
    assert standard.started_at == datetime.fromtimestamp(1_730_419_200, UTC)
    assert standard.ended_at == datetime.fromtimestamp(1_730_505_600, UTC)
    assert standard.cache_read_tokens == 400_000
    assert standard.project == "proj_reef"
    assert standard.tags == {"api_key_id": "key_abc"}
    assert (
        standard.cost_usd
        == (600_000 * Decimal("0.15") + 400_000 * Decimal("0.075") + 500_000 * Decimal("0.6"))
        / MILLION
    )
    assert batch.service_tier_served == "batch"
    assert batch.cost_usd == 2 * BATCH_INPUT
    assert ungrouped.model_requested == "(all models)"
    assert ungrouped.unpriced is True
    assert ungrouped.cost_usd is None


COSTS_PAGE = {
    "object": "page",
    "data": [
        {
            "object": "bucket",
            "start_time": 1_730_419_200,
            "end_time": 1_730_505_600,
            "results": [
                {
                    "object": "organization.costs.result",
                    "amount": {"value": 0.06, "currency": "usd"},
                    "line_item": "gpt-4o-mini, input",
                    "project_id": "proj_reef",
                },
                {
                    "object": "organization.costs.result",
                    "amount": {"value": 1.5, "currency": "eur"},
                    "line_item": "Image models",
                    "project_id": None,
                },
            ],
        }
    ],
    "has_more": False,
    "next_page": None,
}


def test_costs_imported_exactly(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(COSTS_PAGE), encoding="utf-8")

    first = import_file(ledger, "openai-costs", path)
    second = import_file(ledger, "openai-costs", path)
    [record] = list(iter_records(ledger))

    assert first.imported == 1
    assert first.skipped == {"amount in EUR, not USD; only USD amounts are imported": 1}
    assert second.imported == 0
    assert record.endpoint == "costs"
    assert record.cost_usd == Decimal("0.06")
    assert record.model_requested == "gpt-4o-mini, input"
    assert record.project == "proj_reef"
    assert record.input_tokens == 0
    assert record.details["import"]["price_source"] == "OpenAI Costs API"


def test_unknown_source_rejected(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}", encoding="utf-8")

    with pytest.raises(ImportFileError, match="unknown import source 'openai-invoices'"):
        import_file(ledger, "openai-invoices", path)
