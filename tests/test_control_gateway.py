"""Virtual keys in one gateway process: admin API, throttling, alerts and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from tests.control_support import MASTER_KEY, PROVIDER_KEY_ENV, chat_cost
from tests.gateway_support import RunningGateway, running_gateway
from tests.servers import serve_in_thread
from thrifty.cli.main import app as cli_app
from thrifty.config import ProviderConfig
from thrifty.control.alerts import SIGNATURE_HEADER, sign
from thrifty.control.config import parse_control_config

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Describe a lighthouse."}]
WEBHOOK_SECRET = "whsec-test"


@dataclass
class Receiver:
    url: str
    received: list[tuple[bytes, str]] = field(default_factory=list)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for body, _ in self.received]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    captured: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        captured.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return Response(status_code=204)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield Receiver(f"{url}/hook", captured)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, sandbox_url: str, receiver: Receiver
) -> Iterator[RunningGateway]:
    patch = pytest.MonkeyPatch()
    patch.setenv("THRIFTY_MASTER_KEY", MASTER_KEY)
    patch.setenv(PROVIDER_KEY_ENV, "sk-sandbox")
    patch.setenv("THRIFTY_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    control = parse_control_config(
        {
            "thresholds": [0.5, 1.0],
            "throttling": [
                {"at": 0.5, "action": "cheaper_model", "models": {"gpt-4o": "gpt-4o-mini"}},
                {"at": 0.5, "action": "flex"},
            ],
            "alerts": {
                "sinks": [
                    {
                        "type": "webhook",
                        "url": receiver.url,
                        "secret_env": "THRIFTY_TEST_WEBHOOK_SECRET",
                    }
                ],
                "backoff_s": 0.05,
            },
        }
    )
    providers = {
        name: ProviderConfig(name, name, sandbox_url, PROVIDER_KEY_ENV)
        for name in ("openai", "anthropic")
    }
    try:
        with running_gateway(
            tmp_path_factory.mktemp("control"),
            extra_providers=providers,
            sections={"control": control},
        ) as running:
            yield running
    finally:
        patch.undo()


def _admin(gateway: RunningGateway, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{gateway.url}/thrifty/admin{path}",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )


def test_admin_api_needs_master_key(gateway: RunningGateway) -> None:
    no_key = httpx.get(f"{gateway.url}/thrifty/admin/keys")
    wrong = httpx.get(f"{gateway.url}/thrifty/admin/keys", headers={"x-api-key": "sk-nope"})
    assert no_key.status_code == 401
    assert wrong.status_code == 401
    assert _admin(gateway, "GET", "/keys").status_code == 200


def test_key_secret_is_shown_once_and_stored_hashed(gateway: RunningGateway) -> None:
    created = _admin(gateway, "POST", "/keys", {"team": "docs"}).json()
    listed = _admin(gateway, "GET", "/keys").json()["keys"]
    shown = _admin(gateway, "GET", f"/keys/{created['key_id']}").json()
    assert created["key"].startswith("sk-thrifty-")
    assert all("key" not in entry for entry in listed)
    assert "key" not in shown
    assert shown["prefix"] == created["key"][:17]
    with gateway.ledger().engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT key_hash FROM control_keys").scalars().all()
    assert created["key"] not in stored


def test_missing_key_refused_in_each_format(gateway: RunningGateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    openai_style = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    anthropic_style = httpx.post(
        f"{gateway.url}/v1/messages", json={**body, "model": "claude-haiku-4-5", "max_tokens": 4}
    )
    assert openai_style.status_code == 401
    assert openai_style.json()["error"]["type"] == "authentication_error"
    assert anthropic_style.status_code == 401
    assert anthropic_style.json()["error"]["type"] == "authentication_error"


def test_budget_header_and_key_defaults_recorded(gateway: RunningGateway) -> None:
    cost = chat_cost(MESSAGES, 10)
    created = _admin(
        gateway,
        "POST",
        "/keys",
        {
            "team": "search",
            "feature": "default-feature",
            "tags": {"env": "prod"},
            "budgets": [{"limit_usd": str(cost * 100), "period": "daily"}],
        },
    ).json()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=created["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=10,
        extra_headers={"x-thrifty-feature": "header-feature"},
    )
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert Decimal(raw.headers["x-thrifty-budget-remaining-usd"]) == cost * 99
    assert record.key_id == created["key_id"]
    assert record.team == "search"
    assert record.feature == "header-feature"
    assert record.tags == {"env": "prod"}
    assert record.details["control"]["reserved_usd"] == format(cost, "f")


def test_throttling_moves_to_cheaper_model_and_flex(
    gateway: RunningGateway, receiver: Receiver
) -> None:
    cost = chat_cost(MESSAGES, 10, "gpt-4o")
    created = _admin(
        gateway,
        "POST",
        "/keys",
        {"budgets": [{"limit_usd": str(cost * Decimal("1.5")), "period": "monthly"}]},
    ).json()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=created["key"], max_retries=0)
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=10,
    )
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=10,
    )
    unthrottled = gateway.record(first.headers["x-thrifty-request-id"])
    throttled = gateway.record(second.headers["x-thrifty-request-id"])
    actions = [entry["action"] for entry in throttled.details["control"]["throttled"]]

    assert unthrottled.details["control"]["throttled"] == []
    assert actions == ["cheaper_model", "flex"]
    assert throttled.model_requested == "gpt-4o"
    assert throttled.model_served is not None
    assert throttled.model_served.startswith("gpt-4o-mini")
    assert throttled.service_tier_requested == "flex"

    budget_id = created["budgets"][0]["budget_id"]
    deadline = time.monotonic() + 5
    while not any(budget_id in body.decode() for body, _ in receiver.received):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for body, signature in receiver.received:
        assert signature == sign(body, WEBHOOK_SECRET.encode())
    assert "key.created" in receiver.events()
    assert "budget.threshold_crossed" in receiver.events()


def test_cli_creates_and_revokes_key(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THRIFTY_GATEWAY_URL", gateway.url)
    runner = CliRunner()
    created = runner.invoke(cli_app, ["keys", "create", "--team", "cli", "--model", "gpt-4o-mini"])
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)
    revoked = runner.invoke(cli_app, ["keys", "revoke", key["key_id"]])
    cutoff = runner.invoke(cli_app, ["cutoff", "on", "--scope", "team:cli", "--reason", "drill"])
    listed = runner.invoke(cli_app, ["cutoff", "list"])
    off = runner.invoke(cli_app, ["cutoff", "off", "--scope", "team:cli"])

    assert key["allowed_models"] == ["gpt-4o-mini"]
    assert json.loads(revoked.output)["revoked_at"] is not None
    assert cutoff.exit_code == 0, cutoff.output
    assert [entry["scope"] for entry in json.loads(listed.output)["cutoffs"]] == ["team:cli"]
    assert json.loads(off.output) == {"scope": "team:cli", "was_on": True}
