"""Hostile requests: each gets a clear error in the provider's format, or passes through safely.

Every case also checks that the gateway responded in the error format its
clients parse, and that it recorded exactly the upstream calls it made.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from thrifty.config import ProviderConfig
from thrifty.control.config import parse_control_config

MAX_BODY = 64 * 1024
MASTER_ENV = "THRIFTY_TEST_HOSTILE_MASTER_KEY"
PROVIDER_ENV = "THRIFTY_TEST_HOSTILE_PROVIDER_KEY"
HEADERS = {"authorization": "Bearer sk", "content-type": "application/json"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("hostile"), max_body_bytes=MAX_BODY) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_gateway(
    tmp_path_factory: pytest.TempPathFactory, sandbox_url: str
) -> Iterator[tuple[RunningGateway, str]]:
    """A gateway with a master key, so admission estimates every request's cost."""
    mp = pytest.MonkeyPatch()
    mp.setenv(MASTER_ENV, "sk-hostile-master")
    mp.setenv(PROVIDER_ENV, "sk-sandbox")
    control = parse_control_config({"master_key_env": MASTER_ENV})
    providers = {
        kind: ProviderConfig(kind, kind, sandbox_url, PROVIDER_ENV)
        for kind in ("openai", "anthropic")
    }
    try:
        with running_gateway(
            tmp_path_factory.mktemp("hostile-keyed"),
            extra_providers=providers,
            sections={"control": control},
        ) as running:
            key = httpx.post(
                f"{running.url}/thrifty/admin/keys",
                json={"name": "hostile", "budgets": [{"limit_usd": "5", "period": "monthly"}]},
                headers={"authorization": "Bearer sk-hostile-master"},
                timeout=10,
            ).json()["key"]
            yield running, key
    finally:
        mp.undo()


def _chat(gateway: RunningGateway, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={**HEADERS, **headers},
        timeout=30,
    )


def _openai_error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert "Traceback" not in error["message"]
    return error


def _chat_body(**fields: object) -> bytes:
    body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": MESSAGES, **fields}
    # orjson writes no integer beyond 64 bits; the json module writes them as digits.
    return json.dumps(body).encode()


def _count(gateway: RunningGateway) -> int:
    ledger = gateway.ledger()
    try:
        return ledger.count()
    finally:
        ledger.close()


def test_oversized_declared_body_rejected(gateway: RunningGateway) -> None:
    before = _count(gateway)
    body = _chat_body(padding="x" * MAX_BODY)
    response = _chat(gateway, body)
    assert response.status_code == 413
    error = _openai_error(response)
    assert str(MAX_BODY) in str(error["message"])
    assert "gateway.max_body_bytes" in str(error["message"])
    assert _count(gateway) == before


def test_oversized_chunked_body_rejected(gateway: RunningGateway) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o-mini", "messages": [], "padding": "'
        for _ in range(2 * MAX_BODY // 4096):
            yield b"x" * 4096
        yield b'"}'

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=chunks(), headers=HEADERS, timeout=30
    )
    assert response.status_code == 413
    _openai_error(response)


def test_oversized_anthropic_body_in_its_format(gateway: RunningGateway) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=b'{"padding": "' + b"x" * MAX_BODY + b'"}',
        headers={"x-api-key": "sk", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize("depth", [200, 900, 5000])
def test_deeply_nested_json_rejected_or_served(gateway: RunningGateway, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    body = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", '
    body += b'"content": "hi"}], "metadata_blob": ' + nested + b"}"
    response = _chat(gateway, body)
    if depth > 1000:
        assert response.status_code == 400
        assert "not valid JSON" in str(_openai_error(response)["message"])
    else:
        assert response.status_code in (200, 400)
        if response.status_code == 400:
            _openai_error(response)


def test_deeply_nested_message_content(gateway: RunningGateway) -> None:
    nested = b'{"a": ' * 900 + b"1" + b"}" * 900
    body = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", '
    body += b'"content": [{"type": "text", "text": "hi", "extra": ' + nested + b"}]}]}"
    response = _chat(gateway, body)
    assert response.status_code != 500
    if response.status_code != 200:
        _openai_error(response)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "gpt-4o-\xc3"}',
        b"\xef\xbb\xbf\x00\x00",
    ],
)
def test_invalid_utf8_body_rejected(gateway: RunningGateway, body: bytes) -> None:
    before = _count(gateway)
    response = _chat(gateway, body)
    assert response.status_code == 400
    assert "not valid JSON" in str(_openai_error(response)["message"])
    assert _count(gateway) == before


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[1, 2]", b'"text"', b"{", b'{"model": 5}', b'{"model": ""}'],
)
def test_malformed_body_rejected(gateway: RunningGateway, body: bytes) -> None:
    response = _chat(gateway, body)
    assert response.status_code == 400
    _openai_error(response)


