"""The request pipeline for one metered call: read, attribute, forward, meter, record.

Every call that reaches a provider yields exactly one ledger record. The
record is handed to the writer (which appends it to the local spool) before
the last byte of the response goes to the client, so a client that received
a whole response can rely on its record surviving a crash.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from thrifty.config import GatewayConfig
from thrifty.errors import RequestError, UpstreamError, UsageError
from thrifty.gateway.attribution import attribute
from thrifty.gateway.body_limits import check_json_depth
from thrifty.gateway.endpoints import CHAT_COMPLETIONS, Endpoint
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.fingerprint import request_facts
from thrifty.gateway.flex import FlexPlan, send_flex
from thrifty.gateway.metering import (
    Call,
    build_record,
    error_type_of,
    estimate_input_tokens,
    normalize_tier,
    price_call,
)
from thrifty.gateway.pipeline import Step, run_finish, run_prepare
from thrifty.gateway.streaming import StreamProxy
from thrifty.gateway.translating import metered_endpoint, translate_request, translated_response
from thrifty.gateway.upstream import (
    DROPPED_RESPONSE_HEADERS,
    UpstreamClient,
    resolve_target,
    upstream_headers,
)
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.writer import RecordWriter
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage, served_from_response, usage_from_response

logger = logging.getLogger(__name__)


class Gateway:
    """The metered proxy shared by every endpoint."""

    def __init__(
        self,
        config: GatewayConfig,
        engine: CostEngine,
        writer: RecordWriter,
        client: UpstreamClient,
        steps: Sequence[Step] = (),
    ) -> None:
        self.config = config
        self.engine = engine
        self.writer = writer
        self.client = client
        self.steps = tuple(steps)

    def submit(self, call: Call, record: RequestRecord, content: bytes | None = None) -> None:
        """Let every step see a finished record, then hand it to the writer."""
        run_finish(self.steps, call, record, content)
        self.writer.submit(record)

    async def handle(self, request: Request, endpoint: Endpoint) -> Response:
        """Serve one request to a metered endpoint."""
        started = time.perf_counter()
        try:
            original, raw = await self._read_body(request, endpoint)
            call = self._start_call(request, endpoint, original, started)
            body, reply = await run_prepare(self.steps, call, request, original)
            if reply is not None:
                if reply.record is not None:
                    self.submit(call, reply.record)
                return reply.response
            call.extra["body"] = body
            call.extra["request_facts"] = request_facts(body)
            if "routing" in call.extra:  # the routing step's decision: try its candidates
                from thrifty.gateway.attempts import serve_route

                return await serve_route(self, call, request, raw)
            if call.target.provider.kind == endpoint.kind:
                payload = self.forwarded_body(call, body, raw, changed=body is not original)
                headers = upstream_headers(call.target.provider, request.headers)
            else:
                payload, headers = translate_request(call, body, request.headers)
        except (RequestError, UpstreamError) as exc:
            return _early_error(endpoint, exc)

        try:
            upstream = await self.send_upstream(call, payload, headers)
        except UpstreamError as exc:
            return self._upstream_failed(call, exc)

        if call.streamed and upstream.status == 200 and _is_event_stream(upstream):
            return self.stream_response(call, upstream)
        return await self.finish_buffered(call, upstream)

    def stream_response(self, call: Call, upstream: aiohttp.ClientResponse) -> StreamProxy:
        """Return the response that pumps an upstream event stream to the client."""
        headers = {**response_headers(upstream), **call.extra.get("response_headers", {})}
        return StreamProxy(self, call, upstream, headers)

    async def send_upstream(
        self, call: Call, payload: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """Send the request to its provider and return the response (headers read).

        This is where tier policies act on the upstream call (retrying a
        rejected Flex request, falling back to the default tier).
        """
        call.upstream_started = time.perf_counter()
        flex = call.extra.get("flex")
        if isinstance(flex, FlexPlan):
            return await send_flex(self, call, payload, headers, flex)
        path = call.endpoint.path if call.translation is None else call.translation.path
        return await self.client.send("POST", call.target.provider, path, payload, headers)

    async def _read_body(
        self, request: Request, endpoint: Endpoint
    ) -> tuple[dict[str, Any], bytes]:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, _too_large(int(declared), limit))
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, _too_large(size, limit))
                chunks.append(chunk)
        except ClientDisconnect as exc:
            raise RequestError(
                400, "the client disconnected before sending the whole body"
            ) from exc
        raw = b"".join(chunks)
        return _parse_json_object(raw), raw

    def _start_call(
        self, request: Request, endpoint: Endpoint, body: dict[str, Any], started: float
    ) -> Call:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(
                400,
                "the request has no 'model'; name the model to call, e.g. \"gpt-4o-mini\"",
                param="model",
            )
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RequestError(400, f"'stream' is {stream!r}; use true or false", param="stream")
        tier = body.get("service_tier")
        return Call(
            # 128 random bits as 32 hex digits, the length of a uuid4 hex, made more cheaply.
            request_id=f"req_{os.urandom(16).hex()}",
            endpoint=endpoint,
            target=resolve_target(self.config, endpoint.kind, model),
            attribution=attribute(request.headers, body),
            model_requested=model,
            streamed=stream and endpoint.streams,
            tier_requested=tier if isinstance(tier, str) else None,
            started_at=datetime.now(UTC),
            started=started,
        )

    def forwarded_body(
        self, call: Call, body: dict[str, Any], raw: bytes, *, changed: bool
    ) -> bytes:
        """Return the body to send upstream: the client's bytes unless a change is needed.

        Besides the changes pipeline steps made, two are made here: a
        ``provider/`` prefix is removed from the model, and a streamed chat
        completion requests the final usage chunk, which the gateway then removes
        before it reaches the client.
        """
        if call.target.renamed:
            body = {**body, "model": call.target.model}
            changed = True
        if call.streamed and call.endpoint is CHAT_COMPLETIONS and not _asks_for_usage(body):
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, Mapping) else {}
            body = {**body, "stream_options": {**options, "include_usage": True}}
            call.extra["strip_usage_chunk"] = True
            changed = True
        return orjson.dumps(body) if changed else raw

    async def finish_buffered(self, call: Call, upstream: aiohttp.ClientResponse) -> Response:
        """Read, meter, record and return a whole response (read again from aiohttp's buffer)."""
        try:
            content = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            upstream.release()
            return self._upstream_failed(
                call,
                UpstreamError(call.target.provider.name, f"reading the response failed: {exc}"),
            )
        finally:
            call.upstream_s = time.perf_counter() - call.upstream_started
        headers = response_headers(upstream)
        if upstream.status == 200 and _loads_or_none(content) is None:
            return self._invalid_json(call)
        record = self.meter_buffered(call, upstream.status, content)
        status = upstream.status
        if call.translation is not None:
            status, content = translated_response(call, status, content)
            if status != upstream.status:
                record.error_type = "translation_failed"
        self.submit(call, record, content if status == 200 else None)
        headers.update(thrifty_headers(record))
        headers.update(call.extra.get("response_headers", {}))
        headers["x-thrifty-overhead-ms"] = _overhead_ms(call)
        return Response(
            content,
            status_code=status,
            headers=headers,
            media_type=upstream.headers.get("content-type", "application/json"),
        )

    def meter_buffered(self, call: Call, status: int, content: bytes) -> RequestRecord:
        """Build the record of a whole (not streamed) response."""
        body = _loads_or_none(content)
        mapping = body if isinstance(body, dict) else {}
        usage = Usage()
        error_type: str | None = None
        endpoint = call.endpoint.name if call.translation is None else metered_endpoint(call)
        if status == 200:
            try:
                usage = usage_from_response(endpoint, mapping)
            except UsageError as exc:
                logger.warning("request %s: provider usage is invalid: %s", call.request_id, exc)
                error_type = "invalid_usage"
        else:
            error_type = error_type_of(body) or f"http_{status}"
        served = served_from_response(endpoint, mapping)
        model_served = served.model
        tier = normalize_tier(served.service_tier)
        cost = price_call(
            self.engine, call, model_served or call.target.model, usage, tier, speed=served.speed
        )
        if error_type == "invalid_usage":
            cost = _unpriced(cost, "the provider reported impossible usage")
        return build_record(
            call,
            status=status,
            usage=usage,
            cost=cost,
            model_served=model_served,
            tier_served=tier,
            ended=time.perf_counter(),
            error_type=error_type,
        )

    def buffered_response(
        self,
        call: Call,
        upstream: aiohttp.ClientResponse,
        content: bytes,
        record: RequestRecord,
        *,
        media_type: str,
    ) -> Response:
        """Return ``content`` with the provider's headers and those of its submitted record."""
        headers = response_headers(upstream)
        headers.update(thrifty_headers(record))
        headers.update(call.extra.get("response_headers", {}))
        headers["x-thrifty-overhead-ms"] = _overhead_ms(call)
        return Response(
            content, status_code=upstream.status, headers=headers, media_type=media_type
        )

    def _invalid_json(self, call: Call) -> Response:
        """Answer 502 for a success response whose body is not JSON, and record the call.

        The provider may have billed it, so the record keeps the input counted
        offline, flagged as estimated, and stays unpriced rather than $0.
        """
        self.submit(call, self.invalid_json_record(call))
        logger.warning("request %s: upstream returned a body that is not JSON", call.request_id)
        return error_response(
            call.endpoint.kind,
            502,
            f"upstream '{call.target.provider.name}' returned a response that is not valid JSON",
            error_type="server_error",
            headers={"x-thrifty-request-id": call.request_id},
        )

    def invalid_json_record(self, call: Call) -> RequestRecord:
        """Build the record of a success response whose body is not JSON."""
        usage = Usage(input_tokens=estimate_input_tokens(call), estimated=True)
        cost = price_call(self.engine, call, call.target.model, usage, None)
        return build_record(
            call,
            status=502,
            usage=usage,
            cost=_unpriced(cost, "the provider's response body is not valid JSON"),
            model_served=None,
            tier_served=None,
            ended=time.perf_counter(),
            error_type="upstream_invalid_json",
        )

    def upstream_failed_record(self, call: Call, exc: UpstreamError) -> RequestRecord:
        """Build the record of a call that got no response: it timed out or could not connect."""
        call.upstream_s = time.perf_counter() - call.upstream_started
        cost = price_call(self.engine, call, call.target.model, Usage(), None)
        return build_record(
            call,
            status=504 if exc.timed_out else 502,
            usage=Usage(),
            cost=cost,
            model_served=None,
            tier_served=None,
            ended=time.perf_counter(),
            error_type="upstream_timeout" if exc.timed_out else "upstream_unreachable",
        )

    def _upstream_failed(self, call: Call, exc: UpstreamError) -> Response:
        status = 504 if exc.timed_out else 502
        self.submit(call, self.upstream_failed_record(call, exc))
        logger.warning("request %s: %s", call.request_id, exc)
        return error_response(
            call.endpoint.kind,
            status,
            str(exc),
            error_type="server_error",
            headers={"x-thrifty-request-id": call.request_id},
        )


def _early_error(endpoint: Endpoint, exc: RequestError | UpstreamError) -> Response:
    """Return the error response of a request rejected before any upstream call."""
    if isinstance(exc, RequestError):
        return error_response(endpoint.kind, exc.status, exc.message, param=exc.param)
    # An UpstreamError here is a provider key that is not set.
    return error_response(endpoint.kind, 500, str(exc), error_type="server_error")


def response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    """Copy the provider's response headers that describe the response itself."""
    return {
        name.lower(): value
        for name, value in upstream.headers.items()
        if name.lower() not in DROPPED_RESPONSE_HEADERS and name.lower() != "content-type"
    }


def thrifty_headers(record: RequestRecord) -> dict[str, str]:
    """The ``X-Thrifty-*`` headers that report what happened to a request."""
    headers = {"x-thrifty-request-id": record.request_id}
    if record.cost_usd is not None:
        headers["x-thrifty-cost-usd"] = str(record.cost_usd)
    else:
        headers["x-thrifty-unpriced"] = "true"
    if record.model_served:
        headers["x-thrifty-model"] = record.model_served
    if record.service_tier_served:
        headers["x-thrifty-service-tier"] = record.service_tier_served
    if record.cache_status:
        headers["x-thrifty-cache"] = record.cache_status
    return headers


def _overhead_ms(call: Call) -> str:
    elapsed = time.perf_counter() - call.started
    return f"{max(elapsed - call.upstream_s, 0.0) * 1000:.3f}"


def _unpriced(cost: Cost, reason: str) -> Cost:
    return replace(cost, cost_usd=None, breakdown={}, unpriced_reason=reason)


def _asks_for_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _is_event_stream(upstream: aiohttp.ClientResponse) -> bool:
    return upstream.headers.get("content-type", "").startswith("text/event-stream")


def _parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise RequestError(400, "the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError(
            400, f"the request body is a JSON {type(body).__name__}; send a JSON object"
        )
    check_json_depth(body)
    return body


def _loads_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _too_large(size: int, limit: int) -> str:
    return (
        f"the request body is {size} bytes, above the gateway's limit of {limit} bytes; "
        "send less, or raise gateway.max_body_bytes in thrifty.yaml"
    )
