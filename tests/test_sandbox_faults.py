"""Injected faults, flex rejections, pacing and error shapes of the sandbox."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import anthropic
import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.servers import serve_in_thread
from thrifty.errors import ConfigError
from thrifty.sandbox import SandboxServer, SandboxSettings, create_app

MESSAGES = [{"role": "user", "content": "Tell me about faults."}]
CHAT_BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 3}
AUTH = {"authorization": "Bearer sk-test"}
T = TypeVar("T")


@pytest.fixture
def client(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(sandbox_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)


def fault(value: str) -> dict[str, str]:
    return {"X-Sandbox-Fault": value}


def chat(
    client: openai.OpenAI, headers: dict[str, str], **extra: object
) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=3,
        extra_headers=headers,
        **extra,  # type: ignore[arg-type]
    )


def test_status_fault_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        chat(client, fault("status=500"))
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "Sandbox fault: status 500, as requested by x-sandbox-fault.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert caught.value.response.headers["x-request-id"].startswith("req_")


def test_status_fault_takes_any_code(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions",
        json=CHAT_BODY,
        headers={**AUTH, **fault("status=418")},
    )
    assert response.status_code == 418
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_status_fault_body_is_stable(sandbox_url: str) -> None:
    # A proxy comparing a direct and a proxied error needs the same body twice.
    responses = [
        httpx.post(
            f"{sandbox_url}/v1/chat/completions",
            json=CHAT_BODY,
            headers={**AUTH, **fault("status=503")},
        )
        for _ in range(2)
    ]
    assert responses[0].json() == responses[1].json()


def test_status_fault_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as caught:
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=3,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=fault("status=529"),
        )
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_rate_limit_fault_sets_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, fault("rate_limit"))
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, fault("rate_limit=2.5"))
    assert caught.value.response.headers["retry-after"] == "2.5"


def test_rate_limit_fault_for_anthropic(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=3,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=fault("rate_limit=3"),
        )
    assert caught.value.response.headers["retry-after"] == "3"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_delay_fault_outlasts_a_short_timeout(sandbox_url: str) -> None:
    impatient = openai.OpenAI(
        base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0, timeout=0.2
    )
    with pytest.raises(openai.APITimeoutError):
        chat(impatient, fault("delay_ms=1500"))


def test_delay_fault_then_answer(client: openai.OpenAI) -> None:
    reply = chat(client, fault("delay_ms=20"))
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


def collect(events: Iterable[T], into: list[T]) -> None:
    """Append events to ``into`` until the stream ends or fails."""
    for event in events:
        into.append(event)


def test_disconnect_cuts_a_stream(client: openai.OpenAI) -> None:
    received: list[object] = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=40,
        stream=True,
        extra_headers=fault("disconnect_after_chunks=3"),
    )
    with pytest.raises(openai.APIConnectionError):
        collect(stream, received)
    assert len(received) == 3


def test_disconnect_cuts_an_anthropic_stream(claude: anthropic.Anthropic) -> None:
    received: list[anthropic.types.RawMessageStreamEvent] = []
    stream = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=40,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=fault("disconnect_after_chunks=2"),
    )
    # anthropic 2.16 lets the transport error through unwrapped; 2.17 wraps it.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        collect(stream, received)
    assert [event.type for event in received] == ["message_start", "content_block_start"]


def test_disconnect_cuts_a_plain_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        chat(client, fault("disconnect_after_chunks=0"))


def test_invalid_fault_header_is_a_400(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions", json=CHAT_BODY, headers={**AUTH, **fault("explode")}
    )
    assert response.status_code == 400
    assert "unknown item 'explode'" in response.json()["error"]["message"]

    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions",
        json=CHAT_BODY,
        headers={**AUTH, **fault("status=200")},
    )
    assert response.status_code == 400
    assert "from 400 to 599" in response.json()["error"]["message"]


def test_latency_header_delays_the_first_token(sandbox_url: str) -> None:
    impatient = openai.OpenAI(
        base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0, timeout=0.2
    )
    with pytest.raises(openai.APITimeoutError):
        chat(impatient, {"X-Sandbox-Latency": "ttft_ms=1500"})
    with pytest.raises(openai.APITimeoutError):
        chat(impatient, {"X-Sandbox-Latency": "ttft_ms=0,tps=5"})


def test_invalid_latency_header_is_a_400(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions",
        json=CHAT_BODY,
        headers={**AUTH, "X-Sandbox-Latency": "ttft_ms=soon"},
    )
    assert response.status_code == 400
    assert "ttft_ms" in response.json()["error"]["message"]


def test_flex_header_rejects_with_resource_unavailable(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, {"X-Sandbox-Flex-Reject": "1"}, service_tier="flex")
    assert caught.value.status_code == 429
    assert caught.value.code == "resource_unavailable"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"].startswith("Resource Unavailable")

    # The header rejects flex requests only.
    reply = chat(client, {"X-Sandbox-Flex-Reject": "1"})
    assert reply.service_tier == "default"


def test_flex_rejects_responses_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(
            model="o3",
            input="x",
            service_tier="flex",
            extra_headers={"X-Sandbox-Flex-Reject": "1"},
        )
    assert caught.value.code == "resource_unavailable"


def flex_outcomes(settings: SandboxSettings, count: int) -> list[bool]:
    """Send ``count`` flex requests; return True for each one served."""
    with SandboxServer(settings) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
        outcomes = []
        for _ in range(count):
            try:
                chat(client, {}, service_tier="flex")
                outcomes.append(True)
            except openai.RateLimitError:
                outcomes.append(False)
        return outcomes


def test_flex_rejection_rate_is_seeded() -> None:
    settings = SandboxSettings(flex_rejection_rate=0.5, seed=7)
    first = flex_outcomes(settings, 16)
    second = flex_outcomes(settings, 16)
    assert first == second
    assert True in first
    assert False in first
    assert flex_outcomes(SandboxSettings(flex_rejection_rate=1.0), 3) == [False, False, False]


def test_missing_model_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.body == {
        "message": "you must provide a model parameter",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }


def test_missing_messages_is_a_400(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions", json={"model": "gpt-4o"}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert response.json()["error"]["code"] == "missing_required_parameter"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**CHAT_BODY, "max_tokens": 0}, "max_tokens"),
        ({**CHAT_BODY, "messages": []}, "messages"),
        ({**CHAT_BODY, "service_tier": "turbo"}, "service_tier"),
        ({**CHAT_BODY, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**CHAT_BODY, "n": 0}, "n"),
    ],
)
def test_invalid_chat_parameters_are_400s(
    sandbox_url: str, body: dict[str, object], param: str
) -> None:
    response = httpx.post(f"{sandbox_url}/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_responses_max_output_tokens_minimum(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="x", max_output_tokens=8)
    assert caught.value.param == "max_output_tokens"


def test_invalid_json_is_a_400(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions",
        content=b'{"model": "gpt-4o",',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in response.json()["error"]["message"]


def test_anthropic_array_body_is_400(sandbox_url: str) -> None:
    response = httpx.post(
        f"{sandbox_url}/v1/messages", content=b"[1, 2]", headers={"x-api-key": "k"}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_path_is_a_404_json(sandbox_url: str) -> None:
    response = httpx.post(f"{sandbox_url}/v1/completely/unknown", json={}, headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "Invalid URL (POST /v1/completely/unknown)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_anthropic_unknown_path_is_404(sandbox_url: str) -> None:
    response = httpx.get(f"{sandbox_url}/v1/messages/batches/x", headers={"x-api-key": "k"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_wrong_method_is_a_405_json(sandbox_url: str) -> None:
    response = httpx.get(f"{sandbox_url}/v1/chat/completions", headers=AUTH)
    assert response.status_code == 405
    assert response.json()["error"]["message"] == "Method not allowed (GET /v1/chat/completions)"


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer"}, {"authorization": "Basic abc"}]
)
def test_missing_key_is_a_401(sandbox_url: str, headers: dict[str, str]) -> None:
    response = httpx.post(f"{sandbox_url}/v1/chat/completions", json=CHAT_BODY, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("You didn't provide an API key.")


def test_missing_key_on_models_is_a_401(sandbox_url: str) -> None:
    assert httpx.get(f"{sandbox_url}/v1/models").status_code == 401


def test_unknown_models_can_be_rejected() -> None:
    with SandboxServer(SandboxSettings(reject_unknown_models=True)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-imaginary", messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.code == "model_not_found"
        assert chat(client, {}).model == "gpt-4o-mini"


def test_unknown_models_are_served_by_default(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="my-private-model", messages=MESSAGES, max_tokens=2
    )  # type: ignore[arg-type]
    assert reply.model == "my-private-model"


@pytest.fixture
def mounted_url() -> Iterator[str]:
    app = Starlette(routes=[Mount("/sandbox", app=create_app())])
    with serve_in_thread(app) as url:
        yield url


def test_mounted_app_names_inner_paths(mounted_url: str) -> None:
    client = openai.OpenAI(base_url=f"{mounted_url}/sandbox/v1", api_key="sk-test", max_retries=0)
    assert chat(client, {}).usage is not None
    response = httpx.post(f"{mounted_url}/sandbox/v1/nope", json={}, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"
    claude = anthropic.Anthropic(base_url=f"{mounted_url}/sandbox", api_key="k", max_retries=0)
    reply = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tokens_per_second", -1.0),
        ("default_max_tokens", 0),
        ("reasoning_share", 1.5),
        ("flex_rejection_rate", -0.1),
        ("tokens_per_chunk", 0),
    ],
)
def test_invalid_settings_raise_config_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        SandboxSettings(**{field: value})  # type: ignore[arg-type]
    assert field in str(caught.value)
