"""Metering a streamed response of a wrapped client as the client reads it.

The provider's events reach the client byte for byte, with two exceptions
that match the gateway: the usage-only chunk the wrapper asked for on the
client's behalf is removed, and the terminal event (``[DONE]``,
``message_stop``, ``response.completed``) is held until the stream ends, so
the call's record is submitted before the client sees the stream finish.
A stream the client closes early, or that breaks, still gives one record,
with output counted from the text seen so far and flagged as estimated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.errors import UsageError
from thrifty.gateway.metering import (
    Call,
    build_record,
    estimate_input_tokens,
    normalize_tier,
    price_call,
)
from thrifty.gateway.sse import Event, EventSplitter
from thrifty.integrations.metering import ClientInfo, annotate
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import count_text
from thrifty.usage import Usage
from thrifty.usage.stream import StreamUsageTracker, tracker_for

logger = logging.getLogger(__name__)

_TERMINAL_EVENT_NAMES = frozenset(
    {"message_stop", "response.completed", "response.incomplete", "response.failed"}
)


class StreamMeter:
    """Meter one event stream; ``submit`` receives its record exactly once."""

    def __init__(
        self,
        engine: CostEngine,
        call: Call,
        info: ClientInfo,
        submit: Callable[[RequestRecord], None],
        *,
        strip_usage_chunk: bool,
    ) -> None:
        self.engine = engine
        self.call = call
        self.info = info
        self.submit = submit
        self.strip_usage_chunk = strip_usage_chunk
        self.tracker: StreamUsageTracker = tracker_for(call.endpoint.name)
        self.error: str | None = None
        self._splitter = EventSplitter()
        self._held: list[bytes] = []
        self._recorded = False

    def feed(self, chunk: bytes) -> bytes:
        """Meter a chunk of the stream; return the bytes to pass to the client now."""
        if self.call.first_token_at is None:
            self.call.first_token_at = datetime.now(UTC)
        out = [raw for event in self._splitter.feed(chunk) if (raw := self._accept(event))]
        return b"".join(out)

    def end(self) -> bytes:
        """Record a stream read to its end; return the held terminal bytes to pass on."""
        completed = bool(self._held) or not self._splitter.remainder().strip()
        self.finish(completed=completed)
        return b"".join(self._held) + self._splitter.remainder()

    def finish(self, *, completed: bool, error: str | None = None) -> None:
        """Submit the record once: at the stream's end, at an early close or an error."""
        if self._recorded:
            return
        self._recorded = True
        if error is not None:
            self.error = error
        self.call.upstream_s = time.perf_counter() - self.call.upstream_started
        try:
            record = self._build_record(completed)
        except Exception:
            # A bug in metering must not lose the call: record it unpriced.
            logger.exception("request %s: metering a stream failed", self.call.request_id)
            record = self._fallback_record()
        self.submit(record)

    def _accept(self, event: Event) -> bytes | None:
        if event.data == b"[DONE]" or event.name in _TERMINAL_EVENT_NAMES:
            self._feed_tracker(event)
            self._held.append(event.raw)
            return None
        payload = self._feed_tracker(event)
        if self.strip_usage_chunk and _is_usage_only_chunk(payload):
            return None
        return event.raw

    def _feed_tracker(self, event: Event) -> Any:
        if not event.data or event.data == b"[DONE]":
            return None
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            logger.warning("request %s: a stream event is not JSON", self.call.request_id)
            return None
        if isinstance(payload, Mapping):
            try:
                self.tracker.feed(payload)
            except UsageError as exc:
                self.error = f"invalid usage: {exc}"
        return payload

    def _build_record(self, completed: bool) -> RequestRecord:
        call = self.call
        usage = self.tracker.result()
        if usage is None or not (
            self.tracker.final_usage_seen and completed and self.error is None
        ):
            usage = self._estimated_usage(usage)
        model = self.tracker.model or call.target.model
        tier = normalize_tier(self.tracker.service_tier)
        cost = price_call(self.engine, call, model, usage, tier, speed=self.tracker.speed)
        error_type = None
        if self.error is not None:
            error_type = "upstream_stream_error"
        elif not completed:
            error_type = "client_disconnected"
        record = build_record(
            call,
            status=200,
            usage=usage,
            cost=cost,
            model_served=self.tracker.model,
            tier_served=tier,
            ended=time.perf_counter(),
            error_type=error_type,
        )
        return annotate(record, self.info)

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
            input_tokens=estimate_input_tokens(self.call), output_tokens=output, estimated=True
        )

    def _fallback_record(self) -> RequestRecord:
        cost = price_call(self.engine, self.call, self.call.target.model, Usage(), None)
        record = build_record(
            self.call,
            status=200,
            usage=Usage(estimated=True),
            cost=cost,
            model_served=None,
            tier_served=None,
            ended=time.perf_counter(),
            error_type="metering_failed",
        )
        record.cost_usd = None
        record.cost_breakdown = {}
        record.unpriced = True
        return annotate(record, self.info)


def _is_usage_only_chunk(payload: Any) -> bool:
    return (
        isinstance(payload, Mapping)
        and payload.get("choices") == []
        and payload.get("usage") is not None
    )
