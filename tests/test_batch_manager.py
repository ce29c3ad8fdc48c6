"""The batch manager's Python API against the sandbox: split, follow, resubmit, record, collect."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.batch_support import (
    ManualClock,
    manager_at,
    openai_line,
    read_jsonl,
    sandbox_provider,
    write_jsonl,
)
from tests.ledger_support import BACKENDS, ledger_db_url
from thrifty.batch.limits import BatchLimits
from thrifty.batch.manager import BatchManager, JobOptions
from thrifty.batch.savings import batch_savings
from thrifty.batch.schema import metadata as batch_metadata
from thrifty.batch.validate import InputOptions
from thrifty.errors import BatchError, BatchInputError
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rows import row_to_record
from thrifty.ledger.schema import VERSION_TABLE, requests
from thrifty.ledger.sqlfuncs import JsonText
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox import SandboxServer, SandboxSettings
from thrifty.usage import Usage


@pytest.fixture(autouse=True)
def batch_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_TEST_BATCH_KEY", "sk-test")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def batch_records(manager: BatchManager, job_id: str) -> list[RequestRecord]:
    """Every ledger record of one job."""
    statement = sa.select(requests).where(JsonText(requests.c.details, "batch", "job") == job_id)
    with manager.ledger.engine.connect() as connection:
        return [row_to_record(row._mapping) for row in connection.execute(statement)]


def batch_price(record: RequestRecord, engine: CostEngine) -> Decimal | None:
    usage = Usage(
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_read_tokens=record.cache_read_tokens,
        reasoning_tokens=record.reasoning_tokens,
    )
    return engine.price("openai", record.model_requested, usage, batch=True).cost_usd


def test_large_job_split_and_collected_in_order(tmp_path: Path, sqlite_url: str) -> None:
    """A job of 120,000 requests: three files, every result recorded, collected in order.

    The slowest batch test (about 25 s on 2 cores), because every one of the
    120,000 results becomes a ledger record.
    """
    # 120,000 requests are more than two OpenAI batch files hold (50,000 each).
    # One prompt for all keeps the sandbox's token counting and the pricing quick.
    count = 120_000
    lines = [openai_line(index, content="Classify this line.") for index in range(count)]
    path = write_jsonl(tmp_path / "large.jsonl", lines)

    with SandboxServer() as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions(name="large"))
        assert [part.request_count for part in status.parts] == [50_000, 50_000, 20_000]
        status = manager.wait(status.job.job_id, poll_interval_s=0.05)
        summary = manager.collect(status.job.job_id, tmp_path / "large.results.jsonl")
        cost = manager.status(status.job.job_id).cost

    assert status.job.status == "completed"
    assert status.counts == Counter({"succeeded": count})
    assert summary.counts == Counter({"succeeded": count})
    collected = read_jsonl(tmp_path / "large.results.jsonl")
    assert [line["custom_id"] for line in collected] == [f"req-{index}" for index in range(count)]
    assert [line["line"] for line in collected[:3]] == [1, 2, 3]
    assert collected[-1]["response"]["usage"]["completion_tokens"] == 2
    assert cost.results == count
    assert cost.unpriced == 0
    assert cost.cost_usd * 2 == cost.standard_cost_usd
    for part in status.parts:
        assert part.file_path is not None
        assert Path(part.file_path).stat().st_size <= 200 * 1000 * 1000


def test_expired_requests_resubmitted_until_done(tmp_path: Path, db_url: str) -> None:
    count = 400
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(count)])
    settings = SandboxSettings(batch_expiry_rate=0.1, seed=7)
    engine = CostEngine()

    with SandboxServer(settings) as server, manager_at(db_url, tmp_path / "jobs") as manager:
        options = JobOptions(max_rounds=10, limits=BatchLimits(150, 10**8))
        status = manager.submit(path, sandbox_provider(server.url), options)
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        job_id = status.job.job_id
        manager.collect(job_id, tmp_path / "output.jsonl")
        records = batch_records(manager, job_id)

    assert status.job.status == "completed"
    assert status.job.round >= 1
    assert status.counts == Counter({"succeeded": count})
    collected = read_jsonl(tmp_path / "output.jsonl")
    assert [line["custom_id"] for line in collected] == [f"req-{index}" for index in range(count)]
    assert {line["status"] for line in collected} == {"succeeded"}
    assert max(line["attempts"] for line in collected) >= 2

    succeeded = [record for record in records if record.error_type is None]
    expired = [record for record in records if record.error_type == "batch_expired"]
    assert len(succeeded) == count
    assert len({record.details["batch"]["custom_id"] for record in succeeded}) == count
    assert len(expired) == len(records) - count
    assert len(expired) >= count // 20
    for record in expired:
        assert record.cost_usd == Decimal(0)
        assert record.http_status == 0
        assert record.output_tokens == 0
    for record in succeeded:
        assert record.service_tier_served == "batch"
        assert record.cost_usd == batch_price(record, engine)
        assert record.cost_usd is not None
        assert Decimal(record.details["batch"]["standard_cost_usd"]) == 2 * record.cost_usd


def test_retryable_failures_retried(tmp_path: Path, sqlite_url: str) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(200)])
    settings = SandboxSettings(batch_failure_rate=0.3, seed=3)

    with SandboxServer(settings) as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions(max_rounds=10))
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        records = batch_records(manager, status.job.job_id)

    assert status.counts == Counter({"succeeded": 200})
    failed = [record for record in records if record.http_status == 500]
    assert failed
    for record in failed:
        assert record.cost_usd == Decimal(0)
        assert record.error_type == "server_error"


def test_invalid_requests_reported_not_retried(tmp_path: Path, sqlite_url: str) -> None:
    lines = [openai_line(0), openai_line(1, max_tokens=0), openai_line(2)]
    path = write_jsonl(tmp_path / "input.jsonl", lines)

    with SandboxServer() as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions())
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        manager.collect(status.job.job_id, tmp_path / "output.jsonl")

    assert status.job.status == "completed"
    assert status.job.round == 0
    assert status.counts == Counter({"succeeded": 2, "failed": 1})
    collected = read_jsonl(tmp_path / "output.jsonl")
    bad = collected[1]
    assert bad["custom_id"] == "req-1"
    assert bad["status"] == "failed"
    assert bad["attempts"] == 1
    assert bad["response"] is None
    assert bad["error"]["status_code"] == 400
    assert bad["error"]["code"] == "invalid_request_error"
    assert "max_tokens" in bad["error"]["message"]


def test_rounds_run_out(tmp_path: Path, sqlite_url: str) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(5)])
    settings = SandboxSettings(batch_expiry_rate=1.0)

    with SandboxServer(settings) as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions(max_rounds=2))
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        manager.collect(status.job.job_id, tmp_path / "output.jsonl")
        records = batch_records(manager, status.job.job_id)

    assert status.job.status == "completed"
    assert status.job.round == 2
    assert status.counts == Counter({"expired": 5})
    collected = read_jsonl(tmp_path / "output.jsonl")
    assert {line["status"] for line in collected} == {"expired"}
    assert {line["attempts"] for line in collected} == {3}
    assert len(records) == 15
    assert {record.cost_usd for record in records} == {Decimal(0)}


def test_deadline_stops_resubmission(tmp_path: Path, sqlite_url: str) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(3)])
    settings = SandboxSettings(batch_expiry_rate=1.0)

    with SandboxServer(settings) as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        options = JobOptions(max_rounds=5, deadline=timedelta(0))
        status = manager.submit(path, sandbox_provider(server.url), options)
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)

    assert status.job.round == 0
    assert status.counts == Counter({"expired": 3})


def test_cancel_job(tmp_path: Path, sqlite_url: str) -> None:
    clock = ManualClock()
    settings = SandboxSettings(batch_requests_per_second=1, batch_finalizing_s=1, clock=clock)
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(6)])

    with SandboxServer(settings) as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions())
        job_id = status.job.job_id
        clock.advance(2)
        assert manager.refresh(job_id).done == 2
        status = manager.cancel(job_id)
        assert status.job.status == "cancelling"
        clock.advance(1)
        status = manager.refresh(job_id)
        summary = manager.collect(job_id, tmp_path / "output.jsonl")

    assert status.job.status == "cancelled"
    assert status.counts == Counter({"succeeded": 2, "cancelled": 4})
    assert summary.counts == Counter({"succeeded": 2, "cancelled": 4})
    collected = read_jsonl(tmp_path / "output.jsonl")
    assert [line["status"] for line in collected] == ["succeeded"] * 2 + ["cancelled"] * 4


def test_anthropic_job_from_chat_requests(tmp_path: Path, sqlite_url: str) -> None:
    lines = [
        {"model": "any", "messages": [{"role": "user", "content": f"hello {index}"}]}
        for index in range(4)
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", lines)
    options = JobOptions(
        input=InputOptions(model="claude-haiku-4-5", max_tokens=3), feature="digest"
    )

    with SandboxServer() as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        provider = sandbox_provider(server.url, "anthropic")
        status = manager.submit(path, provider, options)
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        manager.collect(status.job.job_id, tmp_path / "output.jsonl")
        records = batch_records(manager, status.job.job_id)

    engine = CostEngine()
    assert status.counts == Counter({"succeeded": 4})
    collected = read_jsonl(tmp_path / "output.jsonl")
    assert [line["custom_id"] for line in collected] == [f"request-{n}" for n in range(1, 5)]
    assert {line["response"]["usage"]["service_tier"] for line in collected} == {"batch"}
    assert len(records) == 4
    for record in records:
        usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
        expected = engine.price("anthropic", "claude-haiku-4-5", usage, batch=True).cost_usd
        assert record.provider == "anthropic"
        assert record.endpoint == "messages"
        assert record.feature == "digest"
        assert record.output_tokens == 3
        assert record.cost_usd == expected


def test_invalid_input_sends_nothing(tmp_path: Path, sqlite_url: str) -> None:
    lines = [openai_line(0), {**openai_line(1), "method": "GET"}, {**openai_line(0)}]
    path = write_jsonl(tmp_path / "input.jsonl", lines)

    with SandboxServer() as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        with pytest.raises(BatchInputError) as raised:
            manager.submit(path, sandbox_provider(server.url), JobOptions())
        assert manager.list_jobs() == []

    assert raised.value.issues == [
        "line 2: method is 'GET'; the Batch API takes POST only",
        "line 3: custom_id 'req-0' repeats the one on line 1",
    ]
    assert list((tmp_path / "jobs").iterdir()) == []


def test_job_state_survives_a_new_manager(tmp_path: Path, sqlite_url: str) -> None:
    clock = ManualClock()
    settings = SandboxSettings(batch_validating_s=5, clock=clock)
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(3)])

    with SandboxServer(settings) as server:
        with manager_at(sqlite_url, tmp_path / "jobs") as first:
            job_id = first.submit(
                path, sandbox_provider(server.url), JobOptions(name="n")
            ).job.job_id
            with pytest.raises(BatchError, match="still in_progress"):
                first.collect(job_id, tmp_path / "early.jsonl")
        clock.advance(5)
        with manager_at(sqlite_url, tmp_path / "jobs") as second:
            status = second.wait(job_id, poll_interval_s=0.01)
            names = [job.name for job in second.list_jobs()]

    assert status.job.status == "completed"
    assert status.counts == Counter({"succeeded": 3})
    assert names == ["n"]


def test_batch_savings_sum(tmp_path: Path, db_url: str) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(6)])

    with SandboxServer() as server, manager_at(db_url, tmp_path / "jobs") as manager:
        status = manager.submit(path, sandbox_provider(server.url), JobOptions())
        status = manager.wait(status.job.job_id, poll_interval_s=0.01)
        with manager.ledger.engine.connect() as connection:
            savings = batch_savings(connection)
        records = batch_records(manager, status.job.job_id)

    total = sum((record.cost_usd or Decimal(0) for record in records), Decimal(0))
    assert savings.results == 6
    assert savings.cost_usd == total
    assert savings.standard_cost_usd == 2 * total
    assert savings.savings_usd == total


def test_batch_tables_match_schema(db_url: str) -> None:
    with (
        BatchManager(db_url, root=Path("unused")) as manager,
        manager.ledger.engine.connect() as connection,
    ):
        context = MigrationContext.configure(
            connection,
            opts={"version_table": VERSION_TABLE, "include_name": _batch_tables_only},
        )
        differences = compare_metadata(context, batch_metadata)

    assert differences == []


def _batch_tables_only(name: str | None, kind: str, parent: dict[str, str | None]) -> bool:
    if kind == "table":
        return name in batch_metadata.tables
    return True


def test_claim_blocks_a_live_holder(sqlite_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(0)])
    clock = ManualClock()
    settings = SandboxSettings(batch_validating_s=5, clock=clock)
    with SandboxServer(settings) as server, manager_at(sqlite_url, tmp_path / "jobs") as manager:
        job_id = manager.submit(path, sandbox_provider(server.url), JobOptions()).job.job_id
        future = datetime.now(UTC) + timedelta(hours=1)
        table = batch_metadata.tables["batch_jobs"]
        with manager.ledger.engine.begin() as connection:
            connection.execute(
                sa.update(table)
                .where(table.c.job_id == job_id)
                .values(lease_owner="another-host:1:abc", lease_until=future)
            )
        with manager.store.claim(job_id, lease_s=10) as claimed:
            assert claimed is False
        with manager.ledger.engine.begin() as connection:
            connection.execute(
                sa.update(table)
                .where(table.c.job_id == job_id)
                .values(lease_owner=_dead_owner(), lease_until=future)
            )
        with manager.store.claim(job_id, lease_s=10) as claimed:
            assert claimed is True


def _dead_owner() -> str:
    # A process id above the kernel's largest (2**22) is never in use.
    return f"{socket.gethostname()}:4194305:dead"
