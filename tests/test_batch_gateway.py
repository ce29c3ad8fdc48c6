"""Files and batches through the gateway: passed through with the official SDKs, then recorded."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
import sqlalchemy as sa

from tests.batch_support import openai_line
from tests.gateway_support import RunningGateway, running_gateway
from thrifty.batch.config import BatchConfig
from thrifty.batch.savings import job_cost
from thrifty.batch.store import BatchStore
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.report import ReportQuery
from thrifty.ledger.rows import row_to_record
from thrifty.ledger.schema import requests
from thrifty.ledger.sqlfuncs import JsonText
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    sections = {"batch": BatchConfig(poll_interval_s=0.05)}
    with running_gateway(tmp_path, sections=sections) as running:
        yield running


def recorded(gateway: RunningGateway, batch_id: str, count: int) -> list[RequestRecord]:
    """Wait until the watcher has recorded ``count`` results of a provider batch."""
    statement = sa.select(requests).where(
        JsonText(requests.c.details, "batch", "provider_batch") == batch_id
    )
    ledger = gateway.ledger()
    deadline = time.monotonic() + 20
    try:
        while True:
            with ledger.engine.connect() as connection:
                rows = [row_to_record(row._mapping) for row in connection.execute(statement)]
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
    finally:
        ledger.close()


def test_openai_batch_through_gateway(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
    lines = [openai_line(index) for index in range(5)]
    content = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"

    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")
    assert client.files.content(uploaded.id).content == content
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"feature": "digest"},
        extra_headers={"X-Thrifty-Team": "growth", "X-Thrifty-Tags": "env=test"},
    )
    assert batch.status == "validating"
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    output = client.files.content(done.output_file_id or "").content.splitlines()
    assert len(output) == 5
    assert [item.id for item in client.batches.list()] == [batch.id]

    records = recorded(gateway, batch.id, 5)
    engine = CostEngine()
    assert sorted(record.details["batch"]["custom_id"] for record in records) == [
        f"req-{index}" for index in range(5)
    ]
    for record in records:
        usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
        assert record.request_id == f"{batch.id}:{record.details['batch']['custom_id']}"
        assert record.provider == "openai"
        assert record.endpoint == "chat.completions"
        assert record.service_tier_served == "batch"
        assert record.cost_usd == engine.price("openai", "gpt-4o-mini", usage, batch=True).cost_usd
        assert record.team == "growth"
        assert record.feature == "digest"
        assert record.tags == {"env": "test"}

    ledger = gateway.ledger()
    try:
        jobs = BatchStore(ledger.engine).list_jobs(source="gateway")
    finally:
        ledger.close()
    assert len(jobs) == 1
    assert jobs[0].status == "completed"
    assert records[0].details["batch"]["job"] == jobs[0].job_id


def test_anthropic_batch_through_gateway(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-test", max_retries=0)
    requests_sent = [
        {
            "custom_id": f"m{index}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": f"Hello {index}"}],
            },
        }
        for index in range(3)
    ]

    batch = client.messages.batches.create(
        requests=requests_sent,  # type: ignore[arg-type]
        extra_headers={"X-Thrifty-Feature": "greetings"},
    )
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.results_url == f"{gateway.url}/v1/messages/batches/{batch.id}/results"
    results = list(client.messages.batches.results(batch.id))
    assert sorted(item.custom_id for item in results) == ["m0", "m1", "m2"]

    records = recorded(gateway, batch.id, 3)
    engine = CostEngine()
    assert len(records) == 3
    for record in records:
        usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
        expected = engine.price("anthropic", "claude-haiku-4-5", usage, batch=True).cost_usd
        assert record.provider == "anthropic"
        assert record.endpoint == "messages"
        assert record.output_tokens == 4
        assert record.cost_usd == expected
        assert record.feature == "greetings"


def test_report_by_batch(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
    content = b"\n".join(orjson.dumps(openai_line(index)) for index in range(4)) + b"\n"
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    client.batches.retrieve(batch.id)
    records = recorded(gateway, batch.id, 4)
    job_id = records[0].details["batch"]["job"]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "not a batch"}], max_tokens=3
    )

    ledger = gateway.ledger()
    deadline = time.monotonic() + 10
    try:
        while ledger.count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        report = ledger.report(ReportQuery(by=["batch"]))
        with ledger.engine.connect() as connection:
            cost = job_cost(connection, job_id)
    finally:
        ledger.close()

    groups = {group.values["batch"]: group.totals for group in report.groups}
    total = sum((record.cost_usd or Decimal(0) for record in records), Decimal(0))
    assert set(groups) == {job_id, None}
    assert groups[job_id].requests == 4
    assert groups[job_id].cost_usd == total
    assert groups[None].requests == 1
    assert cost.results == 4
    assert cost.cost_usd == total
    assert cost.standard_cost_usd == 2 * total


def test_file_not_found_passes_through(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)

    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.files.retrieve("file-missing")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
