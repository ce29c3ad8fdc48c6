"""Trace replay against an OpenAI-compatible server on a loopback port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import free_port, serve_in_thread
from tests.services import require_shared_data
from thrifty.errors import TraceError
from thrifty.tokens import count_chat_messages, get_encoding
from thrifty.traces import (
    BLOCK_TOKENS,
    PromptBuilder,
    RequestResult,
    TraceRow,
    api_base_url,
    read_trace,
    replay,
)
from thrifty.traces.replay import parse_cost, percentile

INPUT_PRICE = Decimal("0.00000015")
OUTPUT_PRICE = Decimal("0.0000006")
OVERHEAD = 7


@dataclass
class FakeGateway:
    """An OpenAI-compatible chat endpoint whose usage is counted from the request.

    ``cached_tokens`` follows block-hash prefix caching: a prompt's content is
    hashed 512 tokens at a time, and the leading blocks whose running hash an
    earlier request produced count as cache reads.
    """

    send_cost: bool = True
    fail_max_tokens: set[int] = field(default_factory=set)
    delay_s: float = 0.0
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    seen_blocks: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> JSONResponse:
        self.arrivals.append(time.monotonic())
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self._respond(body)
        finally:
            self.in_flight -= 1

    def _respond(self, body: dict[str, Any]) -> JSONResponse:
        if body["max_tokens"] in self.fail_max_tokens:
            error = {"error": {"message": "injected failure", "type": "server_error"}}
            return JSONResponse(error, status_code=500)
        input_tokens = count_chat_messages(body["messages"], body["model"])
        output_tokens = body["max_tokens"]
        cached = self._cached_tokens(body["messages"][0]["content"])
        payload = {
            "id": f"chatcmpl-{len(self.bodies)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "filler"},
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
        headers = {}
        if self.send_cost:
            cost = input_tokens * INPUT_PRICE + output_tokens * OUTPUT_PRICE
            headers["X-Thrifty-Cost-USD"] = str(cost)
        return JSONResponse(payload, headers=headers)

    def _cached_tokens(self, content: str) -> int:
        tokens = get_encoding("o200k_base").encode(content)
        running = hashlib.sha256()
        cached = 0
        hit = True
        for start in range(0, len(tokens) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
            running.update(str(tokens[start : start + BLOCK_TOKENS]).encode())
            digest = running.hexdigest()
            if hit and digest in self.seen_blocks:
                cached += BLOCK_TOKENS
            else:
                hit = False
            self.seen_blocks.add(digest)
        return cached


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake


def make_rows(sizes: list[tuple[int, int]]) -> list[TraceRow]:
    return [
        TraceRow(offset_s=0.0, input_tokens=inp, output_tokens=out, line=line)
        for line, (inp, out) in enumerate(sizes, start=1)
    ]


SIZES = [(1_200, 30), (3, 0), (7, 1), (8, 2), (513, 77), (4_000, 5), (64, 300), (2_049, 12)]


async def test_totals_equal_trace_sums(gateway: FakeGateway) -> None:
    rows = make_rows(SIZES)

    summary = await replay(rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=3)

    expected_input = sum(max(inp, OVERHEAD) for inp, _ in SIZES)
    expected_output = sum(max(out, 1) for _, out in SIZES)
    assert summary.requests == len(SIZES)
    assert summary.errors == 0
    assert summary.input_tokens == expected_input
    assert summary.output_tokens == expected_output
    assert summary.cache_read_tokens == 0
    assert summary.cost_usd == expected_input * INPUT_PRICE + expected_output * OUTPUT_PRICE
    assert summary.unpriced == 0
    assert summary.error_messages == []
    assert summary.latency_p50_ms is not None
    assert summary.latency_p99_ms is not None
    assert summary.latency_p50_ms <= summary.latency_p99_ms
    assert summary.wall_s > 0


async def test_request_shape(gateway: FakeGateway) -> None:
    rows = make_rows([(100, 0), (200, 40)])

    await replay(rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=1)

    assert [body["max_tokens"] for body in gateway.bodies] == [1, 40]
    assert [body["model"] for body in gateway.bodies] == ["gpt-4o-mini", "gpt-4o-mini"]
    for body in gateway.bodies:
        assert [message["role"] for message in body["messages"]] == ["user"]
    assert gateway.headers[0]["authorization"] == "Bearer sandbox"


async def test_errors_counted_not_raised(gateway: FakeGateway) -> None:
    gateway.fail_max_tokens = {13}
    sizes = [(100, 13)] * 7 + [(100, 20), (300, 21)]
    rows = make_rows(sizes)

    summary = await replay(rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=2)

    assert summary.requests == 9
    assert summary.errors == 7
    assert summary.input_tokens == 400
    assert summary.output_tokens == 41
    assert len(summary.error_messages) == 5
    assert "InternalServerError" in summary.error_messages[0]
    assert "injected failure" in summary.error_messages[0]
    assert summary.error_messages[0].startswith("line ")
    # No retries: each row reaches the server exactly once.
    assert len(gateway.bodies) == 9


async def test_unreachable_gateway_counts_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    summary = await replay(make_rows([(50, 5), (60, 6)]), base_url=url, model="gpt-4o-mini")

    assert summary.requests == 2
    assert summary.errors == 2
    assert summary.input_tokens == 0
    assert summary.cost_usd is None
    assert summary.latency_p50_ms is None
    assert "APIConnectionError" in summary.error_messages[0]


async def test_concurrency_bounds_in_flight(gateway: FakeGateway) -> None:
    gateway.delay_s = 0.02
    rows = make_rows([(50, 5)] * 12)

    summary = await replay(rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=3)

    assert summary.requests == 12
    assert gateway.max_in_flight <= 3
    assert gateway.max_in_flight == 3


async def test_speed_scales_schedule(gateway: FakeGateway) -> None:
    offsets = [0.0, 0.2, 0.4]
    rows = [
        TraceRow(offset_s=offset, input_tokens=50, output_tokens=5, line=line)
        for line, offset in enumerate(offsets, start=1)
    ]
    started = time.monotonic()

    await replay(rows, base_url=gateway.url, model="gpt-4o-mini", speed=4.0)

    # At speed 4 a row is sent no earlier than offset / 4 after the start.
    # The 1 ms margin allows for the event loop's clock resolution.
    arrivals = [arrival - started for arrival in gateway.arrivals]
    assert len(arrivals) == 3
    assert arrivals[1] >= 0.05 - 0.001
    assert arrivals[2] >= 0.1 - 0.001


async def test_limit_first_rows(gateway: FakeGateway) -> None:
    rows = make_rows([(100, 1), (200, 2), (300, 3), (400, 4)])

    summary = await replay(rows, base_url=gateway.url, model="gpt-4o-mini", limit=2)

    assert summary.requests == 2
    assert summary.input_tokens == 300
    assert summary.output_tokens == 3


async def test_limit_zero_sends_nothing(gateway: FakeGateway) -> None:
    summary = await replay(make_rows([(100, 1)]), base_url=gateway.url, model="m", limit=0)

    assert summary.requests == 0
    assert gateway.bodies == []


async def test_headers_and_headers_for(gateway: FakeGateway) -> None:
    rows = make_rows([(100, 1), (200, 2)])

    def headers_for(row: TraceRow) -> dict[str, str]:
        return {"X-Thrifty-User": f"user-{row.line}", "X-Thrifty-Session": "s1"}

    await replay(
        rows,
        base_url=gateway.url,
        model="gpt-4o-mini",
        concurrency=1,
        headers={"X-Thrifty-Feature": "replay"},
        headers_for=headers_for,
    )

    assert [h["x-thrifty-feature"] for h in gateway.headers] == ["replay", "replay"]
    assert [h["x-thrifty-user"] for h in gateway.headers] == ["user-1", "user-2"]
    assert [h["x-thrifty-session"] for h in gateway.headers] == ["s1", "s1"]


async def test_model_for_names_row_model(gateway: FakeGateway) -> None:
    rows = [
        TraceRow(offset_s=0.0, input_tokens=300, output_tokens=3, model="gpt-4", line=1),
        TraceRow(offset_s=0.0, input_tokens=400, output_tokens=4, line=2),
        TraceRow(offset_s=0.0, input_tokens=500, output_tokens=5, model="gpt-4.1", line=3),
    ]

    summary = await replay(
        rows,
        base_url=gateway.url,
        model="gpt-4o-mini",
        concurrency=1,
        model_for=lambda row: row.model,
    )

    assert [body["model"] for body in gateway.bodies] == ["gpt-4", "gpt-4o-mini", "gpt-4.1"]
    assert summary.input_tokens == 1200
    assert summary.output_tokens == 12


async def test_missing_cost_header_is_unpriced(gateway: FakeGateway) -> None:
    gateway.send_cost = False

    summary = await replay(make_rows([(100, 1), (200, 2)]), base_url=gateway.url, model="m")

    assert summary.cost_usd is None
    assert summary.unpriced == 2
    assert summary.to_dict()["cost_usd"] is None


async def test_on_result_once_per_row(gateway: FakeGateway) -> None:
    gateway.fail_max_tokens = {9}
    results: list[RequestResult] = []

    await replay(
        make_rows([(100, 9), (200, 2), (300, 3)]),
        base_url=gateway.url,
        model="gpt-4o-mini",
        on_result=results.append,
    )

    by_line = {result.row.line: result for result in results}
    assert sorted(by_line) == [1, 2, 3]
    assert by_line[1].ok is False
    assert by_line[2].ok is True
    assert by_line[2].input_tokens == 200
    assert by_line[3].output_tokens == 3
    assert by_line[3].cost_usd == 300 * INPUT_PRICE + 3 * OUTPUT_PRICE


async def test_row_error_propagates(gateway: FakeGateway) -> None:
    def rows() -> Iterator[TraceRow]:
        yield from make_rows([(100, 1), (200, 2)])
        raise TraceError("trace.csv:4: invalid ContextTokens 'x'")

    with pytest.raises(TraceError) as caught:
        await replay(rows(), base_url=gateway.url, model="gpt-4o-mini")

    assert str(caught.value) == "trace.csv:4: invalid ContextTokens 'x'"


def expected_cache_reads(rows: list[TraceRow]) -> list[int]:
    """Cache reads per row, in order, from the rows' block ids alone."""
    expected = []
    for index, current in enumerate(rows):
        best = 0
        for earlier in rows[:index]:
            shared = 0
            for mine, theirs in zip(current.prefix_blocks, earlier.prefix_blocks, strict=False):
                if mine != theirs:
                    break
                shared += 1
            whole_blocks = min(
                (current.input_tokens - OVERHEAD) // BLOCK_TOKENS,
                (earlier.input_tokens - OVERHEAD) // BLOCK_TOKENS,
            )
            best = max(best, min(shared, whole_blocks))
        expected.append(best * BLOCK_TOKENS)
    return expected


