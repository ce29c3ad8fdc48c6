"""OpenTelemetry spans of gateway requests: captured in memory, and sent by OTLP over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import make_record
from tests.servers import free_port, serve_in_thread
from thrifty.config import ProviderConfig
from thrifty.integrations.config import TelemetryConfig, TracesConfig
from thrifty.integrations.telemetry import TracingStep

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
MESSAGES = [{"role": "user", "content": "Describe a hermit crab."}]


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, exporter: InMemorySpanExporter
) -> Iterator[RunningGateway]:
    telemetry = TelemetryConfig(traces=TracesConfig(exporter=exporter))
    # A provider nothing listens on, for a request that fails upstream.
    dead = ProviderConfig("dead", "openai", f"http://127.0.0.1:{free_port()}")
    with running_gateway(
        tmp_path_factory.mktemp("otel"),
        sections={"telemetry": telemetry},
        extra_providers={"dead": dead},
        connect_retries=0,
    ) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway, exporter: InMemorySpanExporter) -> openai.OpenAI:
    exporter.clear()
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


def test_chat_span_has_genai_attributes(
    gateway: RunningGateway, client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=11,
        extra_headers={
            "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
            "X-Thrifty-Feature": "shells",
            "X-Thrifty-Session": "conv-7",
        },
    )
    reply = raw.parse()
    record = gateway.record(raw.headers["x-thrifty-request-id"])
    span = only_span(exporter)
    attributes = dict(span.attributes or {})

    assert reply.usage is not None
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == reply.model
    assert attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == 11
    assert attributes["gen_ai.request.stream"] is False
    assert attributes["gen_ai.conversation.id"] == "conv-7"
    assert attributes["http.response.status_code"] == 200
    assert attributes["thrifty.request_id"] == record.request_id
    assert record.cost_usd is not None
    assert attributes["thrifty.cost_usd"] == format(record.cost_usd, "f")
    assert attributes["thrifty.feature"] == "shells"
    assert "error.type" not in attributes
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID


def test_stream_span_covers_request(
    gateway: RunningGateway, client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, stream=True
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        for _ in response.iter_lines():
            pass
    record = gateway.record(request_id)
    span = only_span(exporter)
    attributes = dict(span.attributes or {})

    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert span.parent is None
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time >= span.start_time
    assert record.ended_at is not None
    assert span.end_time == int(record.ended_at.timestamp() * 1_000_000) * 1000


def test_failed_upstream_span_is_error(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="dead/gpt-4o-mini", messages=MESSAGES)
    span = only_span(exporter)
    attributes = dict(span.attributes or {})

    assert span.status.status_code is StatusCode.ERROR
    assert attributes["error.type"] == "upstream_unreachable"
    assert attributes["http.response.status_code"] == 502
    assert attributes["gen_ai.request.model"] == "dead/gpt-4o-mini"


def test_unpriced_span_has_no_cost() -> None:
    exporter = InMemorySpanExporter()
    step = TracingStep(TracesConfig(exporter=exporter))
    step.emit(make_record("u", cost_usd=None, unpriced=True, cost_breakdown={}))
    attributes = dict(only_span(exporter).attributes or {})

    assert attributes["thrifty.unpriced"] is True
    assert "thrifty.cost_usd" not in attributes


def test_spans_exported_by_otlp_http(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def collect(request: Request) -> Response:
        received.append(await request.body())
        return Response(b"", media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])
    with serve_in_thread(collector) as url:
        step = TracingStep(TracesConfig(endpoint=f"{url}/v1/traces", service_name="edge"))
        step.emit(make_record("otlp-1", endpoint="chat.completions", feature="tides"))
        step.shutdown()

    [body] = received
    export = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = export.resource_spans
    resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
    [scope_spans] = resource_spans.scope_spans
    [span] = scope_spans.spans
    attributes = {item.key: item.value for item in span.attributes}
    assert resource["service.name"] == "edge"
    assert span.name == "chat gpt-4o-mini"
    assert attributes["thrifty.request_id"].string_value == "otlp-1"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 1200
    assert attributes["thrifty.cost_usd"].string_value == "0.00036"
    assert attributes["thrifty.feature"].string_value == "tides"
