"""Routes executed by the gateway: cascades escalate, fallbacks follow errors, all recorded.

The official SDKs call the gateway, which calls the sandbox over loopback.
The sandbox's ``X-Sandbox-Answer`` and ``X-Sandbox-Fault`` headers, with a
``model=`` item, shape the answer or the failure of one model of a route;
the gateway forwards them to every attempt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from tests.servers import free_port
from thrifty.cli.main import main
from thrifty.config import ProviderConfig
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.routing import parse_routing_config
from thrifty.sandbox.controls import JSON_ANSWER, REFUSAL_TEXT
from thrifty.tokens import get_encoding
from thrifty.usage import Usage

ROUTING = {
    "routes": {
        # Default checks: empty, refusal, json, schema.
        "extract": {"models": ["gpt-4o-mini", "gpt-4o"], "policy": "cascade"},
        "chat": {
            "models": ["gpt-4o-mini", "gpt-4o"],
            "policy": "cascade",
            "checks": ["empty", "refusal"],
        },
        "support": {
            "models": ["gpt-4o-mini", "gpt-4o"],
            "policy": "rules",
            "otherwise": "gpt-4o-mini",
        },
        "patient": {
            "models": ["gpt-4o-mini", "gpt-4o"],
            "policy": "rules",
            "otherwise": "gpt-4o-mini",
            "retry_after_max_s": 1,
        },
        "unreachable": {
            "models": ["down/gpt-4o-mini", "gpt-4o"],
            "policy": "rules",
            "otherwise": "down/gpt-4o-mini",
        },
        "mixed": {
            "models": ["gpt-4o-mini", "anthropic/claude-haiku-4-5"],
            "policy": "rules",
            "otherwise": "gpt-4o-mini",
        },
        "claude": {
            "models": ["claude-haiku-4-5", "claude-sonnet-4-5"],
            "policy": "cascade",
            "checks": ["empty", "refusal"],
        },
    }
}
MESSAGES: Any = [{"role": "user", "content": "Extract the customer's name."}]
JSON_TOKENS = len(get_encoding("o200k_base").encode(JSON_ANSWER))
REFUSAL_TOKENS = len(get_encoding("o200k_base").encode(REFUSAL_TEXT))
ENGINE = CostEngine()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    down = ProviderConfig("down", "openai", f"http://127.0.0.1:{free_port()}/v1", None, "openai")
    with running_gateway(
        tmp_path_factory.mktemp("cascade"),
        sections={"routing": parse_routing_config(ROUTING)},
        extra_providers={"down": down},
        upstream_timeout_s=1.0,
        connect_retries=0,
    ) as running:
        yield running


def _client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk", max_retries=0)


def _chat(gateway: RunningGateway, route: str, headers: dict[str, str], **options: Any) -> Any:
    return _client(gateway).chat.completions.with_raw_response.create(
        model=f"thrifty/{route}",
        messages=MESSAGES,
        max_tokens=8,
        extra_headers=headers,
        **options,
    )


def _attempts(gateway: RunningGateway, request_id: str, count: int) -> list[RequestRecord]:
    """Return a request's records, earlier attempts first and its own record last."""
    earlier = [gateway.record(f"{request_id}-attempt{n}") for n in range(1, count)]
    return [*earlier, gateway.record(request_id)]


def _cost(record: RequestRecord, model: str, provider: str = "openai") -> Decimal:
    usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
    cost = ENGINE.price(provider, model, usage, at=record.started_at).cost_usd
    assert cost is not None
    return cost


def _routing(record: RequestRecord) -> dict[str, Any]:
    details = record.details["routing"]
    assert isinstance(details, dict)
    return details


