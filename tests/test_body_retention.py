"""The gateway stores no request or response body: no prompt or output text reaches the ledger.

Thrifty keeps no bodies in the ledger, so it has no retention setting for
them. The response cache (the opt-in ``cache:`` section) is the one place
that stores response bodies, with its own ``ttl_s``; its tests cover that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway_support import RunningGateway, running_gateway

MARKER = "prompt-marker-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("bodies")) as running:
        yield running


def _stored_bytes(gateway: RunningGateway) -> dict[str, bytes]:
    folder = Path(gateway.db_url.removeprefix("sqlite:///")).parent
    return {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_ledger_keeps_no_body_text(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Repeat {MARKER} please."}
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=40, messages=messages, metadata={"feature": "bodies"}
    )
    completion = raw.parse()
    output = completion.choices[0].message.content or ""
    assert len(output) > 30
    stream = client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=40, messages=messages, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    anthropic_reply = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "claude-3-5-haiku-latest", "max_tokens": 30, "messages": messages},
        headers={"x-api-key": "sk", "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    failed = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": messages},
        headers={"authorization": "Bearer sk", "x-sandbox-fault": "status=500"},
        timeout=30,
    )
    assert anthropic_reply.status_code == 200
    assert failed.status_code == 500

    ids = [
        raw.headers["x-thrifty-request-id"],
        anthropic_reply.headers["x-thrifty-request-id"],
        failed.headers["x-thrifty-request-id"],
    ]
    for request_id in ids:
        gateway.record(request_id)
        looked_up = httpx.get(f"{gateway.url}/thrifty/requests/{request_id}", timeout=10)
        assert MARKER not in looked_up.text
    # The record contains what was metered: the feature from metadata, counts and cost.
    record = gateway.record(ids[0])
    assert record.feature == "bodies"
    assert record.input_tokens > 0

    texts = [MARKER, output[:30], streamed[:30], anthropic_reply.json()["content"][0]["text"][:30]]
    for place, content in _stored_bytes(gateway).items():
        for text in texts:
            assert text.encode() not in content, f"body text {text!r} is stored in {place}"
