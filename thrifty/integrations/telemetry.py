"""OpenTelemetry spans of gateway requests, with the GenAI semantic conventions.

Each ledger record becomes one CLIENT span named ``{operation} {model}``
(``chat gpt-4o-mini``), from the request's start to its end, a child of the
client's trace when the request carries a W3C ``traceparent`` header. Its
attributes follow the OpenTelemetry GenAI conventions (``gen_ai.*``, the
names as of semantic-conventions 1.37), plus Thrifty's own under
``thrifty.*``: the request id, the attribution and ``thrifty.cost_usd``, the
exact cost as a decimal string (absent when the request is unpriced).

The step owns its ``TracerProvider`` rather than setting the global one, so
the gateway's spans never mix with an embedding application's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from starlette.requests import Request

from thrifty.gateway.metering import Call
from thrifty.integrations.config import TracesConfig
from thrifty.ledger.record import RequestRecord

logger = logging.getLogger(__name__)

TRACER_NAME = "thrifty.gateway"

# gen_ai.operation.name of each endpoint; the Responses and Messages APIs are chats.
_OPERATIONS = {
    "chat.completions": "chat",
    "responses": "chat",
    "messages": "chat",
    "embeddings": "embeddings",
}

_CONTEXT_KEY = "telemetry_context"


class TracingStep:
    """The pipeline step that ends each request with one span."""

    name = "tracing"

    def __init__(self, config: TracesConfig) -> None:
        self.provider = tracer_provider(config)
        self._tracer = self.provider.get_tracer(TRACER_NAME)
        self._propagator = TraceContextTextMapPropagator()

    async def prepare(self, call: Call, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        if "traceparent" in request.headers:
            call.extra[_CONTEXT_KEY] = self._propagator.extract(dict(request.headers))
        return body

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        try:
            self.emit(record, call.extra.get(_CONTEXT_KEY))
        except Exception:
            # Tracing must never fail a request; the record is still written.
            logger.exception("request %s: recording its span failed", record.request_id)

    def emit(self, record: RequestRecord, parent: Context | None = None) -> None:
        """Start and end the span of one record."""
        span = self._tracer.start_span(
            span_name(record),
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=span_attributes(record),
            start_time=_nanoseconds(record.started_at),
        )
        if record.error_type is not None or record.http_status >= 400:
            span.set_status(Status(StatusCode.ERROR, record.error_type))
        span.end(end_time=_nanoseconds(record.ended_at or datetime.now(UTC)))

    def shutdown(self) -> None:
        """Export the spans still queued and stop the exporter."""
        self.provider.shutdown()


def tracer_provider(config: TracesConfig) -> TracerProvider:
    """Build a provider that sends spans to ``config.exporter`` or to OTLP over HTTP."""
    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
    if config.exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(config.exporter))
        return provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=config.endpoint, headers=config.headers or None, timeout=config.timeout_s
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def span_name(record: RequestRecord) -> str:
    operation = _OPERATIONS.get(record.endpoint, record.endpoint)
    return f"{operation} {record.model_requested}"


def span_attributes(record: RequestRecord) -> dict[str, AttributeValue]:
    """Return a record's span attributes; unknown values are left out, not set empty."""
    values: dict[str, AttributeValue | None] = {
        "gen_ai.operation.name": _OPERATIONS.get(record.endpoint, record.endpoint),
        "gen_ai.provider.name": record.provider,
        "gen_ai.request.model": record.model_requested,
        "gen_ai.response.model": record.model_served,
        "gen_ai.request.stream": record.streamed,
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": record.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": record.reasoning_tokens,
        "gen_ai.conversation.id": record.session,
        "http.response.status_code": record.http_status or None,
        "error.type": record.error_type,
        "thrifty.request_id": record.request_id,
        "thrifty.endpoint": record.endpoint,
        "thrifty.cost_usd": None if record.cost_usd is None else format(record.cost_usd, "f"),
        "thrifty.unpriced": record.unpriced,
        "thrifty.usage_estimated": record.usage_estimated,
        "thrifty.service_tier": record.service_tier_served,
        "thrifty.cache_status": record.cache_status,
        "thrifty.team": record.team,
        "thrifty.project": record.project,
        "thrifty.user": record.user,
        "thrifty.feature": record.feature,
    }
    return {name: value for name, value in values.items() if value is not None}


def _nanoseconds(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