def test_cascade_escalates_on_invalid_json(gateway: RunningGateway) -> None:
    raw = _chat(
        gateway,
        "extract",
        {"X-Sandbox-Answer": "json, model=gpt-4o"},
        response_format={"type": "json_object"},
    )
    answer = raw.parse()
    request_id = raw.headers["x-thrifty-request-id"]
    cheap, strong = _attempts(gateway, request_id, 2)

    assert answer.choices[0].message.content == JSON_ANSWER
    assert raw.headers["x-thrifty-model"].startswith("gpt-4o")
    assert cheap.request_id == f"{request_id}-attempt1"
    assert cheap.model_served is not None
    assert cheap.model_served.startswith("gpt-4o-mini")
    assert cheap.model_requested == "thrifty/extract"
    assert cheap.output_tokens == 8
    assert cheap.cost_usd == _cost(cheap, "gpt-4o-mini")
    assert _routing(cheap)["outcome"] == "escalated"
    assert _routing(cheap)["outcome_reason"].startswith("check json:")
    assert _routing(cheap)["request_id"] == request_id
    assert _routing(cheap)["attempt"] == 1
    assert _routing(cheap)["model_requested"] == "gpt-4o-mini"
    assert _routing(cheap)["policy"] == "cascade"

    assert strong.output_tokens == JSON_TOKENS
    assert strong.input_tokens == cheap.input_tokens
    assert strong.cost_usd == _cost(strong, "gpt-4o")
    assert raw.headers["x-thrifty-cost-usd"] == str(strong.cost_usd)
    assert _routing(strong)["outcome"] == "served"
    assert _routing(strong)["attempt"] == 2
    assert _routing(strong)["attempts"] == 2
    assert _routing(strong)["model_requested"] == "gpt-4o"
    assert _routing(strong)["strongest_model"] == "gpt-4o"
    assert cheap.cost_usd is not None
    assert strong.cost_usd is not None
    assert Decimal(_routing(strong)["request_cost_usd"]) == cheap.cost_usd + strong.cost_usd
    assert Decimal(_routing(strong)["strongest_cost_usd"]) == strong.cost_usd


@pytest.mark.parametrize(
    ("answer", "check", "cheap_output"),
    [("empty", "empty", 0), ("refusal", "refusal", REFUSAL_TOKENS)],
)
def test_cascade_escalates_on_bad_answer(
    gateway: RunningGateway, answer: str, check: str, cheap_output: int
) -> None:
    raw = _chat(gateway, "chat", {"X-Sandbox-Answer": f"{answer}, model=gpt-4o-mini"})
    request_id = raw.headers["x-thrifty-request-id"]
    cheap, strong = _attempts(gateway, request_id, 2)

    assert raw.parse().choices[0].message.content
    assert cheap.output_tokens == cheap_output
    assert cheap.cost_usd == _cost(cheap, "gpt-4o-mini")
    assert _routing(cheap)["outcome_reason"].startswith(f"check {check}:")
    assert strong.output_tokens == 8
    assert strong.cost_usd == _cost(strong, "gpt-4o")
    assert strong.model_served is not None
    assert not strong.model_served.startswith("gpt-4o-mini")


def test_cascade_keeps_passing_cheap_answer(gateway: RunningGateway) -> None:
    raw = _chat(gateway, "chat", {})
    request_id = raw.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)
    time.sleep(0.3)
    ledger = gateway.ledger()
    later_attempt = ledger.get(f"{request_id}-attempt1")
    ledger.close()

    assert raw.headers["x-thrifty-model"].startswith("gpt-4o-mini")
    assert later_attempt is None
    assert record.output_tokens == 8
    assert record.cost_usd == _cost(record, "gpt-4o-mini")
    assert _routing(record)["outcome"] == "served"
    assert _routing(record)["attempts"] == 1
    assert Decimal(_routing(record)["request_cost_usd"]) == record.cost_usd
    assert Decimal(_routing(record)["strongest_cost_usd"]) == _cost(record, "gpt-4o")


