"""Running a routed request: fallbacks on errors, escalation on rejected answers.

The routing step leaves a ``RoutePlan`` on the call. For each candidate
model, in order, the gateway sends the request to that candidate's target
(its own provider, translated when that provider speaks another API), then:

- returns the answer when it is acceptable: always on a rules, learned or
  budget route; on a cascade route when every check passes, or when no
  candidate is left;
- moves to the next candidate when the call fails with a status worth
  another model (408, 429, 5xx, 529), times out or cannot connect. A 429 or
  503 is first retried once on the same model, after its Retry-After, when
  the route's ``retry_after_max_s`` covers that wait;
- moves to the next candidate when a cascade check rejects the answer, and
  keeps that answer for the client in case every later candidate fails.

Streamed requests fall back the same way, since errors arrive before any
event. On a cascade route, every candidate but the last is read whole
(the client waits for it), checked, and sent to the client as the
provider's events when accepted; the last candidate streams live.

Each attempt is one upstream call and one ledger record. The request's last
record has the request id the client sees, earlier ones
``<request id>-attempt<N>``, and ``details["routing"]["request_id"]`` links
them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from thrifty.errors import ConfigError, RequestError, TranslationError, UpstreamError
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.metering import Call
from thrifty.gateway.sse import EventSplitter
from thrifty.gateway.streaming import StreamProxy
from thrifty.gateway.translating import translate_request
from thrifty.gateway.upstream import resolve_target, upstream_headers
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.rates import EXACT
from thrifty.routing.checks import Answer, CheckFailure
from thrifty.routing.execution import AttemptInfo, Outcome, RoutePlan, retry_wait_s
from thrifty.routing.router import should_fall_back
from thrifty.routing.step import ROUTE_ATTEMPT, ROUTE_PLAN
from thrifty.routing.stream_answer import answer_of_events

if TYPE_CHECKING:
    from thrifty.gateway.proxy import Gateway

logger = logging.getLogger(__name__)


class _Retry:
    """The outcome of an attempt that is retried on the same model."""


_RETRY = _Retry()


@dataclass(slots=True)
class _Rejected:
    """A checked answer that failed a check, kept in case every later candidate fails."""

    call: Call
    failure: CheckFailure
    upstream: aiohttp.ClientResponse
    # The whole body, or the stream's captured upstream events for the steps.
    content: bytes | None
    # Set for a stream read whole: its record (built already) and the bytes for the client.
    record: RequestRecord | None = None
    events: bytes = b""


async def serve_route(gateway: Gateway, call: Call, request: Request, raw: bytes) -> Response:
    """Serve a routed request, trying the plan's candidates in order."""
    plan = call.extra[ROUTE_PLAN]
    assert isinstance(plan, RoutePlan)
    return await _RouteRun(gateway, call, request, raw, plan).run()


