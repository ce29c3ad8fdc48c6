"""Secrets stay secret: a whole gateway session leaves no secret in any output or file.

The session uses a provider key, the master key, a virtual key, a webhook
signing secret and a dashboard key; afterwards every log line, the ledger
database, the spool, ``/metrics``, each response (body and headers), the
dashboard's HTML and API, and each webhook body are searched for each secret.
The other tests here check the key handling itself: keys stored hashed and
compared in constant time, rejections that tell no key from another, and
upstream addresses that no request can change.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway_support import RunningGateway, running_gateway
from tests.servers import serve_in_thread
from thrifty.config import ProviderConfig
from thrifty.control import secrets as key_secrets
from thrifty.control.config import parse_control_config
from thrifty.dashboard.config import parse_dashboard_config

PROVIDER_KEY = "sk-provider-" + uuid.uuid4().hex
MASTER_KEY = "sk-master-" + uuid.uuid4().hex
HOOK_SECRET = "hook-secret-" + uuid.uuid4().hex
DASHBOARD_KEY = "dash-key-" + uuid.uuid4().hex
ENV = {
    "THRIFTY_LEAK_PROVIDER_KEY": PROVIDER_KEY,
    "THRIFTY_LEAK_MASTER_KEY": MASTER_KEY,
    "THRIFTY_LEAK_HOOK_SECRET": HOOK_SECRET,
    "THRIFTY_LEAK_DASHBOARD_KEY": DASHBOARD_KEY,
}
CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


class Hook:
    """A loopback webhook receiver that keeps every body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.bodies.append(body)
        return Response(status_code=204)


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[Hook, str]]:
    receiver = Hook()
    app = Starlette(routes=[Route("/hook", receiver.receive, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield receiver, f"{url}/hook"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, sandbox_url: str, hook: tuple[Hook, str]
) -> Iterator[RunningGateway]:
    mp = pytest.MonkeyPatch()
    for name, value in ENV.items():
        mp.setenv(name, value)
    control = parse_control_config(
        {
            "master_key_env": "THRIFTY_LEAK_MASTER_KEY",
            "thresholds": [0.01],
            "alerts": {
                "sinks": [
                    {"type": "webhook", "url": hook[1], "secret_env": "THRIFTY_LEAK_HOOK_SECRET"},
                    {"type": "log"},
                ]
            },
        }
    )
    dashboard = parse_dashboard_config({"read_only_key_env": "THRIFTY_LEAK_DASHBOARD_KEY"})
    providers = {
        kind: ProviderConfig(kind, kind, sandbox_url, "THRIFTY_LEAK_PROVIDER_KEY")
        for kind in ("openai", "anthropic")
    }
    try:
        with running_gateway(
            tmp_path_factory.mktemp("leak"),
            extra_providers=providers,
            sections={"control": control, "dashboard": dashboard},
        ) as running:
            yield running
    finally:
        mp.undo()


def _admin(gateway: RunningGateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{gateway.url}/thrifty/admin{path}",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
        **kwargs,
    )


def _session(gateway: RunningGateway) -> tuple[str, list[httpx.Response]]:
    """Run a session of admin calls, requests (some failing) and dashboard pages."""
    responses: list[httpx.Response] = []
    created = _admin(
        gateway,
        "POST",
        "/keys",
        json={"name": "leak", "budgets": [{"limit_usd": "0.001", "period": "monthly"}]},
    )
    responses.append(created)
    virtual_key = created.json()["key"]
    responses += [_admin(gateway, "GET", "/keys"), _admin(gateway, "GET", "/budgets")]

    url = f"{gateway.url}/v1/chat/completions"
    for headers in (
        {"authorization": f"Bearer {virtual_key}"},
        {"authorization": f"Bearer {virtual_key}", "x-sandbox-fault": "status=500"},
        {"authorization": f"Bearer {virtual_key}", "x-sandbox-fault": "rate_limit=1"},
        {"authorization": "Bearer sk-thrifty-not-a-key"},
        {"authorization": f"Bearer {PROVIDER_KEY}"},
        {},
    ):
        responses.append(httpx.post(url, json=CHAT, headers=headers, timeout=30))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=virtual_key, max_retries=0)
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        pass
    responses.append(
        httpx.post(
            f"{gateway.url}/v1/messages",
            json={**CHAT, "model": "claude-3-5-haiku-latest"},
            headers={"x-api-key": virtual_key, "anthropic-version": "2023-06-01"},
            timeout=30,
        )
    )
    request_id = responses[3].headers["x-thrifty-request-id"]
    responses.append(httpx.get(f"{gateway.url}/thrifty/requests/{request_id}", timeout=10))
    responses.append(httpx.get(f"{gateway.url}/metrics", timeout=10))

    with httpx.Client(base_url=gateway.url, timeout=10) as browser:
        responses.append(browser.post("/ui/login", data={"key": "wrong"}))
        responses.append(browser.post("/ui/login", data={"key": DASHBOARD_KEY}))
        for path in ("/ui/", "/ui/api/me", "/ui/api/overview", "/ui/api/requests"):
            responses.append(browser.get(path))
        responses.append(browser.get(f"/ui/api/requests/{request_id}"))
        responses.append(browser.get("/ui/api/budgets"))
    return virtual_key, responses


def _files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file():
            yield path


def test_session_leaks_no_secret(
    gateway: RunningGateway,
    hook: tuple[Hook, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    virtual_key, responses = _session(gateway)
    assert responses[3].status_code == 200
    assert responses[-7].status_code == 303
    assert responses[-6].status_code == 200
    deadline = time.monotonic() + 10
    while not hook[0].bodies and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hook[0].bodies
    time.sleep(0.5)  # let the writer store the last records

    places: dict[str, bytes] = {
        "logs": caplog.text.encode(),
        "stdout and stderr": "".join(capfd.readouterr()).encode(),
        "webhook bodies": b"\n".join(hook[0].bodies),
    }
    for index, response in enumerate(responses):
        head = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        places[f"response {index} {response.url}"] = head.encode() + b"\n" + response.content
    state = Path(gateway.db_url.removeprefix("sqlite:///")).parent
    for path in _files(state):
        places[str(path)] = path.read_bytes()
    assert any("ledger.db" in name for name in places)

    secrets = {
        "provider key": PROVIDER_KEY,
        "master key": MASTER_KEY,
        "webhook secret": HOOK_SECRET,
        "dashboard key": DASHBOARD_KEY,
    }
    for name, secret in secrets.items():
        for place, content in places.items():
            assert secret.encode() not in content, f"the {name} appears in {place}"
    # The virtual key is shown once, in the response that created it, and nowhere else.
    for place, content in places.items():
        if place.startswith("response 0 "):
            continue
        assert virtual_key.encode() not in content, f"the virtual key appears in {place}"
        assert virtual_key[20:].encode() not in content, f"part of the virtual key is in {place}"
    # A rejected key is not echoed, in part or whole: it may be another secret.
    for place, content in places.items():
        assert PROVIDER_KEY[:16].encode() not in content, f"the provider key's start is in {place}"


def test_virtual_key_stored_hashed(gateway: RunningGateway) -> None:
    created = _admin(gateway, "POST", "/keys", json={"name": "hashed"}).json()
    secret = created["key"]
    ledger = gateway.ledger()
    try:
        with ledger.engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT * FROM control_keys WHERE key_id = :id"), {"id": created["key_id"]}
            ).one()
    finally:
        ledger.close()
    values = [str(value) for value in row]
    assert hashlib.sha256(secret.encode()).hexdigest() in values
    assert secret not in values
    hidden_part = secret[key_secrets.SHOWN_PREFIX_LENGTH :]
    assert all(hidden_part not in value for value in values)


def test_same_secret_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert key_secrets.same_secret("sk-a", "sk-a") is True
    assert key_secrets.same_secret("sk-a", "sk-b") is False
    assert key_secrets.same_secret("sk-a", "sk-a-longer") is False
    assert calls == [(b"sk-a", b"sk-a"), (b"sk-a", b"sk-b"), (b"sk-a", b"sk-a-longer")]


def test_new_secrets_are_random_and_long() -> None:
    made = {key_secrets.new_secret() for _ in range(100)}
    assert len(made) == 100
    for secret in made:
        assert secret.startswith("sk-thrifty-")
        assert len(secret) == len("sk-thrifty-") + 43


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": "Bearer sk-thrifty-" + "A" * 43},
        {"x-api-key": "wrong"},
        {"authorization": "Basic Zm9vOmJhcg=="},
    ],
)
def test_admin_rejection_same_for_any_wrong_key(
    gateway: RunningGateway, headers: dict[str, str]
) -> None:
    reference = httpx.get(
        f"{gateway.url}/thrifty/admin/keys", headers={"authorization": "Bearer x"}, timeout=10
    )
    response = httpx.get(f"{gateway.url}/thrifty/admin/keys", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.content == reference.content


def test_admin_rejects_virtual_key(gateway: RunningGateway) -> None:
    created = _admin(gateway, "POST", "/keys", json={"name": "not-admin"}).json()
    reference = httpx.get(
        f"{gateway.url}/thrifty/admin/keys", headers={"authorization": "Bearer x"}, timeout=10
    )
    response = httpx.get(
        f"{gateway.url}/thrifty/admin/keys",
        headers={"authorization": f"Bearer {created['key']}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.content == reference.content


def test_dashboard_rejection_same_for_any_wrong_key(gateway: RunningGateway) -> None:
    created = _admin(gateway, "POST", "/keys", json={"name": "dash"}).json()
    bodies = []
    for key in ("wrong", created["key"], DASHBOARD_KEY + "x", MASTER_KEY[:-1]):
        response = httpx.post(f"{gateway.url}/ui/login", data={"key": key}, timeout=10)
        assert response.status_code == 401
        bodies.append(response.content)
    assert len(set(bodies)) == 1
    api = httpx.get(f"{gateway.url}/ui/api/overview", timeout=10)
    assert api.status_code == 401


@pytest.mark.parametrize(
    ("model", "headers"),
    [
        ("http://127.0.0.2:1/v1", {}),
        ("gpt-4o-mini", {"host": "127.0.0.2:1"}),
        ("gpt-4o-mini", {"x-forwarded-host": "127.0.0.2:1", "x-forwarded-proto": "http"}),
        ("//127.0.0.2:1/gpt-4o-mini", {}),
        ("openai/../../127.0.0.2:1", {}),
        ("gpt-4o-mini", {"x-thrifty-upstream": "http://127.0.0.2:1"}),
    ],
)
def test_request_cannot_redirect_upstream(
    gateway: RunningGateway, sandbox_url: str, model: str, headers: dict[str, str]
) -> None:
    key = _admin(gateway, "POST", "/keys", json={"name": "redirect"}).json()["key"]
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={**CHAT, "model": model},
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )
    # Nothing listens on 127.0.0.2:1, so a redirected request would fail to connect (502).
    assert response.status_code != 502
    record = gateway.record(response.headers["x-thrifty-request-id"])
    assert record.provider == "openai"


def test_absolute_url_request_target_stays_local(gateway: RunningGateway) -> None:
    import socket

    port = int(gateway.url.rsplit(":", 1)[1])
    body = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": []}'
    request = (
        b"POST http://127.0.0.2:1/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.2:1\r\n"
        b"Connection: close\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert not reply.startswith(b"HTTP/1.1 502")
    assert not reply.startswith(b"HTTP/1.1 504")
