"""The published OpenAPI description: accurate, and fuzzed with schemathesis over loopback.

The fuzz test sends generated requests for every operation to a gateway in
front of the sandbox and checks that none gets a 500 or hangs, and that every
error is in the error format of the provider the route belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from starlette.routing import Mount, Route

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.config import ProviderConfig, load_config
from thrifty.control.config import parse_control_config
from thrifty.gateway.app import create_app
from thrifty.gateway.openapi import openapi_spec

MASTER_ENV = "THRIFTY_TEST_FUZZ_MASTER_KEY"
MASTER_KEY = "sk-fuzz-master-key"
PROVIDER_ENV = "THRIFTY_TEST_FUZZ_PROVIDER_KEY"

schema = schemathesis.openapi.from_dict(openapi_spec())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sandbox_url: str) -> Iterator[RunningGateway]:
    mp = pytest.MonkeyPatch()
    mp.setenv(MASTER_ENV, MASTER_KEY)
    mp.setenv(PROVIDER_ENV, "sk-sandbox")
    providers = {
        kind: ProviderConfig(kind, kind, sandbox_url, PROVIDER_ENV)
        for kind in ("openai", "anthropic")
    }
    control = parse_control_config({"master_key_env": MASTER_ENV})
    try:
        with running_gateway(
            tmp_path_factory.mktemp("fuzz"),
            extra_providers=providers,
            sections={"control": control},
        ) as running:
            yield running
    finally:
        mp.undo()


def _check_error_format(path: str, status: int, body: Any) -> None:
    assert status < 500 or status in (502, 503, 504), f"{path} returned {status}"
    if status < 400:
        return
    assert isinstance(body, dict), f"{path} returned {status} with a body that is not an object"
    if path.startswith("/v1/messages"):
        assert body.get("type") == "error"
        assert isinstance(body["error"]["message"], str)
        assert isinstance(body["error"]["type"], str)
    else:
        assert isinstance(body["error"]["message"], str)
        assert isinstance(body["error"]["type"], str)
    assert "Traceback" not in str(body)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_openapi_fuzz(case: Case[Any], gateway: RunningGateway) -> None:
    response = case.call(
        base_url=gateway.url,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=30,
    )
    body: Any = None
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        body = response.json()
    assert response.status_code != 500, response.text[:500]
    _check_error_format(case.operation.path, response.status_code, body)


def test_openapi_served_matches_spec(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == openapi_spec()


def _served_routes() -> set[tuple[str, str]]:
    app = create_app(load_config(None, db_url="sqlite://"))
    served = set()
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    served.add((route.path, method.lower()))
        elif isinstance(route, Mount) and route.path == "/thrifty/admin":
            for inner in route.routes:
                assert isinstance(inner, Route)
                for method in inner.methods or ():
                    if method != "HEAD":
                        served.add((route.path + inner.path, method.lower()))
    return served


def test_openapi_describes_every_route() -> None:
    described = {
        (path, method) for path, item in openapi_spec()["paths"].items() for method in item
    }
    served = {
        (path, method)
        for path, method in _served_routes()
        if not path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches"))
    }
    assert served == described