class _RouteRun:
    """The attempts of one routed request."""

    def __init__(
        self, gateway: Gateway, call: Call, request: Request, raw: bytes, plan: RoutePlan
    ) -> None:
        self.gateway = gateway
        self.call = call
        self.request = request
        self.raw = raw
        self.plan = plan
        self.body: dict[str, Any] = call.extra["body"]
        self.attempts = 0
        self.failures: list[str] = []
        self.prior_cost: Decimal | None = Decimal(0)
        self.rejected: _Rejected | None = None
        self.last_error: tuple[int, dict[str, str]] | None = None

    async def run(self) -> Response:
        candidates = self.plan.candidates
        for index, model in enumerate(candidates):
            response = await self._try(model, last=index == len(candidates) - 1)
            if response is not None:
                return response
        return await self._exhausted()

    async def _try(self, model: str, *, last: bool) -> Response | None:
        """Try one candidate (twice after a short Retry-After); None moves to the next one."""
        may_retry = True
        while True:
            outcome = await self._attempt(model, last=last, may_retry=may_retry)
            if not isinstance(outcome, _Retry):
                return outcome
            may_retry = False

    async def _attempt(
        self, model: str, *, last: bool, may_retry: bool
    ) -> Response | _Retry | None:
        started = self._start(model)
        if started is None:
            return None
        attempt, payload, headers = started
        try:
            upstream = await self.gateway.send_upstream(attempt, payload, headers)
        except UpstreamError as exc:
            self._failed(attempt, self.gateway.upstream_failed_record(attempt, exc), last)
            self.last_error = (504 if exc.timed_out else 502, {})
            return None

        if upstream.status == 200 and _is_event_stream(upstream):
            return await self._stream(attempt, upstream, last)
        content = await self._read(attempt, upstream, last)
        if content is None:
            return None
        if upstream.status == 200:
            return await self._answer(attempt, upstream, content, last)
        return await self._error(attempt, upstream, content, last=last, may_retry=may_retry)

    async def _error(
        self,
        attempt: Call,
        upstream: aiohttp.ClientResponse,
        content: bytes,
        *,
        last: bool,
        may_retry: bool,
    ) -> Response | _Retry | None:
        """Handle an error status: retry the same model, move on, or return it to the client."""
        wait = retry_wait_s(self.plan, upstream.status, upstream.headers) if may_retry else None
        if wait is not None:
            self._retried(attempt, upstream, content, wait)
            await asyncio.sleep(wait)
            return _RETRY
        if not should_fall_back(upstream.status):
            # The request's own fault (a 4xx): another model would fail alike.
            return await self._final_error(attempt, upstream, content)
        record = self.gateway.meter_buffered(attempt, upstream.status, content)
        self._failed(attempt, record, last)
        self.last_error = (upstream.status, _retry_headers(upstream.headers))
        return None

    def _start(self, model: str) -> tuple[Call, bytes, dict[str, str]] | None:
        """Build one attempt at ``model`` and its request, or None when it cannot be sent."""
        self.attempts += 1
        try:
            target = resolve_target(self.gateway.config, self.call.endpoint.kind, model)
            attempt = replace(
                self.call,
                request_id=f"{self.call.request_id}-attempt{self.attempts}",
                target=target,
                started_at=datetime.now(UTC),
                started=time.perf_counter(),
                upstream_s=0.0,
                first_token_at=None,
                translation=None,
                extra=dict(self.call.extra),
            )
            attempt.extra[ROUTE_ATTEMPT] = AttemptInfo(
                route=self.plan.decision.route,
                request_id=self.call.request_id,
                attempt=self.attempts,
                model_requested=model,
            )
            payload, headers = self._upstream_request(attempt)
        except (ConfigError, RequestError, TranslationError, UpstreamError) as exc:
            # No upstream call was made, so there is no record.
            self.attempts -= 1
            logger.warning("request %s: not trying %s: %s", self.call.request_id, model, exc)
            self.failures.append(f"{model}: not tried ({_message(exc)})")
            return None
        return attempt, payload, headers

    def _upstream_request(self, attempt: Call) -> tuple[bytes, dict[str, str]]:
        body = {**self.body, "model": attempt.target.model}
        if attempt.target.provider.kind == attempt.endpoint.kind:
            payload = self.gateway.forwarded_body(attempt, body, self.raw, changed=True)
            return payload, upstream_headers(attempt.target.provider, self.request.headers)
        return translate_request(attempt, body, self.request.headers)

    async def _read(
        self, attempt: Call, upstream: aiohttp.ClientResponse, last: bool
    ) -> bytes | None:
        try:
            return await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            upstream.release()
            error = UpstreamError(
                attempt.target.provider.name, f"reading the response failed: {exc}"
            )
            self._failed(attempt, self.gateway.upstream_failed_record(attempt, error), last)
            self.last_error = (502, {})
            return None
        finally:
            attempt.upstream_s = time.perf_counter() - attempt.upstream_started

    # Answers

    async def _answer(
        self, attempt: Call, upstream: aiohttp.ClientResponse, content: bytes, last: bool
    ) -> Response | None:
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            self._failed(attempt, self.gateway.invalid_json_record(attempt), last)
            self.last_error = (502, {})
            return None
        failure = self._check(parsed if isinstance(parsed, Mapping) else {})
        if failure is None or last:
            self._record_rejected("escalated")
            reason = None if failure is None else _unresolved(failure)
            return await self._serve_buffered(attempt, upstream, reason)
        self._keep_rejected(_Rejected(attempt, failure, upstream, content))
        return None

    def _check(self, response: Mapping[str, Any] | Answer) -> CheckFailure | None:
        if not self.plan.checked:
            return None
        return self.plan.router.check_answer(self.body, response)

    async def _serve_buffered(
        self, attempt: Call, upstream: aiohttp.ClientResponse, reason: str | None
    ) -> Response:
        self._finalize(attempt, "served", reason)
        # The body was read already; finishing reads it again from aiohttp's buffer.
        return await self.gateway.finish_buffered(attempt, upstream)

    async def _stream(
        self, attempt: Call, upstream: aiohttp.ClientResponse, last: bool
    ) -> Response | None:
        if last or not self.plan.checked:
            self._record_rejected("escalated")
            self._finalize(attempt, "served", None)
            return self.gateway.stream_response(attempt, upstream)

        events, record, content = await _read_stream(self.gateway, attempt, upstream)
        if record.error_type is not None:
            self._failed(attempt, record, last)
            self.last_error = (502, {})
            return None
        failure = self._check_events(events)
        if failure is None:
            self._record_rejected("escalated")
            return self._serve_stream(
                attempt, upstream, record, events=events, content=content, reason=None
            )
        self._keep_rejected(_Rejected(attempt, failure, upstream, content, record, events))
        return None

    def _check_events(self, events: bytes) -> CheckFailure | None:
        payloads: list[Mapping[str, Any]] = []
        for event in EventSplitter().feed(events):
            if event.data and event.data != b"[DONE]":
                try:
                    payload = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(payload, Mapping):
                    payloads.append(payload)
        return self._check(answer_of_events(payloads))

    def _serve_stream(
        self,
        attempt: Call,
        upstream: aiohttp.ClientResponse,
        record: RequestRecord,
        *,
        events: bytes,
        content: bytes | None,
        reason: str | None,
    ) -> Response:
        self._finalize(attempt, "served", reason)
        record.request_id = attempt.request_id
        self.gateway.submit(attempt, record, content)
        return self.gateway.buffered_response(
            attempt, upstream, events, record, media_type="text/event-stream"
        )

    def _keep_rejected(self, rejected: _Rejected) -> None:
        self._record_rejected("escalated")
        logger.info(
            "request %s: %s rejected by check %s: %s",
            self.call.request_id,
            rejected.call.target.model,
            rejected.failure.check,
            rejected.failure.reason,
        )
        self.rejected = rejected

    def _record_rejected(self, outcome: Outcome) -> None:
        """Record the rejected answer as an earlier attempt, since a later one is served."""
        rejected, self.rejected = self.rejected, None
        if rejected is None:
            return
        record = rejected.record
        if record is None:
            record = self.gateway.meter_buffered(rejected.call, 200, rejected.content or b"")
        self._note(
            rejected.call, outcome, f"check {rejected.failure.check}: {rejected.failure.reason}"
        )
        self._submit(rejected.call, record)

    # Failures and the end

    def _failed(self, attempt: Call, record: RequestRecord, last: bool) -> None:
        reason = _failure_reason(record)
        if last and self.rejected is None:
            self._finalize(attempt, "failed", reason)
            record.request_id = attempt.request_id
        else:
            self._note(attempt, "failed" if last else "fell_back", reason)
        logger.warning(
            "request %s: %s failed: %s", self.call.request_id, attempt.target.model, reason
        )
        self.failures.append(f"{attempt.target.model}: {reason}")
        self._submit(attempt, record)

    def _retried(
        self, attempt: Call, upstream: aiohttp.ClientResponse, content: bytes, wait: float
    ) -> None:
        record = self.gateway.meter_buffered(attempt, upstream.status, content)
        reason = f"{_failure_reason(record)}; retried after {wait:g} s"
        self._note(attempt, "retried", reason)
        logger.info("request %s: %s", self.call.request_id, reason)
        self._submit(attempt, record)

    async def _final_error(
        self, attempt: Call, upstream: aiohttp.ClientResponse, content: bytes
    ) -> Response:
        """Return a 4xx to the client, or the rejected answer if there is one."""
        if self.rejected is not None:
            record = self.gateway.meter_buffered(attempt, upstream.status, content)
            self._note(attempt, "failed", _failure_reason(record))
            self._submit(attempt, record)
            return await self._serve_rejected()
        self._finalize(attempt, "failed", f"HTTP {upstream.status}, which no other model fixes")
        return await self.gateway.finish_buffered(attempt, upstream)

    async def _exhausted(self) -> Response:
        """Return the rejected answer when no model is left, else an error naming each failure."""
        if self.rejected is not None:
            return await self._serve_rejected()
        status, headers = self.last_error or (502, {})
        route = self.plan.decision.route
        message = (
            f"route '{route}' failed on every model it tried: {'; '.join(self.failures)}; "
            "retry later, or add fallbacks to the route in thrifty.yaml"
        )
        return error_response(
            self.call.endpoint.kind,
            status,
            message,
            headers={"x-thrifty-request-id": self.call.request_id, **headers},
        )

    async def _serve_rejected(self) -> Response:
        rejected, self.rejected = self.rejected, None
        assert rejected is not None
        reason = _unresolved(rejected.failure) + "; every later model failed"
        if rejected.record is not None:
            return self._serve_stream(
                rejected.call,
                rejected.upstream,
                rejected.record,
                events=rejected.events,
                content=rejected.content,
                reason=reason,
            )
        return await self._serve_buffered(rejected.call, rejected.upstream, reason)

    def _note(self, attempt: Call, outcome: Outcome, reason: str | None) -> None:
        info = attempt.extra[ROUTE_ATTEMPT]
        info.outcome = outcome
        info.outcome_reason = reason

    def _finalize(self, attempt: Call, outcome: Outcome, reason: str | None) -> None:
        """Give the attempt the request's id: its record is the one the client's id names."""
        attempt.request_id = self.call.request_id
        info = attempt.extra[ROUTE_ATTEMPT]
        info.outcome = outcome
        info.outcome_reason = reason
        info.prior_cost_usd = self.prior_cost
        info.attempts = self.attempts

    def _submit(self, attempt: Call, record: RequestRecord) -> None:
        if record.request_id != self.call.request_id:
            record.key_id = record.key_id or attempt.extra.get("key_id")
            if self.prior_cost is not None and record.cost_usd is not None:
                self.prior_cost = EXACT.add(self.prior_cost, record.cost_usd)
            else:
                self.prior_cost = None
        self.gateway.submit(attempt, record, None)


