"""Streamed responses: forwarded event by event, metered as they pass.

The provider's events go to the client as they arrive, byte for byte, with
two exceptions: the usage-only chunk the gateway asked for on the client's
behalf is removed, and the terminal event (``[DONE]``, ``message_stop``,
``response.completed``) is held until the call's record has been handed to
the writer. A client that disconnects, or a provider that stops mid-stream,
still yields one record; its output is counted from the text generated so
far and flagged as estimated.

A call with a translation (``call.translation``) is metered from the
provider's native events, and the client receives the translator's events
in its own format instead; the closing ones are held the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from thrifty.errors import UsageError
from thrifty.gateway.metering import (
    Call,
    build_record,
    estimate_input_tokens,
    normalize_tier,
    price_call,
)
from thrifty.gateway.sse import Event, EventSplitter
from thrifty.gateway.translating import metered_endpoint
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import count_text
from thrifty.translation import StreamTranslator
from thrifty.usage import Usage
from thrifty.usage.stream import StreamUsageTracker, tracker_for

logger = logging.getLogger(__name__)

# A step sets ``call.extra[CAPTURE_STREAM]`` to receive a whole stream's bytes
# (every upstream event, the removed usage chunk included) as ``content`` in
# ``finish``, when the stream completed.
CAPTURE_STREAM = "capture_stream"


class RecordSink(Protocol):
    """The receiver of a stream's record: the gateway, or a holder that submits it later."""

    engine: CostEngine

    def submit(self, call: Call, record: RequestRecord, content: bytes | None = None) -> None: ...


_TERMINAL_EVENT_NAMES = frozenset(
    {"message_stop", "response.completed", "response.incomplete", "response.failed"}
)


