"""The gateway end to end: official SDKs as clients, the sandbox as upstream, a real ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import postgres_schema_url
from thrifty.tokens import count_chat_messages

MILLION = Decimal(1_000_000)
# gpt-4o-mini list prices per million tokens (genai-prices data).
MINI_INPUT = Decimal("0.15")
MINI_CACHED = Decimal("0.075")
MINI_OUTPUT = Decimal("0.6")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test", max_retries=0)


MESSAGES = [{"role": "user", "content": "Say something about the sea."}]


def test_chat_completion_is_metered_and_priced(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=12,  # type: ignore[arg-type]
    )
    reply = raw.parse()
    request_id = raw.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)

    prompt_tokens = count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == prompt_tokens
    assert reply.usage.completion_tokens == 12
    assert record.input_tokens == prompt_tokens
    assert record.output_tokens == 12
    expected = (prompt_tokens * MINI_INPUT + 12 * MINI_OUTPUT) / MILLION
    assert record.cost_usd == expected
    assert Decimal(raw.headers["x-thrifty-cost-usd"]) == expected
    assert raw.headers["x-thrifty-model"] == reply.model
    assert float(raw.headers["x-thrifty-overhead-ms"]) >= 0
    assert record.endpoint == "chat.completions"
    assert record.streamed is False
    assert record.http_status == 200
    assert record.unpriced is False


def test_stream_without_usage_option_hides_usage_chunk(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=20,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        chunks = list(response.parse())

    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    record = gateway.record(request_id)
    assert record.streamed is True
    assert record.output_tokens == 20
    assert record.input_tokens == count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert record.usage_estimated is False
    assert record.first_token_at is not None


def test_stream_with_usage_option_keeps_usage_chunk(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7


def test_stream_cost_is_readable_after_the_end(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=5,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        list(response.parse())
    body = gateway.api_record(request_id)
    prompt_tokens = count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert body["request_id"] == request_id
    assert (
        Decimal(str(body["cost_usd"])) == (prompt_tokens * MINI_INPUT + 5 * MINI_OUTPUT) / MILLION
    )


def test_responses_endpoint_streamed_and_not(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Tell me a fact.", max_output_tokens=16
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert reply.usage is not None
    assert record.input_tokens == reply.usage.input_tokens
    assert record.output_tokens == 16
    assert record.endpoint == "responses"

    with client.responses.with_streaming_response.create(
        model="gpt-4o-mini", input="Tell me a fact.", max_output_tokens=16, stream=True
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        events = list(response.parse())
    assert events[-1].type == "response.completed"
    streamed = gateway.record(request_id)
    assert streamed.streamed is True
    assert streamed.input_tokens == reply.usage.input_tokens
    assert streamed.output_tokens == 16


def test_embeddings_are_metered(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first text", "second text"]
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert len(reply.data) == 2
    assert record.input_tokens == reply.usage.prompt_tokens
    assert record.output_tokens == 0
    assert record.cost_usd == reply.usage.prompt_tokens * Decimal("0.02") / MILLION


def test_anthropic_messages_streamed_and_not(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude-3-5-haiku-latest",
        max_tokens=10,
        messages=[{"role": "user", "content": "Hello there"}],
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert record.provider == "anthropic"
    assert record.input_tokens == reply.usage.input_tokens
    assert record.output_tokens == 10
    assert record.cost_usd is not None

    with claude.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=10,
        messages=[{"role": "user", "content": "Hello there"}],
    ) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-thrifty-request-id"]
    streamed = gateway.record(request_id)
    assert final.usage.output_tokens == 10
    assert streamed.streamed is True
    assert streamed.input_tokens == reply.usage.input_tokens
    assert streamed.output_tokens == 10
    assert streamed.cost_usd == record.cost_usd


def test_attribution_from_headers_and_body(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=1,
        user="body-user",
        extra_headers={
            "X-Thrifty-Feature": "search",
            "X-Thrifty-Session": "s-1",
            "X-Thrifty-Tags": "env=prod, region=eu",
        },
        extra_body={"metadata": {"team": "growth", "ticket": "T-9"}},
    )
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert record.feature == "search"
    assert record.session == "s-1"
    assert record.user == "body-user"
    assert record.team == "growth"
    assert record.tags == {"ticket": "T-9", "env": "prod", "region": "eu"}


def test_unknown_model_is_recorded_unpriced(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="my-private-model",
        messages=MESSAGES,
        max_tokens=3,  # type: ignore[arg-type]
    )
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert "x-thrifty-cost-usd" not in raw.headers
    assert raw.headers["x-thrifty-unpriced"] == "true"
    assert record.cost_usd is None
    assert record.unpriced is True
    assert record.output_tokens == 3


def test_served_tier_decides_the_price(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_completion_tokens=40,
        service_tier="flex",
    )
    flex = gateway.record(raw.headers["x-thrifty-request-id"])
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_completion_tokens=40,
    )
    default = gateway.record(raw.headers["x-thrifty-request-id"])
    assert flex.service_tier_requested == "flex"
    assert flex.service_tier_served == "flex"
    assert default.service_tier_served == "default"
    assert flex.cost_usd is not None
    assert default.cost_usd is not None
    assert flex.cost_usd * 2 == default.cost_usd


def _post(gateway: RunningGateway, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        content=content,
        headers={"authorization": "Bearer sk-test", "content-type": "application/json", **headers},
        timeout=30,
    )


def test_malformed_json_is_a_400(gateway: RunningGateway) -> None:
    response = _post(gateway, "/v1/chat/completions", b'{"model": "gpt-4o-mini",')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_missing_model_is_a_400_naming_it(gateway: RunningGateway) -> None:
    response = _post(gateway, "/v1/chat/completions", b'{"messages": []}')
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_anthropic_errors_use_anthropic_shape(gateway: RunningGateway) -> None:
    response = _post(gateway, "/v1/messages", b"[1, 2]")
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_endpoint_is_a_404(gateway: RunningGateway) -> None:
    response = _post(gateway, "/v1/completely/unknown", b"{}")
    assert response.status_code == 404
    assert "/v1/completely/unknown" in response.json()["error"]["message"]


def test_bad_tags_header_is_a_400(gateway: RunningGateway) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
    response = _post(gateway, "/v1/chat/completions", body, **{"X-Thrifty-Tags": "novalue"})
    assert response.status_code == 400
    assert "novalue" in response.json()["error"]["message"]


def test_provider_errors_pass_through_unchanged(gateway: RunningGateway) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
    direct = httpx.post(
        f"{gateway.url}/sandbox/v1/chat/completions",
        content=body,
        headers={"authorization": "Bearer sk", "x-sandbox-fault": "status=503"},
        timeout=30,
    )
    proxied = _post(gateway, "/v1/chat/completions", body, **{"x-sandbox-fault": "status=503"})
    assert proxied.status_code == 503
    assert proxied.json() == direct.json()
    record = gateway.record(proxied.headers["x-thrifty-request-id"])
    assert record.http_status == 503
    assert record.output_tokens == 0


def test_models_list_is_proxied(gateway: RunningGateway, client: openai.OpenAI) -> None:
    models = [model.id for model in client.models.list()]
    assert "gpt-4o-mini" in models


def test_health(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_request_id_is_a_404(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/thrifty/requests/req_missing")
    assert response.status_code == 404


def test_body_over_the_limit_is_a_413(tmp_path: Path) -> None:
    with running_gateway(tmp_path, max_body_bytes=1000) as small:
        response = _post(
            small, "/v1/chat/completions", b'{"model": "x", "pad": "' + b"a" * 2000 + b'"}'
        )
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]["message"]


def test_upstream_down_is_a_502_and_recorded(tmp_path: Path) -> None:
    from tests.servers import free_port
    from thrifty.config import ProviderConfig

    dead = ProviderConfig("openai", "openai", f"http://127.0.0.1:{free_port()}")
    with running_gateway(tmp_path, extra_providers={"openai": dead}, connect_retries=0) as down:
        body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
        response = _post(down, "/v1/chat/completions", body)
        assert response.status_code == 502
        assert "unreachable" in response.json()["error"]["message"]
        record = down.record(response.headers["x-thrifty-request-id"])
    assert record.error_type == "upstream_unreachable"
    assert record.http_status == 502


def test_upstream_timeout_is_a_504(tmp_path: Path) -> None:
    with running_gateway(tmp_path, upstream_timeout_s=0.3) as slow:
        body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
        response = _post(slow, "/v1/chat/completions", body, **{"x-sandbox-fault": "delay_ms=2000"})
    assert response.status_code == 504
    assert "did not answer" in response.json()["error"]["message"]


def test_postgresql_ledger(tmp_path: Path, postgres_url: str) -> None:
    schema_urls = postgres_schema_url(postgres_url)
    db_url = next(schema_urls)
    with running_gateway(tmp_path, db_url=db_url) as on_postgres:
        client = openai.OpenAI(base_url=f"{on_postgres.url}/v1", api_key="sk", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=4,  # type: ignore[arg-type]
        )
        record = on_postgres.record(raw.headers["x-thrifty-request-id"])
    schema_urls.close()
    prompt_tokens = count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert record.output_tokens == 4
    assert record.cost_usd == (prompt_tokens * MINI_INPUT + 4 * MINI_OUTPUT) / MILLION


def test_client_disconnect_mid_stream_is_recorded_as_estimated(
    gateway: RunningGateway,
) -> None:
    body = (
        b'{"model": "gpt-4o-mini", "stream": true, "max_tokens": 400,'
        b' "messages": [{"role": "user", "content": "Write a long story."}]}'
    )
    headers = {
        "authorization": "Bearer sk",
        "content-type": "application/json",
        "x-sandbox-latency": "ttft_ms=0,tps=200",
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{gateway.url}/v1/chat/completions", content=body, headers=headers
        ) as response,
    ):
        request_id = response.headers["x-thrifty-request-id"]
        for received, _ in enumerate(response.iter_bytes(), start=1):
            if received == 3:
                break
    record = gateway.record(request_id)
    assert record.usage_estimated is True
    assert record.error_type == "client_disconnected"
    assert 0 < record.output_tokens < 400
    assert record.input_tokens == count_chat_messages(
        [{"role": "user", "content": "Write a long story."}], "gpt-4o-mini"
    )
