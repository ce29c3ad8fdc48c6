"""Authentication of the /v1 routes that are not metered: models, files and batches.

The metered endpoints are admitted by ``AdmissionStep``; this middleware
covers every other ``/v1/...`` route, so a revoked, expired or missing key
reaches nothing. For a key limited to some models it also checks what a
batch would run: each line of a batch input file uploaded to ``/v1/files``,
each request of an Anthropic message batch, and, for ``/v1/batches``, the
input file it names (read back through the gateway's own files route).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thrifty.control.admission import Denial
from thrifty.control.plane import ControlPlane
from thrifty.control.scopes import request_scopes
from thrifty.control.step import AdmissionStep
from thrifty.gateway.endpoints import METERED_ENDPOINTS
from thrifty.gateway.error_responses import error_response

logger = logging.getLogger(__name__)

_METERED_PATHS = frozenset(endpoint.path for endpoint in METERED_ENDPOINTS)


class ControlMiddleware:
    """ASGI middleware that admits the non-metered ``/v1`` routes."""

    def __init__(self, app: ASGIApp, steps: Callable[[], Sequence[object]]) -> None:
        self.app = app
        self.steps = steps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path in _METERED_PATHS:
            await self.app(scope, receive, send)
            return
        plane = _plane(self.steps())
        if plane is None or not plane.keys_required:
            await self.app(scope, receive, send)
            return

        await plane.refresh_if_changed()
        headers = Headers(scope=scope)
        kind = "anthropic" if path.startswith("/v1/messages") else "openai"
        principal = plane.authenticate(headers)
        if isinstance(principal, Denial):
            await _refuse(kind, principal, scope, receive, send)
            return
        key = principal.key
        scopes = request_scopes(
            principal.key_id,
            team=key.team if key else None,
            project=key.project if key else None,
            user=key.user if key else None,
            feature=key.feature if key else None,
            tags=dict(key.tags) if key else {},
        )
        denial = plane.cutoff_for(scopes)
        if denial is not None:
            await _refuse(kind, denial, scope, receive, send)
            return
        if key is None or not key.allowed_models or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        replay = _replaying(body, receive)
        models = await self._batch_models(path, scope, body, headers)
        for model in models:
            denial = plane.check_access(principal, model, _provider(kind), None)
            if denial is not None:
                await _refuse(kind, denial, scope, replay, send)
                return
        await self.app(scope, replay, send)

    async def _batch_models(
        self, path: str, scope: Scope, body: bytes, headers: Headers
    ) -> list[str]:
        if path == "/v1/files":
            return await _uploaded_models(scope, body)
        if path == "/v1/messages/batches":
            return _message_batch_models(body)
        if path == "/v1/batches":
            return await self._input_file_models(body, headers)
        return []

    async def _input_file_models(self, body: bytes, headers: Headers) -> list[str]:
        parsed = _loads(body)
        file_id = parsed.get("input_file_id") if isinstance(parsed, dict) else None
        if not isinstance(file_id, str):
            return []
        forwarded = {
            name: value
            for name, value in headers.items()
            if name in ("authorization", "x-api-key", "openai-organization")
        }
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get(f"/v1/files/{file_id}/content", headers=forwarded)
        if response.status_code != 200:
            logger.warning(
                "could not read batch input file %s to check its models: HTTP %d",
                file_id,
                response.status_code,
            )
            # A model that no key allows makes the check fail closed.
            return [f"<unreadable input file {file_id}>"]
        return _jsonl_models(response.content)


def _plane(steps: Sequence[object]) -> ControlPlane | None:
    for step in steps:
        if isinstance(step, AdmissionStep):
            return step.plane
    return None


def _provider(kind: str) -> str:
    return "anthropic" if kind == "anthropic" else "openai"


async def _uploaded_models(scope: Scope, body: bytes) -> list[str]:
    content_type = Headers(scope=scope).get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return []
    # The stdlib's MIME parser reads multipart/form-data (RFC 7578) once given its header.
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts() if isinstance(message, EmailMessage) else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    if fields.get("purpose", b"").strip() != b"batch":
        return []
    return _jsonl_models(fields.get("file", b""))


def _jsonl_models(content: bytes) -> list[str]:
    models: list[str] = []
    for line in content.splitlines():
        if not line.strip():
            continue
        item = _loads(line)
        body = item.get("body") if isinstance(item, dict) else None
        model = body.get("model") if isinstance(body, dict) else None
        models.append(model if isinstance(model, str) else "<missing model>")
    return sorted(set(models))


def _message_batch_models(body: bytes) -> list[str]:
    parsed = _loads(body)
    items = parsed.get("requests") if isinstance(parsed, dict) else None
    models: set[str] = set()
    for item in items if isinstance(items, list) else []:
        params = item.get("params") if isinstance(item, dict) else None
        model = params.get("model") if isinstance(params, dict) else None
        models.add(model if isinstance(model, str) else "<missing model>")
    return sorted(models)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, then: Receive | None = None) -> Receive:
    """Return a receive that yields ``body`` once, then waits on ``then`` (the client)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


async def _refuse(kind: str, denial: Denial, scope: Scope, receive: Receive, send: Send) -> None:
    logger.info(
        "%s %s refused (%d): %s",
        scope.get("method"),
        scope.get("path"),
        denial.status,
        denial.message,
    )
    response = error_response(
        "anthropic" if kind == "anthropic" else "openai",
        denial.status,
        denial.message,
        error_type=denial.error_type,
        headers=denial.headers,
    )
    await response(scope, receive, send)
