"""The sandbox's files and batches APIs, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.batch_support import ManualClock
from thrifty.sandbox import SandboxServer, SandboxSettings
from thrifty.tokens import count_chat_messages


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Iterator[SandboxServer]:
    settings = SandboxSettings(
        batch_validating_s=10, batch_requests_per_second=2, batch_finalizing_s=5, clock=clock
    )
    with SandboxServer(settings) as server:
        yield server


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)


def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0)


def chat_line(index: int, **body: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"Describe tide number {index}."}]
    return {
        "custom_id": f"req-{index}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 6, **body},
    }


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    content = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    return client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch").id


def file_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [orjson.loads(line) for line in client.files.content(file_id).content.splitlines()]


def message_request(custom_id: str, **params: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": f"Say hello to {custom_id}."}],
            **params,
        },
    }


def test_openai_batch_lifecycle(sandbox: SandboxServer, clock: ManualClock) -> None:
    client = openai_client(sandbox.url)
    lines = [chat_line(index) for index in range(4)]
    file_id = upload(client, lines)

    batch = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"owner": "tests"},
    )
    assert batch.status == "validating"
    assert batch.metadata == {"owner": "tests"}
    assert batch.model == "gpt-4o-mini"

    clock.advance(9)
    assert client.batches.retrieve(batch.id).status == "validating"
    clock.advance(1)
    started = client.batches.retrieve(batch.id)
    assert started.status == "in_progress"
    assert started.in_progress_at is not None
    assert started.request_counts is not None
    assert started.request_counts.total == 4
    assert started.request_counts.completed == 0
    clock.advance(1)
    halfway = client.batches.retrieve(batch.id)
    assert halfway.request_counts is not None
    assert halfway.request_counts.completed == 2
    clock.advance(1)
    assert client.batches.retrieve(batch.id).status == "finalizing"
    clock.advance(5)
    done = client.batches.retrieve(batch.id)

    assert done.status == "completed"
    assert done.completed_at is not None
    assert done.error_file_id is None
    assert done.request_counts is not None
    assert done.request_counts.completed == 4
    assert done.request_counts.failed == 0
    output = file_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == [f"req-{index}" for index in range(4)]
    by_id = {line["custom_id"]: line for line in output}
    for index, line in enumerate(lines):
        result = by_id[line["custom_id"]]
        assert result["error"] is None
        assert result["response"]["status_code"] == 200
        usage = result["response"]["body"]["usage"]
        assert usage["prompt_tokens"] == count_chat_messages(
            line["body"]["messages"], "gpt-4o-mini"
        )
        assert usage["completion_tokens"] == 6, index
    assert done.usage is not None
    assert done.usage.output_tokens == 24


def test_openai_partial_expiry(clock: ManualClock) -> None:
    settings = SandboxSettings(
        batch_requests_per_second=2, batch_completion_window_s=1.0, clock=clock
    )
    with SandboxServer(settings) as server:
        client = openai_client(server.url)
        file_id = upload(client, [chat_line(index) for index in range(4)])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        clock.advance(1)
        ended = client.batches.retrieve(batch.id)

        assert ended.status == "expired"
        assert ended.expired_at is not None
        assert ended.request_counts is not None
        assert ended.request_counts.completed == 2
        assert ended.request_counts.failed == 2
        succeeded = {line["custom_id"] for line in file_lines(client, ended.output_file_id)}
        errors = file_lines(client, ended.error_file_id)
        assert succeeded == {"req-0", "req-1"}
        assert {line["custom_id"] for line in errors} == {"req-2", "req-3"}
        for line in errors:
            assert line["response"] is None
            assert line["error"]["code"] == "batch_expired"


def test_openai_request_failures(clock: ManualClock) -> None:
    with SandboxServer(SandboxSettings(batch_failure_rate=1.0, clock=clock)) as server:
        client = openai_client(server.url)
        file_id = upload(client, [chat_line(0), chat_line(1, messages=[])])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        ended = client.batches.retrieve(batch.id)

        assert ended.status == "completed"
        assert ended.output_file_id is None
        errors = {line["custom_id"]: line for line in file_lines(client, ended.error_file_id)}
        assert errors["req-0"]["response"]["status_code"] == 500
        assert errors["req-1"]["response"]["status_code"] == 500


def test_openai_invalid_request_errors(sandbox: SandboxServer, clock: ManualClock) -> None:
    client = openai_client(sandbox.url)
    file_id = upload(client, [chat_line(0), chat_line(1, messages=[])])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.advance(100)
    ended = client.batches.retrieve(batch.id)

    errors = file_lines(client, ended.error_file_id)
    assert len(errors) == 1
    response = errors[0]["response"]
    assert errors[0]["custom_id"] == "req-1"
    assert response["status_code"] == 400
    assert response["body"]["error"]["param"] == "messages"


def test_openai_invalid_file_fails(sandbox: SandboxServer, clock: ManualClock) -> None:
    client = openai_client(sandbox.url)
    lines = [chat_line(0), chat_line(1, model="gpt-4o"), chat_line(0)]
    file_id = upload(client, lines)
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.advance(10)
    failed = client.batches.retrieve(batch.id)

    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert failed.errors is not None
    assert failed.errors.data is not None
    problems = [(error.line, error.code) for error in failed.errors.data]
    assert problems == [(2, "mismatched_model"), (3, "duplicate_custom_id")]


def test_openai_cancel(sandbox: SandboxServer, clock: ManualClock) -> None:
    client = openai_client(sandbox.url)
    file_id = upload(client, [chat_line(index) for index in range(6)])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.advance(11)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    clock.advance(5)
    cancelled = client.batches.retrieve(batch.id)

    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert len(file_lines(client, cancelled.output_file_id)) == 2


def test_openai_batch_requests_rejected(sandbox: SandboxServer) -> None:
    client = openai_client(sandbox.url)
    file_id = upload(client, [chat_line(0)])

    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.BadRequestError, match="The sandbox runs batches for"):
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


def test_openai_files_api(sandbox: SandboxServer) -> None:
    client = openai_client(sandbox.url)
    file_id = upload(client, [chat_line(0)])

    stored = client.files.retrieve(file_id)
    assert stored.purpose == "batch"
    assert stored.filename == "input.jsonl"
    assert stored.expires_at is not None
    assert [item.id for item in client.files.list(purpose="batch")] == [file_id]
    assert client.files.delete(file_id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("input.txt", io.BytesIO(b"{}")), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("input.jsonl", io.BytesIO(b"{}")), purpose="nonsense")  # type: ignore[arg-type]


def test_openai_batch_listing_pages(sandbox: SandboxServer) -> None:
    client = openai_client(sandbox.url)
    file_id = upload(client, [chat_line(0)])
    created = [
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(3)
    ]

    first = client.batches.list(limit=2)
    assert [batch.id for batch in first.data] == created[::-1][:2]
    assert first.has_more is True
    assert [batch.id for batch in client.batches.list(limit=2)] == created[::-1]


def test_anthropic_batch_lifecycle(clock: ManualClock) -> None:
    settings = SandboxSettings(batch_requests_per_second=2, clock=clock)
    with SandboxServer(settings) as server:
        client = anthropic_client(server.url)
        requests = [message_request(f"m{index}") for index in range(4)]
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]

        assert batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 4
        assert batch.results_url is None
        clock.advance(1)
        halfway = client.messages.batches.retrieve(batch.id)
        assert halfway.processing_status == "in_progress"
        assert halfway.request_counts.processing == 4
        assert halfway.request_counts.succeeded == 0
        clock.advance(1)
        ended = client.messages.batches.retrieve(batch.id)

        assert ended.processing_status == "ended"
        assert ended.ended_at is not None
        assert ended.results_url == f"{server.url}/v1/messages/batches/{batch.id}/results"
        assert ended.request_counts.succeeded == 4
        assert ended.request_counts.processing == 0
        results = {
            item.custom_id: item.result for item in client.messages.batches.results(batch.id)
        }
        assert sorted(results) == ["m0", "m1", "m2", "m3"]
        for result in results.values():
            assert result.type == "succeeded"
            assert result.message.usage.output_tokens == 5
            assert result.message.usage.service_tier == "batch"


def test_anthropic_errors_expiry_and_cancel(clock: ManualClock) -> None:
    settings = SandboxSettings(batch_requests_per_second=1, batch_finalizing_s=1, clock=clock)
    with SandboxServer(settings) as server:
        client = anthropic_client(server.url)
        requests = [
            message_request("ok"),
            message_request("bad", max_tokens=0),
            message_request("late-1"),
            message_request("late-2"),
        ]
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        clock.advance(2)
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None
        clock.advance(1)
        ended = client.messages.batches.retrieve(batch.id)

        assert ended.processing_status == "ended"
        assert ended.request_counts.succeeded == 1
        assert ended.request_counts.errored == 1
        assert ended.request_counts.canceled == 2
        results = {
            item.custom_id: item.result for item in client.messages.batches.results(batch.id)
        }
        assert results["ok"].type == "succeeded"
        bad = results["bad"]
        assert bad.type == "errored"
        assert bad.error.error.type == "invalid_request_error"
        assert results["late-1"].type == "canceled"
        assert results["late-2"].type == "canceled"
        deleted = client.messages.batches.delete(batch.id)
        assert deleted.id == batch.id


def test_anthropic_expired_requests(clock: ManualClock) -> None:
    settings = SandboxSettings(batch_expiry_rate=1.0, clock=clock)
    with SandboxServer(settings) as server:
        client = anthropic_client(server.url)
        batch = client.messages.batches.create(requests=[message_request("gone")])  # type: ignore[list-item]
        ended = client.messages.batches.retrieve(batch.id)

        assert ended.request_counts.expired == 1
        results = list(client.messages.batches.results(batch.id))
        assert results[0].result.type == "expired"


def test_anthropic_create_is_checked(sandbox: SandboxServer) -> None:
    client = anthropic_client(sandbox.url)

    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        client.messages.batches.create(requests=[message_request("has space")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="Duplicate custom_id"):
        client.messages.batches.create(requests=[message_request("a"), message_request("a")])  # type: ignore[list-item]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_missing")


def test_anthropic_listing_pages(sandbox: SandboxServer) -> None:
    client = anthropic_client(sandbox.url)
    created = [
        client.messages.batches.create(requests=[message_request(f"r{index}")]).id  # type: ignore[list-item]
        for index in range(3)
    ]

    first = client.messages.batches.list(limit=2)
    assert [batch.id for batch in first.data] == created[::-1][:2]
    assert first.has_more is True
    assert [batch.id for batch in client.messages.batches.list(limit=2)] == created[::-1]


def test_malformed_upload_rejected(sandbox: SandboxServer) -> None:
    headers = {"authorization": "Bearer sk-test"}
    url = f"{sandbox.url}/v1/files"

    wrong_type = httpx.post(url, headers=headers, json={"purpose": "batch"})
    no_end = httpx.post(
        url,
        headers={**headers, "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch',
    )

    assert wrong_type.status_code == 415
    assert "multipart/form-data" in wrong_type.json()["error"]["message"]
    assert no_end.status_code == 400
    assert no_end.json()["error"]["message"] == (
        "The multipart/form-data body is malformed: the closing boundary is missing."
    )