async def test_shared_blocks_become_cache_reads(gateway: FakeGateway, tmp_path: Path) -> None:
    # A conversation whose second turn extends the first, another session
    # that shares only block 1, and a last turn cut short inside block 3.
    path = tmp_path / "conversation.jsonl"
    lines = [
        {"timestamp": 0, "input_length": 1500, "output_length": 20, "hash_ids": [1, 2, 3]},
        {"timestamp": 10, "input_length": 2600, "output_length": 30, "hash_ids": [1, 2, 3, 4, 5]},
        {"timestamp": 20, "input_length": 1100, "output_length": 10, "hash_ids": [1, 6, 7]},
        {"timestamp": 30, "input_length": 1300, "output_length": 5, "hash_ids": [1, 2, 3, 4, 5]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = list(read_trace(path))
    results: list[RequestResult] = []

    summary = await replay(
        rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=1, on_result=results.append
    )

    assert [result.cache_read_tokens for result in results] == [0, 1024, 512, 1024]
    assert expected_cache_reads(rows) == [0, 1024, 512, 1024]
    assert summary.cache_read_tokens == 2560
    assert summary.input_tokens == 1500 + 2600 + 1100 + 1300


async def test_mooncake_real_rows_cache_reads(gateway: FakeGateway) -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    # Rows 134, 135 and 138 share 5, 26 and 14 leading blocks with earlier rows.
    rows = list(islice(read_trace(path), 140))
    results: list[RequestResult] = []

    summary = await replay(
        rows, base_url=gateway.url, model="gpt-4o-mini", concurrency=1, on_result=results.append
    )

    expected = expected_cache_reads(rows)
    assert expected[134] == 26 * BLOCK_TOKENS
    assert [result.cache_read_tokens for result in results] == expected
    assert summary.cache_read_tokens == sum(expected)
    assert summary.input_tokens == sum(row.input_tokens for row in rows)
    assert summary.output_tokens == sum(row.output_tokens for row in rows)
    assert summary.errors == 0


async def test_azure_real_rows_totals(gateway: FakeGateway) -> None:
    path = require_shared_data("traces/azure_llm_2023_conv.csv")
    rows = list(islice(read_trace(path), 60))

    summary = await replay(rows, base_url=gateway.url, model="gpt-4", concurrency=8)

    assert summary.requests == 60
    assert summary.input_tokens == sum(max(row.input_tokens, OVERHEAD) for row in rows)
    assert summary.output_tokens == sum(max(row.output_tokens, 1) for row in rows)
    assert gateway.bodies[0]["model"] == "gpt-4"


async def test_shared_builder_used(gateway: FakeGateway) -> None:
    builder = PromptBuilder("gpt-4o-mini", seed="other")

    await replay(make_rows([(300, 1)]), base_url=gateway.url, model="gpt-4o-mini", builder=builder)

    assert (
        gateway.bodies[0]["messages"][0]["content"] == builder.build(make_rows([(300, 1)])[0]).text
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"concurrency": 0}, "concurrency must be at least 1"), ({"speed": -1.0}, "speed must be")],
)
async def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await replay([], base_url="http://127.0.0.1:9", model="m", **kwargs)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000/v1"),
        ("http://127.0.0.1:4000/", "http://127.0.0.1:4000/v1"),
        ("http://127.0.0.1:4000/v1", "http://127.0.0.1:4000/v1"),
        ("http://127.0.0.1:4000/v1/", "http://127.0.0.1:4000/v1"),
    ],
)
def test_api_base_url(url: str, expected: str) -> None:
    assert api_base_url(url) == expected


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([], 50, None),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 101)], 50, 50.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], percent: float, expected: float) -> None:
    assert percentile(values, percent) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("0.000123", Decimal("0.000123")),
        (" 1.5 ", Decimal("1.5")),
        ("unpriced", None),
        ("NaN", None),
        ("Infinity", None),
    ],
)
def test_parse_cost(header: str | None, expected: Decimal | None) -> None:
    assert parse_cost(header) == expected