class StreamProxy(Response):
    """An ASGI response that pumps an upstream event stream to the client."""

    def __init__(
        self,
        gateway: RecordSink,
        call: Call,
        upstream: aiohttp.ClientResponse,
        headers: dict[str, str],
    ) -> None:
        super().__init__(
            status_code=upstream.status, headers=headers, media_type="text/event-stream"
        )
        self.gateway = gateway
        self.call = call
        self.upstream = upstream
        self.tracker: StreamUsageTracker = tracker_for(
            call.endpoint.name if call.translation is None else metered_endpoint(call)
        )
        # Turns the provider's events into the client's format, when they differ.
        self.translator = None if call.translation is None else call.translation.stream()
        self.completed = False
        self.client_gone = False
        self.stream_error: str | None = None
        self.recorded = False
        self.captured: list[bytes] | None = [] if call.extra.get(CAPTURE_STREAM) else None
        # Response.__init__ sets Content-Length: 0 for an empty body; a stream has none.
        del self.headers["content-length"]
        self.headers["x-thrifty-request-id"] = call.request_id
        self.headers["cache-control"] = "no-cache"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                self.client_gone = True
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        finally:
            watcher.cancel()
            if self.completed:
                self.upstream.release()
            else:
                self.upstream.close()
            self._record_once()

    async def _pump(self, send: Send) -> None:
        splitter = EventSplitter()
        held: list[bytes] = []
        try:
            async for chunk in self.upstream.content.iter_any():
                self._note_first_token()
                out = [raw for event in splitter.feed(chunk) if (raw := self._accept(event, held))]
                if out:
                    await send(
                        {"type": "http.response.body", "body": b"".join(out), "more_body": True}
                    )
            # Every provider ends a whole stream with a terminal event.
            self.completed = bool(held)
            if not self.completed:
                self.stream_error = "the upstream closed the stream before its final event"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stream_error = f"{type(exc).__name__}: {exc}"
        if self.stream_error is not None:
            logger.warning(
                "request %s: upstream stream failed: %s", self.call.request_id, self.stream_error
            )
            held = [self._error_event()]
        self.call.upstream_s = time.perf_counter() - self.call.upstream_started
        self._record_once()
        await send({"type": "http.response.body", "body": b"".join(held), "more_body": False})

    def _error_event(self) -> bytes:
        """Return an error event in the provider's stream format, which the SDKs raise on."""
        message = (
            f"the upstream stream failed before it finished ({self.stream_error}); "
            f"the partial usage is recorded as estimated under {self.call.request_id}"
        )
        if self.call.endpoint.kind == "anthropic":
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
            return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
        error = {"message": message, "type": "server_error", "param": None, "code": None}
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"

    def _accept(self, event: Event, held: list[bytes]) -> bytes | None:
        """Meter one event; return the bytes to forward now, or None."""
        if self.translator is not None:
            return self._accept_translated(event, held, self.translator)
        if self.captured is not None:
            self.captured.append(event.raw)
        if event.data == b"[DONE]" or event.name in _TERMINAL_EVENT_NAMES:
            self._feed(event)
            held.append(event.raw)
            return None
        payload = self._feed(event)
        if self.call.extra.get("strip_usage_chunk") and _is_usage_only_chunk(payload):
            return None
        return event.raw

    def _accept_translated(
        self, event: Event, held: list[bytes], translator: StreamTranslator
    ) -> bytes | None:
        """Meter one native event; return the client's events to forward now, or None.

        The client's closing events are held, as a native terminal event is.
        """
        payload = self._feed(event)
        if held:
            # The client's stream has been closed; later events are metered only.
            return None
        out = translator.feed(payload) if isinstance(payload, Mapping) else []
        terminal = (
            event.data == b"[DONE]" or event.name in _TERMINAL_EVENT_NAMES or translator.finished
        )
        if terminal:
            out += translator.finish()
        if self.captured is not None:
            self.captured.extend(out)
        if terminal:
            held.extend(out)
            return None
        return b"".join(out) or None

    def _feed(self, event: Event) -> Any:
        if not event.data or event.data == b"[DONE]":
            return None
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            logger.warning("request %s: an upstream event is not JSON", self.call.request_id)
            return None
        if isinstance(payload, Mapping):
            try:
                self.tracker.feed(payload)
            except UsageError as exc:
                self.stream_error = f"invalid usage: {exc}"
        return payload

    def _note_first_token(self) -> None:
        if self.call.first_token_at is None:
            self.call.first_token_at = datetime.now(UTC)

    def _record_once(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        try:
            record = self._build_record()
        except Exception:
            # The record must not be lost to a bug in metering: keep the call
            # with zero usage, unpriced, and the error named.
            logger.exception("request %s: metering a stream failed", self.call.request_id)
            record = self._fallback_record()
        content = None
        if self.captured is not None and self.completed and not self.client_gone:
            content = b"".join(self.captured)
        self.gateway.submit(self.call, record, content)

    def _build_record(self) -> RequestRecord:
        call = self.call
        usage = self.tracker.result()
        finished = (
            self.tracker.final_usage_seen and not self.client_gone and self.stream_error is None
        )
        if not finished:
            usage = self._estimated_usage(usage)
        assert usage is not None
        model = self.tracker.model or call.target.model
        tier = normalize_tier(self.tracker.service_tier)
        cost = price_call(self.gateway.engine, call, model, usage, tier, speed=self.tracker.speed)
        error_type = None
        if self.client_gone:
            error_type = "client_disconnected"
        elif self.stream_error is not None:
            error_type = "upstream_stream_error"
        return build_record(
            call,
            status=self.status_code,
            usage=usage,
            cost=cost,
            model_served=self.tracker.model,
            tier_served=tier,
            ended=time.perf_counter(),
            error_type=error_type,
        )

    def _estimated_usage(self, reported: Usage | None) -> Usage:
        """Count what a cut stream generated, keeping any counts the provider sent."""
        output = count_text(self.tracker.output_text, self.call.target.model)
        if reported is not None:
            return Usage(
                input_tokens=reported.input_tokens,
                cache_read_tokens=reported.cache_read_tokens,
                cache_write_tokens=reported.cache_write_tokens,
                cache_write_1h_tokens=reported.cache_write_1h_tokens,
                output_tokens=max(reported.output_tokens, output),
                estimated=True,
            )
        return Usage(
            input_tokens=estimate_input_tokens(self.call),
            output_tokens=output,
            estimated=True,
        )

    def _fallback_record(self) -> RequestRecord:
        cost = price_call(self.gateway.engine, self.call, self.call.target.model, Usage(), None)
        return build_record(
            self.call,
            status=self.status_code,
            usage=Usage(estimated=True),
            cost=replace(cost, cost_usd=None, breakdown={}, unpriced_reason="metering failed"),
            model_served=None,
            tier_served=None,
            ended=time.perf_counter(),
            error_type="metering_failed",
        )


def _is_usage_only_chunk(payload: Any) -> bool:
    return (
        isinstance(payload, Mapping)
        and payload.get("choices") == []
        and payload.get("usage") is not None
    )


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
