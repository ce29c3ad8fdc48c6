"""Flex processing through the gateway: retries, fallback, pricing by the served tier, timeouts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.batch.config import FlexConfig, parse_flex_config
from thrifty.batch.savings import flex_savings
from thrifty.config import sandbox_providers
from thrifty.errors import ConfigError
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox import SandboxServer, SandboxSettings
from thrifty.usage import Usage

MESSAGES = [{"role": "user", "content": "Summarize the nightly evaluation."}]

# Short waits, so a test of the retry budget takes a fraction of a second.
QUICK = {"retry_budget_s": 0.05, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}


@pytest.fixture(params=[0.0, 1.0], ids=["flex-available", "flex-full"])
def rejection_rate(request: pytest.FixtureRequest) -> float:
    return float(request.param)


@contextlib.contextmanager
def gateway_for(
    tmp_path: Path, rejection_rate: float, flex: dict[str, Any], **overrides: Any
) -> Iterator[tuple[RunningGateway, openai.OpenAI]]:
    """Serve a gateway whose providers are a sandbox rejecting this share of Flex requests."""
    settings = SandboxSettings(flex_rejection_rate=rejection_rate)
    with (
        SandboxServer(settings) as sandbox,
        running_gateway(
            tmp_path,
            providers=sandbox_providers(sandbox.url),
            sections={"flex": parse_flex_config(flex)},
            **overrides,
        ) as gateway,
    ):
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
        yield gateway, client


@pytest.fixture
def full(tmp_path: Path) -> Iterator[tuple[RunningGateway, openai.OpenAI]]:
    with gateway_for(tmp_path, 1.0, QUICK) as served:
        yield served


@pytest.fixture
def available(tmp_path: Path) -> Iterator[tuple[RunningGateway, openai.OpenAI]]:
    rules = [
        {"feature": "nightly-eval", "use": "always"},
        {"feature": "checkout", "use": "never"},
    ]
    with gateway_for(tmp_path, 0.0, {**QUICK, "rules": rules}) as served:
        yield served


def price(record: RequestRecord, tier: str | None) -> Decimal | None:
    usage = Usage(
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_read_tokens=record.cache_read_tokens,
        reasoning_tokens=record.reasoning_tokens,
    )
    return CostEngine().price("openai", "o4-mini", usage, service_tier=tier).cost_usd


def flex_call(client: openai.OpenAI, **extra: Any) -> tuple[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=20,
        service_tier="flex",
        **extra,
    )
    return raw.headers["x-thrifty-request-id"], raw


def test_full_flex_falls_back_at_standard_price(
    full: tuple[RunningGateway, openai.OpenAI],
) -> None:
    gateway, client = full

    request_id, raw = flex_call(client)
    completion = raw.parse()

    assert completion.service_tier == "default"
    assert raw.headers["x-thrifty-service-tier"] == "default"
    record = gateway.record(request_id)
    assert record.http_status == 200
    assert record.service_tier_requested == "flex"
    assert record.service_tier_served == "default"
    assert record.cost_usd == price(record, None)
    assert raw.headers["x-thrifty-cost-usd"] == str(record.cost_usd)
    flex = record.details["flex"]
    assert flex["fallback"] is True
    assert flex["rejected"] is False
    assert flex["standard_cost_usd"] is None
    assert flex["rejections"] >= 1
    for attempt in range(1, flex["rejections"] + 1):
        rejected = gateway.record(f"{request_id}-flex{attempt}")
        assert rejected.http_status == 429
        assert rejected.cost_usd == Decimal(0)
        assert rejected.unpriced is False
        assert rejected.error_type == "resource_unavailable"
        assert rejected.service_tier_requested == "flex"
        assert rejected.details["flex"] == {
            "rejected": True,
            "attempt": attempt,
            "call": request_id,
        }


def test_available_flex_billed_at_flex_rates(
    available: tuple[RunningGateway, openai.OpenAI],
) -> None:
    gateway, client = available

    request_id, raw = flex_call(client)

    assert raw.parse().service_tier == "flex"
    record = gateway.record(request_id)
    assert record.service_tier_served == "flex"
    assert record.cost_usd == price(record, "flex")
    standard = price(record, None)
    assert standard is not None
    assert record.cost_usd is not None
    assert record.cost_usd < standard
    assert record.details["flex"] == {
        "requested": True,
        "rejected": False,
        "policy": "request",
        "rejections": 0,
        "fallback": False,
        "standard_cost_usd": format(standard, "f"),
    }


def test_served_tier_decides_price(tmp_path: Path, rejection_rate: float) -> None:
    with gateway_for(tmp_path, rejection_rate, QUICK) as (gateway, client):
        request_id, _ = flex_call(client)
        record = gateway.record(request_id)
        expected_tier = "flex" if rejection_rate == 0.0 else "default"
        assert record.service_tier_served == expected_tier
        assert record.cost_usd == price(record, expected_tier if expected_tier == "flex" else None)


def test_rejection_without_fallback_costs_nothing(tmp_path: Path) -> None:
    with gateway_for(tmp_path, 1.0, {**QUICK, "fallback": False}) as (gateway, client):
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(
                model="o4-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=20,
                service_tier="flex",
            )
        request_id = raised.value.response.headers["x-thrifty-request-id"]
        record = gateway.record(request_id)

        assert record.http_status == 429
        assert record.cost_usd == Decimal(0)
        assert record.unpriced is False
        assert record.error_type == "resource_unavailable"
        flex = record.details["flex"]
        assert flex["rejected"] is True
        assert flex["fallback"] is False
        for attempt in range(1, flex["rejections"] + 1):
            assert gateway.record(f"{request_id}-flex{attempt}").cost_usd == Decimal(0)


def test_streamed_flex_falls_back(full: tuple[RunningGateway, openai.OpenAI]) -> None:
    gateway, client = full

    with client.chat.completions.with_streaming_response.create(
        model="o4-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=12,
        service_tier="flex",
        stream=True,
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        chunks = list(response.parse())

    assert {chunk.service_tier for chunk in chunks} == {"default"}
    record = gateway.record(request_id)
    assert record.streamed is True
    assert record.service_tier_served == "default"
    assert record.details["flex"]["fallback"] is True


def test_rule_sends_feature_to_flex(available: tuple[RunningGateway, openai.OpenAI]) -> None:
    gateway, client = available

    raw = client.chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=10,
        extra_headers={"X-Thrifty-Feature": "nightly-eval"},
    )
    other = client.chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=10,
        extra_headers={"X-Thrifty-Feature": "support"},
    )
    unsupported = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=10,
        extra_headers={"X-Thrifty-Feature": "nightly-eval"},
    )

    assert raw.parse().service_tier == "flex"
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert record.service_tier_requested == "flex"
    assert record.details["flex"]["policy"] == "rule feature=nightly-eval"
    assert other.parse().service_tier == "default"
    assert "flex" not in gateway.record(other.headers["x-thrifty-request-id"]).details
    assert unsupported.parse().service_tier == "default"


def test_rule_keeps_feature_off_flex(available: tuple[RunningGateway, openai.OpenAI]) -> None:
    gateway, client = available

    request_id, raw = flex_call(client, extra_headers={"X-Thrifty-Feature": "checkout"})

    assert raw.parse().service_tier == "default"
    record = gateway.record(request_id)
    assert record.service_tier_requested == "auto"
    assert "flex" not in record.details


def test_flex_calls_get_the_long_timeout(tmp_path: Path) -> None:
    slow = {"X-Sandbox-Fault": "delay_ms=700"}
    flex = {**QUICK, "timeout_s": 10}
    with gateway_for(tmp_path, 0.0, flex, upstream_timeout_s=0.3) as (gateway, client):
        request_id, raw = flex_call(client, extra_headers=slow)
        assert raw.parse().service_tier == "flex"
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(
                model="o4-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=10,
                extra_headers=slow,
            )
        assert raised.value.status_code == 504
        assert gateway.record(request_id).http_status == 200


def test_flex_savings_report(full: tuple[RunningGateway, openai.OpenAI]) -> None:
    gateway, client = full
    request_id, _ = flex_call(client)
    record = gateway.record(request_id)
    rejections = record.details["flex"]["rejections"]
    ledger = gateway.ledger()
    try:
        with ledger.engine.connect() as connection:
            savings = flex_savings(connection)
    finally:
        ledger.close()

    assert savings.calls == 1
    assert savings.fallbacks == 1
    assert savings.rejections == rejections
    assert savings.served == 0
    assert savings.fallback_rate == 1.0


def test_flex_savings_of_served_calls(available: tuple[RunningGateway, openai.OpenAI]) -> None:
    gateway, client = available
    records = [gateway.record(flex_call(client)[0]) for _ in range(2)]
    ledger = gateway.ledger()
    try:
        with ledger.engine.connect() as connection:
            savings = flex_savings(connection)
    finally:
        ledger.close()

    cost = sum((record.cost_usd or Decimal(0) for record in records), Decimal(0))
    standard = sum((price(record, None) or Decimal(0) for record in records), Decimal(0))
    assert savings.calls == 2
    assert savings.served == 2
    assert savings.fallbacks == 0
    assert savings.fallback_rate == 0.0
    assert savings.cost_usd == cost
    assert savings.standard_cost_usd == standard
    assert savings.savings_usd == standard - cost


def test_flex_config_defaults() -> None:
    config = parse_flex_config(None)

    assert config == FlexConfig()
    assert config.timeout_s == 900.0
    assert config.supports("o3")
    assert config.supports("o4-mini-2025-04-16")
    assert config.supports("gpt-5-nano")
    assert not config.supports("gpt-4o-mini")
    assert not config.supports("o3-mini")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"timeout_s": -1}, "flex.timeout_s is -1"),
        ({"retry_budget_s": "soon"}, "flex.retry_budget_s is 'soon'"),
        ({"fallback": "yes"}, "flex.fallback is 'yes'"),
        ({"colour": "blue"}, "unknown key flex.colour"),
        ({"models": "o3"}, "flex.models is 'o3'"),
        ({"rules": [{"use": "always"}]}, "flex.rules[0] matches nothing"),
        ({"rules": [{"feature": "x", "use": "sometimes"}]}, "flex.rules[0].use is 'sometimes'"),
        ({"backoff_initial_s": 5, "backoff_max_s": 1}, "flex.backoff_max_s is 1"),
        ([1, 2], "flex must be a mapping"),
    ],
)
def test_flex_config_errors(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_flex_config(raw)
    assert message in str(raised.value)
