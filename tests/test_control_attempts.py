"""Budgets settle every upstream call of a request: routing attempts and Flex rejections.

A request that reaches the provider more than once (a cascade that
escalates, a Flex call rejected before the standard-tier fallback) has a
ledger record per call. The key's budget must be charged the sum of those
records' costs, once, when the request's own record is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.control_support import MASTER_KEY, PROVIDER_KEY_ENV
from tests.gateway_support import RunningGateway, running_gateway
from thrifty.batch.config import parse_flex_config
from thrifty.config import ProviderConfig
from thrifty.control.config import parse_control_config
from thrifty.ledger.record import RequestRecord
from thrifty.routing import parse_routing_config
from thrifty.sandbox import SandboxServer, SandboxSettings

MESSAGES: Any = [{"role": "user", "content": "Extract the customer's name."}]
ROUTING = {
    "routes": {
        "extract": {"models": ["gpt-4o-mini", "gpt-4o"], "policy": "cascade"},
    }
}
FLEX = {"retry_budget_s": 0.05, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    patch = pytest.MonkeyPatch()
    patch.setenv("THRIFTY_MASTER_KEY", MASTER_KEY)
    patch.setenv(PROVIDER_KEY_ENV, "sk-sandbox")
    # Every Flex request is rejected, so each Flex call falls back to the default tier.
    with SandboxServer(SandboxSettings(flex_rejection_rate=1.0)) as sandbox:
        providers = {
            name: ProviderConfig(name, name, sandbox.url, PROVIDER_KEY_ENV)
            for name in ("openai", "anthropic")
        }
        sections = {
            "control": parse_control_config({}),
            "routing": parse_routing_config(ROUTING),
            "flex": parse_flex_config(FLEX),
        }
        try:
            with running_gateway(
                tmp_path_factory.mktemp("attempts"),
                extra_providers=providers,
                sections=sections,
            ) as running:
                yield running
        finally:
            patch.undo()


def _admin(gateway: RunningGateway, method: str, path: str, body: object = None) -> Any:
    response = httpx.request(
        method,
        f"{gateway.url}/thrifty/admin{path}",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def _key_with_budget(gateway: RunningGateway) -> tuple[str, str]:
    created = _admin(
        gateway, "POST", "/keys", {"budgets": [{"limit_usd": "10", "period": "daily"}]}
    )
    return created["key"], created["budgets"][0]["budget_id"]


def _spent(gateway: RunningGateway, budget_id: str, expected: Decimal) -> Decimal:
    """Return the budget's spend, waiting briefly for the background settlement."""
    spent = Decimal(-1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        spent = Decimal(_admin(gateway, "GET", f"/budgets/{budget_id}")["spent_usd"])
        if spent == expected:
            break
        time.sleep(0.05)
    return spent


def _cost(record: RequestRecord) -> Decimal:
    assert record.cost_usd is not None
    return record.cost_usd


def test_cascade_charges_every_attempt(gateway: RunningGateway) -> None:
    key, budget_id = _key_with_budget(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="thrifty/extract",
        messages=MESSAGES,
        max_tokens=8,
        response_format={"type": "json_object"},
        extra_headers={"X-Sandbox-Answer": "json, model=gpt-4o"},
    )
    request_id = raw.headers["x-thrifty-request-id"]
    cheap = gateway.record(f"{request_id}-attempt1")
    strong = gateway.record(request_id)
    total = _cost(cheap) + _cost(strong)

    assert _cost(cheap) > 0
    assert _cost(strong) > 0
    assert cheap.key_id == strong.key_id
    assert _spent(gateway, budget_id, total) == total


def test_flex_rejection_does_not_settle_early(gateway: RunningGateway) -> None:
    key, budget_id = _key_with_budget(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=8,
        service_tier="flex",
    )
    request_id = raw.headers["x-thrifty-request-id"]
    rejected = gateway.record(f"{request_id}-flex1")
    served = gateway.record(request_id)

    assert rejected.http_status == 429
    assert rejected.cost_usd == Decimal(0)
    assert served.service_tier_served == "default"
    assert _spent(gateway, budget_id, _cost(served)) == _cost(served)


def test_plain_request_charges_its_cost(gateway: RunningGateway) -> None:
    key, budget_id = _key_with_budget(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=8
    )
    record = gateway.record(raw.headers["x-thrifty-request-id"])

    assert _spent(gateway, budget_id, _cost(record)) == _cost(record)
