"""Dashboard access once a master key or read-only key is set: login form, session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.config import ProviderConfig
from thrifty.dashboard.auth import COOKIE_NAME, MAX_FAILURES, DashboardAuth

MASTER = "sk-thrifty-master-test-1234567890"
VIEWER = "dash-read-only-test-0987654321"


PROVIDER_KEY_ENV = "THRIFTY_TEST_DASHBOARD_PROVIDER_KEY"


@pytest.fixture
def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_url: str
) -> Iterator[RunningGateway]:
    """A gateway with a master key; virtual keys then need providers with their own keys."""
    monkeypatch.setenv("THRIFTY_MASTER_KEY", MASTER)
    monkeypatch.setenv("THRIFTY_DASHBOARD_KEY", VIEWER)
    monkeypatch.setenv(PROVIDER_KEY_ENV, "sk-sandbox")
    providers = {
        name: ProviderConfig(name, name, sandbox_url, PROVIDER_KEY_ENV)
        for name in ("openai", "anthropic")
    }
    with running_gateway(tmp_path, extra_providers=providers) as running:
        yield running


def login(gateway: RunningGateway, key: str, next_path: str = "/ui/") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/ui/login",
        data={"key": key, "next": next_path},
        follow_redirects=False,
    )


def test_api_needs_a_session(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/ui/api/overview")
    assert response.status_code == 401
    assert "log in to the dashboard first" in response.json()["error"]["message"]


def test_pages_and_assets_redirect_to_login(gateway: RunningGateway) -> None:
    for path in ("/ui/", "/ui/static/app.js", "/ui/vendor/plotly.min.js"):
        response = httpx.get(f"{gateway.url}{path}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")


def test_login_form_is_public(gateway: RunningGateway) -> None:
    form = httpx.get(f"{gateway.url}/ui/login")
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert httpx.get(f"{gateway.url}/ui/static/style.css").status_code == 200


def test_wrong_key_is_rejected(gateway: RunningGateway) -> None:
    response = login(gateway, "sk-wrong")
    assert response.status_code == 401
    assert "That key is not valid." in response.text
    assert COOKIE_NAME not in response.cookies


def test_master_key_login_sets_session_cookie(gateway: RunningGateway) -> None:
    response = login(gateway, MASTER, "/ui/#/savings")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/#/savings"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=v1.admin.")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie

    cookies = {COOKIE_NAME: response.cookies[COOKIE_NAME]}
    me = httpx.get(f"{gateway.url}/ui/api/me", cookies=cookies)
    assert me.json() == {"role": "admin", "login_required": True}
    assert httpx.get(f"{gateway.url}/ui/api/overview", cookies=cookies).status_code == 200


def test_read_only_key_logs_in_as_viewer(gateway: RunningGateway) -> None:
    response = login(gateway, VIEWER)
    cookies = {COOKIE_NAME: response.cookies[COOKIE_NAME]}
    me = httpx.get(f"{gateway.url}/ui/api/me", cookies=cookies)
    assert me.json()["role"] == "viewer"


def test_tampered_cookie_is_rejected(gateway: RunningGateway) -> None:
    token = login(gateway, VIEWER).cookies[COOKIE_NAME]
    forged = token.replace("v1.viewer.", "v1.admin.", 1)
    response = httpx.get(f"{gateway.url}/ui/api/me", cookies={COOKIE_NAME: forged})
    assert response.status_code == 401


def test_next_must_stay_on_dashboard(gateway: RunningGateway) -> None:
    for target in ("https://elsewhere.example/", "//elsewhere.example/ui/", "/v1/models"):
        response = login(gateway, MASTER, target)
        assert response.headers["location"] == "/ui/"


def test_logout_clears_cookie(gateway: RunningGateway) -> None:
    token = login(gateway, MASTER).cookies[COOKIE_NAME]
    response = httpx.post(
        f"{gateway.url}/ui/logout", cookies={COOKIE_NAME: token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert f'{COOKIE_NAME}=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]


def test_repeated_failures_are_throttled(gateway: RunningGateway) -> None:
    for _ in range(MAX_FAILURES):
        assert login(gateway, "sk-guess").status_code == 401
    blocked = login(gateway, MASTER)
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text


def test_no_key_means_open_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THRIFTY_MASTER_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_DASHBOARD_KEY", raising=False)
    with running_gateway(tmp_path) as gateway:
        assert httpx.get(f"{gateway.url}/ui/api/overview").status_code == 200
        form = httpx.get(f"{gateway.url}/ui/login", follow_redirects=False)
    assert form.status_code == 303
    assert form.headers["location"] == "/ui/"


def test_session_expires() -> None:
    auth = DashboardAuth(master_key=MASTER, read_only_key=None, session_s=60)
    token = auth.new_session("admin", now=1_000)
    assert auth.session_role(token, now=1_059) == "admin"
    assert auth.session_role(token, now=1_060) is None


def test_changing_a_key_ends_sessions() -> None:
    token = DashboardAuth(master_key=MASTER, read_only_key=VIEWER).new_session("viewer")
    assert DashboardAuth(master_key=MASTER, read_only_key=VIEWER).session_role(token) == "viewer"
    assert DashboardAuth(master_key=MASTER, read_only_key="other").session_role(token) is None
    assert DashboardAuth(master_key="other", read_only_key=VIEWER).session_role(token) is None


def test_malformed_tokens_are_rejected() -> None:
    auth = DashboardAuth(master_key=MASTER, read_only_key=None)
    for token in ("", "v1", "v1.admin.9999999999.nonce", "v2.admin.9999999999.n.sig", "a.b.c.d.e"):
        assert auth.session_role(token) is None


def test_keys_match_exactly() -> None:
    auth = DashboardAuth(master_key=MASTER, read_only_key=VIEWER)
    assert auth.role_for_key(MASTER) == "admin"
    assert auth.role_for_key(VIEWER) == "viewer"
    assert auth.role_for_key(MASTER + "x") is None
    assert auth.role_for_key("") is None
    assert DashboardAuth(master_key=None, read_only_key=VIEWER).role_for_key("") is None


def test_failures_age_out_of_the_window() -> None:
    auth = DashboardAuth(master_key=MASTER, read_only_key=None)
    for second in range(MAX_FAILURES):
        auth.record_failure("10.0.0.1", now=float(second))
    assert auth.allow_attempt("10.0.0.1", now=30.0) is False
    assert auth.allow_attempt("10.0.0.2", now=30.0) is True
    assert auth.allow_attempt("10.0.0.1", now=70.0) is True
