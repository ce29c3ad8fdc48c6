"""Upstream faults: each gets a clear error to the client and exactly one record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway_support import RunningGateway, running_gateway
from tests.servers import serve_in_thread
from thrifty.config import ProviderConfig

CHAT = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"authorization": "Bearer sk", "content-type": "application/json"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("faults")) as running:
        yield running


def _post(gateway: RunningGateway, fault: str, body: bytes = CHAT) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={**HEADERS, "x-sandbox-fault": fault},
        timeout=30,
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_pass_through_with_one_record(gateway: RunningGateway, status: int) -> None:
    response = _post(gateway, f"status={status}")
    assert response.status_code == status
    assert "error" in response.json()
    record = gateway.record(response.headers["x-thrifty-request-id"])
    assert record.http_status == status
    assert record.output_tokens == 0
    assert record.cost_usd == 0


def test_rate_limit_keeps_retry_after(gateway: RunningGateway) -> None:
    response = _post(gateway, "rate_limit=7")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    record = gateway.record(response.headers["x-thrifty-request-id"])
    assert record.http_status == 429


def test_cut_stream_raises_and_is_estimated(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a long story."}],
        max_tokens=200,
        stream=True,
        extra_headers={"x-sandbox-fault": "disconnect_after_chunks=3"},
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        chunks = response.parse()
        with pytest.raises(openai.APIError, match="stream failed"):
            list(chunks)
    record = gateway.record(request_id)
    assert record.error_type == "upstream_stream_error"
    assert record.usage_estimated is True
    assert 0 < record.output_tokens < 200
    assert record.input_tokens > 0


def test_anthropic_stream_cut_raises_in_the_sdk(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk", max_retries=0)
    with client.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=200,
        messages=[{"role": "user", "content": "Tell me a long story."}],
        extra_headers={"x-sandbox-fault": "disconnect_after_chunks=4"},
    ) as stream:
        request_id = stream.response.headers["x-thrifty-request-id"]
        with pytest.raises(anthropic.APIError, match="stream failed"):
            list(stream)
    record = gateway.record(request_id)
    assert record.error_type == "upstream_stream_error"
    assert record.usage_estimated is True


async def _malformed(request: Request) -> Response:
    return Response(b'{"id": "chatcmpl-1", "choices": [', media_type="application/json")


def test_malformed_upstream_json_is_a_502(tmp_path: Path) -> None:
    broken = Starlette(routes=[Route("/v1/chat/completions", _malformed, methods=["POST"])])
    with serve_in_thread(broken) as upstream_url:
        provider = ProviderConfig("openai", "openai", upstream_url)
        with running_gateway(tmp_path, extra_providers={"openai": provider}) as running:
            response = httpx.post(
                f"{running.url}/v1/chat/completions", content=CHAT, headers=HEADERS, timeout=30
            )
            record = running.record(response.headers["x-thrifty-request-id"])
    assert response.status_code == 502
    assert "not valid JSON" in response.json()["error"]["message"]
    assert record.error_type == "upstream_invalid_json"
    assert record.http_status == 502
    assert record.unpriced is True
    assert record.usage_estimated is True
    assert record.input_tokens > 0
