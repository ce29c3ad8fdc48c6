"""Import of Langfuse observations exports, imported twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.imports import ALREADY_IMPORTED, import_file

MILLION = Decimal(1_000_000)


def observation(observation_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": observation_id,
        "traceId": f"trace-{observation_id}",
        "type": "GENERATION",
        "name": "answer-question",
        "startTime": "2025-05-10T08:30:00.000Z",
        "endTime": "2025-05-10T08:30:02.500Z",
        "completionStartTime": "2025-05-10T08:30:00.700Z",
        "model": "gpt-4o-mini",
        "modelParameters": {"temperature": 0.2},
        "usageDetails": {"input": 900, "input_cached_tokens": 100, "output": 40, "total": 1040},
        "costDetails": {"input": 0.0001425, "output": 0.000024, "total": 0.0001665},
        "level": "DEFAULT",
        "statusMessage": None,
        "metadata": {"feature": "faq", "team": "support"},
        "userId": "user-12",
        "sessionId": "session-3",
    }
    base.update(fields)
    return base


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    page = {
        "data": [
            observation("obs-1"),
            observation(
                "obs-2",
                model="claude-sonnet-4-20250514",
                usageDetails={
                    "input": 100,
                    "cache_read_input_tokens": 1000,
                    "cache_creation_input_tokens": 200,
                    "output": 50,
                },
                metadata=None,
            ),
            observation(
                "obs-3",
                model="acme-internal-llm",
                usageDetails=None,
                usage={"input": 10, "output": 20, "total": 30, "unit": "TOKENS"},
                costDetails=None,
                calculatedTotalCost=0.25,
                level="ERROR",
            ),
            observation("span-1", type="SPAN", model=None),
            observation("obs-4", model=None),
        ],
        "meta": {"page": 1, "limit": 50, "totalItems": 5, "totalPages": 1},
    }
    path = tmp_path / "observations.json"
    path.write_text(json.dumps(page), encoding="utf-8")
    return path


def test_observations_imported_once(ledger: Ledger, export: Path) -> None:
    first = import_file(ledger, "langfuse", export)
    second = import_file(ledger, "langfuse", export)

    assert first.rows_read == 5
    assert first.imported == 3
    assert first.skipped == {"type SPAN is not a model call": 1, "missing model": 1}
    assert first.first_skipped["missing model"] == "observation 5"
    assert second.imported == 0
    assert second.skipped[ALREADY_IMPORTED] == 3


def test_generation_mapped(ledger: Ledger, export: Path) -> None:
    import_file(ledger, "langfuse", export)

    record = ledger.get("langfuse:obs-1")

    assert record is not None
    assert record.started_at == datetime(2025, 5, 10, 8, 30, tzinfo=UTC)
    assert record.first_token_at == datetime(2025, 5, 10, 8, 30, 0, 700000, tzinfo=UTC)
    assert record.provider == "openai"
    assert record.endpoint == "generation"
    assert record.input_tokens == 1000
    assert record.cache_read_tokens == 100
    assert record.output_tokens == 40
    assert (
        record.cost_usd
        == (900 * Decimal("0.15") + 100 * Decimal("0.075") + 40 * Decimal("0.6")) / MILLION
    )
    assert record.user == "user-12"
    assert record.session == "session-3"
    assert record.feature == "faq"
    assert record.team == "support"
    assert record.details["import"]["trace_id"] == "trace-obs-1"
    assert record.details["import"]["source_cost_usd"] == "0.0001665"


def test_anthropic_usage_types_summed(ledger: Ledger, export: Path) -> None:
    import_file(ledger, "langfuse", export)

    record = ledger.get("langfuse:obs-2")

    assert record is not None
    assert record.provider == "anthropic"
    assert record.input_tokens == 1300
    assert record.cache_read_tokens == 1000
    assert record.cache_write_tokens == 200
    assert record.output_tokens == 50
    assert record.feature is None


def test_unknown_model_uses_langfuse_cost(ledger: Ledger, export: Path) -> None:
    import_file(ledger, "langfuse", export)

    record = ledger.get("langfuse:obs-3")

    assert record is not None
    assert record.provider == "unknown"
    assert record.input_tokens == 10
    assert record.output_tokens == 20
    assert record.cost_usd == Decimal("0.25")
    assert record.error_type == "langfuse_error"
    assert record.details["import"]["price_source"] == "langfuse"


def test_jsonl_export_read(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "observations.jsonl"
    lines = [observation("a"), observation("b", type="EMBEDDING", model="text-embedding-3-small")]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    report = import_file(ledger, "langfuse", path)
    embedding = ledger.get("langfuse:b")

    assert report.imported == 2
    assert embedding is not None
    assert embedding.endpoint == "embedding"