def _raw_request(gateway: RunningGateway, head: bytes, body: bytes) -> bytes:
    """Send bytes as written (no client library cleans them); return the raw response."""
    port = int(gateway.url.rsplit(":", 1)[1])
    request = head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_header_with_bare_cr_rejected(gateway: RunningGateway) -> None:
    before = _count(gateway)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk\r\n"
        b"X-Thrifty-Team: red\rX-Injected: 1\r\n"
    )
    response = _raw_request(gateway, head, _chat_body())
    assert response.startswith(b"HTTP/1.1 400")
    assert _count(gateway) == before


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("x-thrifty-team", "caf\u00e9", "caf\u00e9"),
        ("x-thrifty-feature", "\u691c\u7d22", "\u691c\u7d22"),
    ],
)
def test_non_ascii_attribution_header_is_utf8(
    gateway: RunningGateway, header: str, value: str, expected: str
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=_chat_body(),
        headers=[
            (b"authorization", b"Bearer sk"),
            (b"content-type", b"application/json"),
            (header.encode(), value.encode()),
        ],
        timeout=30,
    )
    assert response.status_code == 200
    record = gateway.record(response.headers["x-thrifty-request-id"])
    field = header.removeprefix("x-thrifty-")
    assert getattr(record, field) == expected


@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe", b"red\x00team", b"red\x1b[31mteam", b"a\tb"],
)
def test_attribution_header_bad_bytes_rejected(gateway: RunningGateway, value: bytes) -> None:
    before = _count(gateway)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk\r\n"
        b"X-Thrifty-Team: " + value + b"\r\n"
    )
    response = _raw_request(gateway, head, _chat_body())
    assert response.startswith(b"HTTP/1.1 400")
    # The HTTP server itself rejects some bytes (NUL); the gateway rejects the rest.
    if b"application/json" in response.split(b"\r\n\r\n", 1)[0]:
        error = orjson.loads(response.split(b"\r\n\r\n", 1)[1])["error"]
        assert error["param"] == "X-Thrifty-Team"
    assert _count(gateway) == before


def test_attribution_header_too_long_rejected(gateway: RunningGateway) -> None:
    response = _chat(gateway, _chat_body(), **{"x-thrifty-project": "p" * 4000})
    assert response.status_code == 400
    error = _openai_error(response)
    assert error["param"] == "X-Thrifty-Project"
    assert "4000 characters" in str(error["message"])


def test_very_long_header_value_rejected(gateway: RunningGateway) -> None:
    response = _chat(gateway, _chat_body(), **{"x-thrifty-tags": "k=" + "v" * 200_000})
    assert response.status_code in (400, 431)
    if response.status_code == 400:
        _openai_error(response)


def test_too_many_tags_rejected(gateway: RunningGateway) -> None:
    tags = ",".join(f"k{i}=v" for i in range(40))
    response = _chat(gateway, _chat_body(), **{"x-thrifty-tags": tags})
    assert response.status_code == 400
    assert "the limit is 32" in str(_openai_error(response)["message"])


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": -5},
        {"max_tokens": 0},
        {"n": -1},
        {"temperature": -100},
        {"max_tokens": 10**30},
        {"max_tokens": 2**63 - 1},
        {"unknown_field": {"nested": [1, 2, 3]}, "x": None},
    ],
)
def test_odd_numbers_and_unknown_fields(gateway: RunningGateway, fields: dict[str, object]) -> None:
    before = _count(gateway)
    response = _chat(gateway, _chat_body(**fields))
    assert response.status_code < 500
    if response.status_code >= 400:
        _openai_error(response)
    # Whatever reached the provider is recorded once; a rejection records nothing.
    request_id = response.headers.get("x-thrifty-request-id")
    if request_id is None:
        assert _count(gateway) == before
    else:
        assert gateway.record(request_id).http_status == response.status_code


def test_infinite_number_rejected(gateway: RunningGateway) -> None:
    body = b'{"model": "gpt-4o-mini", "max_tokens": 1e400, "messages": []}'
    response = _chat(gateway, body)
    assert response.status_code == 400
    _openai_error(response)


@pytest.mark.parametrize("max_tokens", [10**12, 2**63 - 1, 10**30])
def test_enormous_max_tokens_rejected_by_budget(
    keyed_gateway: tuple[RunningGateway, str], max_tokens: int
) -> None:
    gateway, key = keyed_gateway
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=_chat_body(max_tokens=max_tokens),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=30,
    )
    if max_tokens > 2**63:
        # JSON parsers read it as a float; no cap is set, so the model's output limit applies.
        assert response.status_code in (200, 400, 429)
    else:
        assert response.status_code == 429
    assert response.status_code < 500
    if response.status_code != 200:
        _openai_error(response)


def test_wrong_content_type_still_json(gateway: RunningGateway) -> None:
    response = _chat(gateway, _chat_body(), **{"content-type": "text/plain"})
    assert response.status_code == 200


def test_get_on_metered_endpoint_rejected(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/v1/chat/completions", timeout=10)
    assert response.status_code == 405
    _openai_error(response)


def test_path_traversal_unknown_endpoint(gateway: RunningGateway) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/../../etc/passwd", content=_chat_body(), headers=HEADERS, timeout=10
    )
    assert response.status_code == 404
    _openai_error(response)


def test_spool_keeps_no_hostile_bytes(gateway: RunningGateway, tmp_path: Path) -> None:
    _chat(gateway, _chat_body(), **{"x-thrifty-feature": "ok-feature"})
    for path in gateway.config.spool_dir.glob("*"):
        if path.is_file():
            assert b"\x1b" not in path.read_bytes()
