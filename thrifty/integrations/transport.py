"""HTTP transports that meter the calls of a wrapped client.

The official SDKs send every request through an ``httpx2`` client. The
wrapper gives the SDK a new client whose transport hands each request to
the SDK's original client, so connection pools, proxies and timeouts stay
as the caller configured them, and meters what comes back. Retries made by
the SDK are separate upstream calls and get a record each.

Three changes are made to a metered request, none visible in what the SDK
returns. ``X-Thrifty-*`` headers (attribution for Thrifty) are not sent to
the provider. ``Accept-Encoding: identity`` requests an uncompressed
response, so that it can be read. A streamed chat completion requests its
final usage chunk, which is then removed from the stream.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import orjson

from thrifty.gateway.endpoints import CHAT_COMPLETIONS
from thrifty.gateway.metering import Call
from thrifty.integrations.metering import (
    ClientInfo,
    buffered_record,
    endpoint_for,
    failed_record,
    start_call,
)
from thrifty.integrations.streams import StreamMeter
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

Submit = Callable[[RequestRecord], None]


class _Metering:
    """The state both transports share: the client's identity, the prices and the sink."""

    def __init__(self, info: ClientInfo, engine: CostEngine, submit: Submit) -> None:
        self.info = info
        self.engine = engine
        self.submit = submit

    def begin(self, request: httpx2.Request) -> tuple[httpx2.Request, Call | None, bool]:
        """Return the request to send, its call (None when not metered) and whether
        the usage-only chunk must be removed from its stream."""
        endpoint = endpoint_for(self.info.kind, request.method, request.url.path)
        if endpoint is None:
            return request, None, False
        body = _json_body(request)
        if body is None:
            return request, None, False
        call = start_call(self.info, endpoint, _origin(request.url), body, request.headers)
        strip = False
        if call.streamed and endpoint is CHAT_COMPLETIONS and not _asks_for_usage(body):
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            body = {**body, "stream_options": {**options, "include_usage": True}}
            strip = True
        return _rebuilt(request, body if strip else None), call, strip

    def buffered(self, call: Call, response: httpx2.Response, raw: bytes) -> None:
        content = _decoded(response, raw)
        record = buffered_record(self.engine, call, response.status_code, content, self.info)
        provider_id = response.headers.get("x-request-id") or response.headers.get("request-id")
        if provider_id:
            record.details["track"]["provider_request_id"] = provider_id
        self.submit(record)

    def failed(self, call: Call, exc: httpx2.TransportError) -> None:
        timed_out = isinstance(exc, httpx2.TimeoutException)
        self.submit(failed_record(self.engine, call, self.info, timed_out=timed_out))

    def stream_meter(self, call: Call, strip: bool) -> StreamMeter:
        return StreamMeter(self.engine, call, self.info, self.submit, strip_usage_chunk=strip)


class MeteredTransport(httpx2.BaseTransport):
    """A sync transport that sends through ``inner`` and records metered calls."""

    def __init__(
        self, inner: httpx2.Client, info: ClientInfo, engine: CostEngine, submit: Submit
    ) -> None:
        self._inner = inner
        self._metering = _Metering(info, engine, submit)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request, call, strip = self._metering.begin(request)
        try:
            response = _unread(self._inner.send(request, stream=True))
        except httpx2.TransportError as exc:
            if call is not None:
                self._metering.failed(call, exc)
            raise
        if call is None:
            return _passthrough(response, _SyncRaw(response))
        if call.streamed and response.status_code == 200 and _is_event_stream(response):
            meter = self._metering.stream_meter(call, strip)
            return _passthrough(response, _SyncMeteredStream(response, meter))
        try:
            raw = b"".join(response.iter_raw())
        except httpx2.TransportError as exc:
            self._metering.failed(call, exc)
            raise
        finally:
            response.close()
        self._metering.buffered(call, response, raw)
        return _passthrough(response, httpx2.ByteStream(raw))

    def close(self) -> None:
        self._inner.close()