class _HeldRecord:
    """Takes the record of a stream read whole, so it is submitted once its outcome is known."""

    def __init__(self, engine: CostEngine) -> None:
        self.engine = engine
        self.record: RequestRecord | None = None
        self.content: bytes | None = None

    def submit(self, call: Call, record: RequestRecord, content: bytes | None = None) -> None:
        self.record = record
        self.content = content


async def _read_stream(
    gateway: Gateway, attempt: Call, upstream: aiohttp.ClientResponse
) -> tuple[bytes, RequestRecord, bytes | None]:
    """Read a whole stream as the client would get it, metered, without submitting its record.

    Returns the client's bytes, the record, and the upstream events captured
    for the steps (``CAPTURE_STREAM``), if one asked for them.
    """
    holder = _HeldRecord(gateway.engine)
    proxy = StreamProxy(holder, attempt, upstream, {})
    chunks: list[bytes] = []
    never = asyncio.Event()

    async def receive() -> Message:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await proxy({"type": "http"}, receive, send)
    assert holder.record is not None
    return b"".join(chunks), holder.record, holder.content


def _is_event_stream(upstream: aiohttp.ClientResponse) -> bool:
    return upstream.headers.get("content-type", "").startswith("text/event-stream")


def _retry_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in ("retry-after", "retry-after-ms") if name in headers}


def _failure_reason(record: RequestRecord) -> str:
    return f"HTTP {record.http_status} {record.error_type or ''}".strip()


def _unresolved(failure: CheckFailure) -> str:
    return f"no model left after check {failure.check} failed: {failure.reason}"


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)