def test_cascade_last_model_answer_served_when_checks_fail(gateway: RunningGateway) -> None:
    # Neither model answers JSON: the strongest model's answer is returned, marked.
    raw = _chat(gateway, "extract", {}, response_format={"type": "json_object"})
    request_id = raw.headers["x-thrifty-request-id"]
    _cheap, strong = _attempts(gateway, request_id, 2)

    assert raw.status_code == 200
    assert _routing(strong)["outcome"] == "served"
    assert _routing(strong)["outcome_reason"].startswith("no model left after check json")


def test_stream_cascade_replays_accepted_cheap_answer(gateway: RunningGateway) -> None:
    stream = _client(gateway).chat.completions.create(
        model="thrifty/chat", messages=MESSAGES, max_tokens=8, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    request_id = stream.response.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)

    assert record.model_served is not None
    assert record.model_served.startswith("gpt-4o-mini")
    assert record.streamed
    assert record.output_tokens == 8
    assert len(get_encoding("o200k_base").encode(text)) == 8
    assert all(chunk.usage is None for chunk in chunks)
    assert record.cost_usd == _cost(record, "gpt-4o-mini")
    assert _routing(record)["attempts"] == 1


def test_stream_cascade_escalates_to_live_stream(gateway: RunningGateway) -> None:
    stream = _client(gateway).chat.completions.create(
        model="thrifty/chat",
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        extra_headers={"X-Sandbox-Answer": "refusal, model=gpt-4o-mini"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    request_id = stream.response.headers["x-thrifty-request-id"]
    cheap, strong = _attempts(gateway, request_id, 2)

    assert REFUSAL_TEXT not in text
    assert cheap.output_tokens == REFUSAL_TOKENS
    assert _routing(cheap)["outcome"] == "escalated"
    assert strong.output_tokens == 8
    assert strong.cost_usd == _cost(strong, "gpt-4o")
    assert Decimal(_routing(strong)["request_cost_usd"]) == _cost(cheap, "gpt-4o-mini") + _cost(
        strong, "gpt-4o"
    )


def test_cascade_serves_rejected_answer_when_rest_fail(gateway: RunningGateway) -> None:
    headers = {
        "X-Sandbox-Answer": "empty, model=gpt-4o-mini",
        "X-Sandbox-Fault": "status=503, model=gpt-4o",
    }
    raw = _chat(gateway, "chat", headers)
    request_id = raw.headers["x-thrifty-request-id"]
    served = gateway.record(request_id)
    failed = gateway.record(f"{request_id}-attempt2")

    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == ""
    assert served.model_served is not None
    assert served.model_served.startswith("gpt-4o-mini")
    assert _routing(served)["attempt"] == 1
    assert _routing(served)["attempts"] == 2
    assert _routing(served)["outcome"] == "served"
    assert _routing(served)["outcome_reason"].endswith("every later model failed")
    assert Decimal(_routing(served)["request_cost_usd"]) == _cost(served, "gpt-4o-mini")
    assert failed.http_status == 503
    assert _routing(failed)["outcome"] == "failed"
    assert _routing(failed)["request_id"] == request_id


def test_stream_falls_back_before_first_event(gateway: RunningGateway) -> None:
    stream = _client(gateway).chat.completions.create(
        model="thrifty/support",
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        extra_headers={"X-Sandbox-Fault": "status=502, model=gpt-4o-mini"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    failed, served = _attempts(gateway, stream.response.headers["x-thrifty-request-id"], 2)

    assert len(get_encoding("o200k_base").encode(text)) == 8
    assert failed.http_status == 502
    assert failed.streamed
    assert served.streamed
    assert served.output_tokens == 8
    assert served.cost_usd == _cost(served, "gpt-4o")


@pytest.mark.parametrize("status", [500, 503])
def test_fallback_on_server_error(gateway: RunningGateway, status: int) -> None:
    raw = _chat(gateway, "support", {"X-Sandbox-Fault": f"status={status}, model=gpt-4o-mini"})
    request_id = raw.headers["x-thrifty-request-id"]
    failed, served = _attempts(gateway, request_id, 2)

    assert raw.headers["x-thrifty-model"].startswith("gpt-4o")
    assert failed.http_status == status
    assert failed.cost_usd == 0
    assert _routing(failed)["outcome"] == "fell_back"
    assert _routing(failed)["outcome_reason"] == f"HTTP {status} server_error"
    assert served.http_status == 200
    assert served.cost_usd == _cost(served, "gpt-4o")
    assert _routing(served)["model_requested"] == "gpt-4o"


def test_fallback_on_rate_limit_without_waiting(gateway: RunningGateway) -> None:
    started = time.monotonic()
    raw = _chat(gateway, "support", {"X-Sandbox-Fault": "rate_limit=30, model=gpt-4o-mini"})
    elapsed = time.monotonic() - started
    failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert elapsed < 10
    assert failed.http_status == 429
    assert failed.error_type == "requests"
    assert failed.cost_usd == 0
    assert served.http_status == 200


def test_retry_after_retries_same_model_then_falls_back(gateway: RunningGateway) -> None:
    started = time.monotonic()
    raw = _chat(gateway, "patient", {"X-Sandbox-Fault": "rate_limit=0.3, model=gpt-4o-mini"})
    elapsed = time.monotonic() - started
    retried, failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 3)

    assert elapsed >= 0.3
    assert _routing(retried)["outcome"] == "retried"
    assert _routing(retried)["model_requested"] == "gpt-4o-mini"
    assert _routing(failed)["outcome"] == "fell_back"
    assert _routing(failed)["model_requested"] == "gpt-4o-mini"
    assert retried.cost_usd == 0
    assert failed.cost_usd == 0
    assert _routing(served)["model_requested"] == "gpt-4o"
    assert _routing(served)["attempts"] == 3


def test_retry_after_longer_than_limit_falls_back(gateway: RunningGateway) -> None:
    raw = _chat(gateway, "patient", {"X-Sandbox-Fault": "rate_limit=5, model=gpt-4o-mini"})
    failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert _routing(failed)["outcome"] == "fell_back"
    assert _routing(served)["model_requested"] == "gpt-4o"


def test_fallback_on_timeout(gateway: RunningGateway) -> None:
    raw = _chat(gateway, "support", {"X-Sandbox-Fault": "delay_ms=3000, model=gpt-4o-mini"})
    failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert failed.http_status == 504
    assert failed.error_type == "upstream_timeout"
    assert failed.cost_usd == 0
    assert served.http_status == 200
    assert served.cost_usd == _cost(served, "gpt-4o")


def test_fallback_on_connection_refused(gateway: RunningGateway) -> None:
    raw = _chat(gateway, "unreachable", {})
    failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert failed.provider == "down"
    assert failed.http_status == 502
    assert failed.error_type == "upstream_unreachable"
    assert failed.cost_usd == 0
    assert served.provider == "openai"
    assert served.http_status == 200


def test_fallback_to_other_provider(gateway: RunningGateway) -> None:
    raw = _chat(gateway, "mixed", {"X-Sandbox-Fault": "status=503, model=gpt-4o-mini"})
    failed, served = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert raw.parse().choices[0].message.content
    assert failed.provider == "openai"
    assert failed.http_status == 503
    assert served.provider == "anthropic"
    assert served.output_tokens == 8
    assert served.cost_usd == _cost(served, "claude-haiku-4-5", "anthropic")
    assert _routing(served)["model_requested"] == "anthropic/claude-haiku-4-5"


def test_all_models_failing_is_openai_error(gateway: RunningGateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        _chat(gateway, "support", {"X-Sandbox-Fault": "status=503"})
    error = caught.value
    request_id = error.response.headers["x-thrifty-request-id"]
    first, last = _attempts(gateway, request_id, 2)

    assert error.status_code == 503
    assert "route 'support' failed on every model it tried" in error.message
    assert "gpt-4o-mini: HTTP 503" in error.message
    assert "gpt-4o: HTTP 503" in error.message
    assert first.http_status == 503
    assert _routing(first)["outcome"] == "fell_back"
    assert last.http_status == 503
    assert _routing(last)["outcome"] == "failed"
    assert _routing(last)["attempts"] == 2
    assert "strongest_cost_usd" not in _routing(last)


def test_client_error_is_not_retried_elsewhere(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(gateway, "support", {"X-Sandbox-Fault": "status=400"})
    request_id = caught.value.response.headers["x-thrifty-request-id"]
    record = gateway.record(request_id)
    time.sleep(0.3)
    ledger = gateway.ledger()
    other_attempt = ledger.get(f"{request_id}-attempt1")
    ledger.close()

    assert record.http_status == 400
    assert _routing(record)["outcome"] == "failed"
    assert _routing(record)["attempts"] == 1
    assert other_attempt is None


def test_anthropic_cascade_escalates_on_refusal(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="thrifty/claude",
        max_tokens=8,
        messages=MESSAGES,
        extra_headers={"X-Sandbox-Answer": "refusal, model=claude-haiku-4-5"},
    )
    message = raw.parse()
    cheap, strong = _attempts(gateway, raw.headers["x-thrifty-request-id"], 2)

    assert message.content[0].type == "text"
    assert message.content[0].text != REFUSAL_TEXT
    assert cheap.provider == "anthropic"
    assert _routing(cheap)["outcome_reason"].startswith("check refusal:")
    assert cheap.cost_usd == _cost(cheap, "claude-haiku-4-5", "anthropic")
    assert strong.output_tokens == 8
    assert strong.cost_usd == _cost(strong, "claude-sonnet-4-5", "anthropic")


def test_anthropic_all_failing_is_anthropic_error(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="thrifty/claude",
            max_tokens=8,
            messages=MESSAGES,
            extra_headers={"X-Sandbox-Fault": "status=529"},
        )
    body = caught.value.body
    assert caught.value.status_code == 529
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert "claude-haiku-4-5: HTTP 529" in body["error"]["message"]
    assert "claude-sonnet-4-5: HTTP 529" in body["error"]["message"]


def test_report_by_route_compares_strongest_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sections = {"routing": parse_routing_config(ROUTING)}
    with running_gateway(tmp_path, sections=sections) as gateway:
        escalated = _chat(gateway, "chat", {"X-Sandbox-Answer": "empty, model=gpt-4o-mini"})
        kept = _chat(gateway, "chat", {})
        cheap, strong = _attempts(gateway, escalated.headers["x-thrifty-request-id"], 2)
        single = gateway.record(kept.headers["x-thrifty-request-id"])
        db_url = gateway.db_url

    table = _run_cli(capsys, monkeypatch, "report", "--db", db_url, "--by", "route")
    document = json.loads(
        _run_cli(capsys, monkeypatch, "report", "--db", db_url, "--by", "route", "--format", "json")
    )

    actual = _cost(cheap, "gpt-4o-mini") + _cost(strong, "gpt-4o") + _cost(single, "gpt-4o-mini")
    strongest = _cost(strong, "gpt-4o") + _cost(single, "gpt-4o")
    assert document["routes"] == [
        {
            "route": "chat",
            "requests": 2,
            "attempts": 3,
            "escalations": 1,
            "fallbacks": 0,
            "cost_usd": format(actual, "f"),
            "unpriced_attempts": 0,
            "compared_requests": 2,
            "compared_cost_usd": format(actual, "f"),
            "strongest_cost_usd": format(strongest, "f"),
            "savings_usd": format(strongest - actual, "f"),
        }
    ]
    assert "Route chat: 2 requests in 3 attempts (1 escalations, 0 fallbacks)" in table


def _run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> str:
    monkeypatch.setattr("sys.argv", ["thrifty", *args])
    try:
        main()
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    output = capsys.readouterr()
    assert code == 0, output.err
    return output.out