class AsyncMeteredTransport(httpx2.AsyncBaseTransport):
    """The async counterpart of ``MeteredTransport``."""

    def __init__(
        self, inner: httpx2.AsyncClient, info: ClientInfo, engine: CostEngine, submit: Submit
    ) -> None:
        self._inner = inner
        self._metering = _Metering(info, engine, submit)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request, call, strip = self._metering.begin(request)
        try:
            response = _unread(await self._inner.send(request, stream=True))
        except httpx2.TransportError as exc:
            if call is not None:
                self._metering.failed(call, exc)
            raise
        if call is None:
            return _passthrough(response, _AsyncRaw(response))
        if call.streamed and response.status_code == 200 and _is_event_stream(response):
            meter = self._metering.stream_meter(call, strip)
            return _passthrough(response, _AsyncMeteredStream(response, meter))
        try:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx2.TransportError as exc:
            self._metering.failed(call, exc)
            raise
        finally:
            await response.aclose()
        self._metering.buffered(call, response, raw)
        return _passthrough(response, httpx2.ByteStream(raw))

    async def aclose(self) -> None:
        await self._inner.aclose()


class _SyncRaw(httpx2.SyncByteStream):
    """The undecoded body of an inner response, closed with it."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_raw()

    def close(self) -> None:
        self._response.close()


class _AsyncRaw(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class _SyncMeteredStream(httpx2.SyncByteStream):
    def __init__(self, response: httpx2.Response, meter: StreamMeter) -> None:
        self._response = response
        self._meter = meter
        # A stream the caller drops without closing is still recorded, when collected.
        weakref.finalize(self, meter.finish, completed=False)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_raw():
                out = self._meter.feed(chunk)
                if out:
                    yield out
        except httpx2.TransportError as exc:
            self._meter.finish(completed=False, error=f"{type(exc).__name__}: {exc}")
            raise
        tail = self._meter.end()
        if tail:
            yield tail

    def close(self) -> None:
        self._meter.finish(completed=False)
        self._response.close()


class _AsyncMeteredStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, meter: StreamMeter) -> None:
        self._response = response
        self._meter = meter
        weakref.finalize(self, meter.finish, completed=False)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                out = self._meter.feed(chunk)
                if out:
                    yield out
        except httpx2.TransportError as exc:
            self._meter.finish(completed=False, error=f"{type(exc).__name__}: {exc}")
            raise
        tail = self._meter.end()
        if tail:
            yield tail

    async def aclose(self) -> None:
        self._meter.finish(completed=False)
        await self._response.aclose()


def _unread(response: httpx2.Response) -> httpx2.Response:
    """Return a response whose body can still be read raw.

    A transport that returns a response built from content (a mock transport
    does) hands over a response already read and decoded. Such a response is
    copied over its decoded body, without the content encoding.
    """
    if not response.is_stream_consumed:
        return response
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length")
    ]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        stream=httpx2.ByteStream(response.content),
        extensions=response.extensions,
    )


def _passthrough(response: httpx2.Response, stream: Any) -> httpx2.Response:
    """Return a copy of the status, headers and extensions of ``response`` over ``stream``."""
    return httpx2.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
    )


def _json_body(request: httpx2.Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(request.content)
    except (orjson.JSONDecodeError, httpx2.RequestNotRead):
        return None
    return body if isinstance(body, dict) else None


def _rebuilt(request: httpx2.Request, body: dict[str, Any] | None) -> httpx2.Request:
    """Copy a request without X-Thrifty-* headers, asking for an uncompressed response."""
    headers = [
        (name, value)
        for name, value in request.headers.multi_items()
        if not name.lower().startswith("x-thrifty-")
        and name.lower() not in ("accept-encoding", "content-length", "transfer-encoding")
    ]
    headers.append(("accept-encoding", "identity"))
    content = request.content if body is None else orjson.dumps(body)
    return httpx2.Request(
        request.method,
        request.url,
        headers=headers,
        content=content,
        extensions=request.extensions,
    )


def _decoded(response: httpx2.Response, raw: bytes) -> bytes:
    """Return a body as the client will see it, undoing any content encoding."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    copy = httpx2.Response(
        response.status_code, headers=response.headers, stream=httpx2.ByteStream(raw)
    )
    return copy.read()


def _origin(url: httpx2.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _asks_for_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _is_event_stream(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")
