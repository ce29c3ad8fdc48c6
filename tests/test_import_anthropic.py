"""Imports of Anthropic's Usage and Cost Admin API pages, each imported twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.exports import iter_records
from thrifty.ledger.imports import ALREADY_IMPORTED, import_file

MILLION = Decimal(1_000_000)
# claude-sonnet-4 per million tokens (genai-prices data): input, output, cache
# read, 5-minute and 1-hour cache writes; web search $10 per thousand.
SONNET = {
    "input": Decimal(3),
    "output": Decimal(15),
    "cache_read": Decimal("0.3"),
    "write_5m": Decimal("3.75"),
    "write_1h": Decimal(6),
}

USAGE_REPORT = {
    "data": [
        {
            "starting_at": "2025-08-01T00:00:00Z",
            "ending_at": "2025-08-02T00:00:00Z",
            "results": [
                {
                    "api_key_id": "apikey_01Rj2N8SVvo6BePZj99NhmiT",
                    "cache_creation": {
                        "ephemeral_1h_input_tokens": 1000,
                        "ephemeral_5m_input_tokens": 500,
                    },
                    "cache_read_input_tokens": 200,
                    "context_window": "0-200k",
                    "model": "claude-sonnet-4-20250514",
                    "output_tokens": 500,
                    "server_tool_use": {"web_search_requests": 10},
                    "service_tier": "standard",
                    "uncached_input_tokens": 1500,
                    "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
                },
                {
                    "api_key_id": None,
                    "cache_creation": {
                        "ephemeral_1h_input_tokens": 0,
                        "ephemeral_5m_input_tokens": 0,
                    },
                    "cache_read_input_tokens": 0,
                    "context_window": None,
                    "model": "claude-sonnet-4-20250514",
                    "output_tokens": 1000,
                    "server_tool_use": None,
                    "service_tier": "batch",
                    "uncached_input_tokens": 2000,
                    "workspace_id": None,
                },
                {
                    "uncached_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 0,
                    "model": "claude-haiku-4-5",
                },
            ],
        }
    ],
    "has_more": False,
    "next_page": None,
}

COST_REPORT = {
    "data": [
        {
            "starting_at": "2025-08-01T00:00:00Z",
            "ending_at": "2025-08-02T00:00:00Z",
            "results": [
                {
                    "amount": "123.45",
                    "currency": "USD",
                    "cost_type": "tokens",
                    "description": "Claude Sonnet 4 Usage - Input Tokens",
                    "model": "claude-sonnet-4-20250514",
                    "service_tier": "standard",
                    "token_type": "uncached_input_tokens",
                    "context_window": "0-200k",
                    "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
                },
                {
                    "amount": "0.0000012345",
                    "currency": "USD",
                    "cost_type": "web_search",
                    "description": "Web Search",
                    "model": None,
                    "service_tier": None,
                    "token_type": None,
                    "context_window": None,
                    "workspace_id": None,
                },
                {"amount": "-50", "currency": "USD", "description": "Credit"},
            ],
        }
    ],
    "has_more": False,
    "next_page": None,
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_usage_report_imported_once(ledger: Ledger, tmp_path: Path) -> None:
    path = write(tmp_path / "usage.json", USAGE_REPORT)

    first = import_file(ledger, "anthropic-usage", path)
    second = import_file(ledger, "anthropic-usage", path)

    assert first.rows_read == 3
    assert first.imported == 2
    assert first.skipped == {"no usage in the bucket": 1}
    assert first.first_skipped["no usage in the bucket"] == "bucket 1 result 3"
    assert second.imported == 0
    assert second.skipped == {"no usage in the bucket": 1, ALREADY_IMPORTED: 2}
    assert ledger.count() == 2


def test_usage_result_mapped_and_priced(ledger: Ledger, tmp_path: Path) -> None:
    import_file(ledger, "anthropic-usage", write(tmp_path / "usage.json", USAGE_REPORT))
    standard, batch = sorted(iter_records(ledger), key=lambda record: record.output_tokens)

    assert standard.provider == "anthropic"
    assert standard.endpoint == "usage.messages"
    assert standard.started_at == datetime(2025, 8, 1, tzinfo=UTC)
    assert standard.ended_at == datetime(2025, 8, 2, tzinfo=UTC)
    assert standard.input_tokens == 1500 + 200 + 500 + 1000
    assert standard.cache_read_tokens == 200
    assert standard.cache_write_tokens == 1500
    assert standard.cache_write_1h_tokens == 1000
    assert standard.output_tokens == 500
    assert standard.project == "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
    assert standard.tags == {"api_key_id": "apikey_01Rj2N8SVvo6BePZj99NhmiT"}
    assert standard.cost_usd == (
        1500 * SONNET["input"]
        + 200 * SONNET["cache_read"]
        + 500 * SONNET["write_5m"]
        + 1000 * SONNET["write_1h"]
        + 500 * SONNET["output"]
    ) / MILLION + 10 * Decimal("0.01")
    assert batch.service_tier_served == "batch"
    assert batch.cost_usd == (2000 * SONNET["input"] + 1000 * SONNET["output"]) / MILLION / 2


def test_cost_report_amounts_are_cents(ledger: Ledger, tmp_path: Path) -> None:
    path = write(tmp_path / "costs.json", COST_REPORT)

    first = import_file(ledger, "anthropic-costs", path)
    second = import_file(ledger, "anthropic-costs", path)
    tokens, search = sorted(iter_records(ledger), key=lambda record: record.cost_usd or 0)[::-1]

    assert first.imported == 2
    assert first.skipped == {"negative amount (a credit); credits are not imported": 1}
    assert second.imported == 0
    assert tokens.cost_usd == Decimal("1.2345")
    assert tokens.model_requested == "claude-sonnet-4-20250514"
    assert tokens.details["import"]["token_type"] == "uncached_input_tokens"
    assert search.cost_usd == Decimal("0.000000012345")
    assert search.model_requested == "Web Search"
    assert search.details["import"]["cost_type"] == "web_search"
