"""Reading request bodies and writing JSON, server-sent events and cut-off responses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from thrifty.sandbox.errors import ApiError

logger = logging.getLogger(__name__)

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


async def read_json_object(request: Request) -> dict[str, Any]:
    """Parse the request body as a JSON object; raise ApiError 400 otherwise."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"The request body is not valid JSON ({exc.msg} at position {exc.pos}); "
            "send a JSON object with Content-Type: application/json.",
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(
            400, f"The request body must be a JSON object, not a JSON {type(body).__name__}."
        )
    return body


def json_response(body: Any, headers: Mapping[str, str], disconnect: bool = False) -> Response:
    """Return ``body`` as JSON; with ``disconnect``, close the connection half way through it."""
    content = orjson.dumps(body)
    if disconnect:
        return TruncatedResponse(content, media_type=JSON, headers=headers)
    return Response(content, media_type=JSON, headers=headers)


def sse_data(payload: Any) -> bytes:
    """Encode one server-sent event with only a ``data`` field (OpenAI chat)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_event(event: str, payload: Any) -> bytes:
    """Encode one server-sent event with an ``event`` name (Responses API, Anthropic)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class EventStream(StreamingResponse):
    """A server-sent event stream that can be cut after a number of events.

    With ``cut_after`` set, the response ends after that many events without
    its closing chunk, so the server closes the connection and the client sees
    a truncated body, as when a provider drops a stream.
    """

    def __init__(
        self,
        events: AsyncIterator[bytes],
        headers: Mapping[str, str],
        cut_after: int | None = None,
    ) -> None:
        stream_headers = {"cache-control": "no-cache", **headers}
        super().__init__(events, media_type=EVENT_STREAM, headers=stream_headers)
        self.cut_after = cut_after

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        sent = 0
        async for chunk in self.body_iterator:
            if self.cut_after is not None and sent >= self.cut_after:
                logger.info(
                    "cutting a stream after %d events, as requested by X-Sandbox-Fault", sent
                )
                return
            body = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class TruncatedResponse(Response):
    """A response that announces its full length but sends only the first half."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        logger.info(
            "cutting a response after %d of %d bytes, as requested by X-Sandbox-Fault",
            len(half),
            len(self.body),
        )
