"""Replay a trace through an OpenAI-compatible gateway with the official client.

Each row becomes one chat completion whose prompt has the row's input token
count and whose ``max_tokens`` is the row's output count (see
``thrifty.traces.synthesis``). Requests are sent at most ``concurrency`` at a
time, either as fast as possible or on the trace's own schedule scaled by
``speed``. A failed request is counted and the replay goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from thrifty.traces.rows import TraceRow
from thrifty.traces.synthesis import ChatPrompt, PromptBuilder

logger = logging.getLogger(__name__)

COST_HEADER = "X-Thrifty-Cost-USD"

# The summary keeps this many error messages; the rest are only counted.
KEPT_ERROR_MESSAGES = 5

HeadersFor = Callable[[TraceRow], Mapping[str, str]]
ModelFor = Callable[[TraceRow], str | None]


@dataclass(frozen=True, slots=True)
class RequestResult:
    """The outcome of one replayed row; token counts are the response's usage."""

    row: TraceRow
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: Decimal | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None


@dataclass
class ReplaySummary:
    """Totals of a replay.

    Token counts and ``cost_usd`` sum over successful responses. ``cost_usd``
    is None when no response carried a cost header; ``unpriced`` counts the
    successful responses without one, so a partial sum is visible as such.
    Latencies are over successful requests, None when there were none.
    """

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: Decimal | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    wall_s: float = 0.0
    unpriced: int = 0
    error_messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready values, ``cost_usd`` as a decimal string."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "unpriced": self.unpriced,
            "latency_p50_ms": _round_ms(self.latency_p50_ms),
            "latency_p99_ms": _round_ms(self.latency_p99_ms),
            "wall_s": round(self.wall_s, 3),
            "error_messages": list(self.error_messages),
        }


async def replay(
    rows: Iterable[TraceRow],
    *,
    base_url: str,
    model: str,
    api_key: str = "sandbox",
    concurrency: int = 8,
    speed: float = 0.0,
    limit: int | None = None,
    headers: Mapping[str, str] | None = None,
    headers_for: HeadersFor | None = None,
    model_for: ModelFor | None = None,
    on_result: Callable[[RequestResult], None] | None = None,
    builder: PromptBuilder | None = None,
    max_retries: int = 0,
    timeout_s: float = 600.0,
) -> ReplaySummary:
    """Send one chat completion per row to the gateway at ``base_url`` and sum the results.

    ``speed`` scales the trace's timestamps by ``1 / speed`` (2 replays twice as
    fast); 0 sends as fast as ``concurrency`` allows. ``headers`` go with every
    request and ``headers_for(row)`` adds per-row ones, such as the
    ``X-Thrifty-*`` attribution headers. ``model_for(row)`` names a row's model,
    ``model`` when it returns None, and each model's prompts are counted with
    its own encoding. ``builder`` sets the prompt seed. ``on_result`` is called
    once per row. ``max_retries`` is the SDK's retry count, 0 by default, so the
    client sends each row once. A malformed row raises ``TraceError`` after the
    requests in flight are cancelled.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if speed < 0 or not math.isfinite(speed):
        raise ValueError(f"speed must be a finite number >= 0, not {speed}")
    if limit is not None:
        rows = islice(rows, max(limit, 0))
    builder = builder or PromptBuilder(model)

    client = openai.AsyncOpenAI(
        base_url=api_base_url(base_url),
        api_key=api_key,
        max_retries=max_retries,
        timeout=timeout_s,
    )
    run = _Replay(
        client=client,
        model=model,
        builder=builder,
        concurrency=concurrency,
        headers=dict(headers or {}),
        headers_for=headers_for,
        model_for=model_for,
        on_result=on_result,
    )
    logger.info(
        "replay started: gateway %s, model %s, concurrency %d, speed %s",
        base_url,
        model,
        concurrency,
        speed,
    )
    async with client:
        summary = await run.run(rows, speed)
    logger.info(
        "replay finished: %d requests, %d errors in %.1f s",
        summary.requests,
        summary.errors,
        summary.wall_s,
    )
    return summary


def api_base_url(gateway_url: str) -> str:
    """Return the OpenAI API base of a gateway: its URL with ``/v1`` appended once."""
    url = gateway_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class _Replay:
    """One replay's client, limits and running totals."""

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI,
        model: str,
        builder: PromptBuilder,
        concurrency: int,
        headers: dict[str, str],
        headers_for: HeadersFor | None,
        model_for: ModelFor | None,
        on_result: Callable[[RequestResult], None] | None,
    ) -> None:
        self.client = client
        self.model = model
        self.builders = {builder.model: builder}
        self.seed = builder.seed
        self.model_for = model_for
        self.slots = asyncio.Semaphore(concurrency)
        self.headers = headers
        self.headers_for = headers_for
        self.on_result = on_result
        self.summary = ReplaySummary()
        self.latencies = array("d")
        self.cost_total = Decimal(0)
        self.priced = 0

    async def run(self, rows: Iterable[TraceRow], speed: float) -> ReplaySummary:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        try:
            for row in rows:
                if speed > 0:
                    await _sleep_until(loop, started + row.offset_s / speed)
                model = self._model_of(row)
                prompt = self._builder_for(model).build(row)
                await self.slots.acquire()
                task = asyncio.create_task(self._run_one(row, model, prompt))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self.summary.wall_s = loop.time() - started
        return self._finish()

    def _model_of(self, row: TraceRow) -> str:
        if self.model_for is None:
            return self.model
        return self.model_for(row) or self.model

    def _builder_for(self, model: str) -> PromptBuilder:
        builder = self.builders.get(model)
        if builder is None:
            builder = self.builders[model] = PromptBuilder(model, seed=self.seed)
        return builder

    async def _run_one(self, row: TraceRow, model: str, prompt: ChatPrompt) -> None:
        try:
            result = await self._send(row, model, prompt)
        finally:
            self.slots.release()
        self._record(result)
        if self.on_result is not None:
            self.on_result(result)

    async def _send(self, row: TraceRow, model: str, prompt: ChatPrompt) -> RequestResult:
        headers = dict(self.headers)
        if self.headers_for is not None:
            headers.update(self.headers_for(row))

        started = time.perf_counter()
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                model=model,
                messages=[{"role": "user", "content": prompt.text}],
                max_tokens=prompt.max_tokens,
                extra_headers=headers or None,
            )
            completion = raw.parse()
        except openai.APIError as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            error = f"line {row.line}: {_describe_error(exc)}"
            return RequestResult(row=row, latency_ms=latency_ms, error=error)
        latency_ms = (time.perf_counter() - started) * 1000

        return _result_of(row, latency_ms, completion, raw.headers.get(COST_HEADER))

    def _record(self, result: RequestResult) -> None:
        summary = self.summary
        summary.requests += 1
        if result.error is not None:
            summary.errors += 1
            if len(summary.error_messages) < KEPT_ERROR_MESSAGES:
                summary.error_messages.append(result.error)
                logger.warning("replay request failed: %s", result.error)
            return
        summary.input_tokens += result.input_tokens
        summary.output_tokens += result.output_tokens
        summary.cache_read_tokens += result.cache_read_tokens
        self.latencies.append(result.latency_ms)
        if result.cost_usd is None:
            summary.unpriced += 1
        else:
            self.cost_total += result.cost_usd
            self.priced += 1

    def _finish(self) -> ReplaySummary:
        summary = self.summary
        if self.priced:
            summary.cost_usd = self.cost_total
        ordered = sorted(self.latencies)
        summary.latency_p50_ms = percentile(ordered, 50)
        summary.latency_p99_ms = percentile(ordered, 99)
        return summary


def percentile(ordered: list[float], percent: float) -> float | None:
    """Return the nearest-rank percentile of sorted values, None for no values."""
    if not ordered:
        return None
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def parse_cost(value: str | None) -> Decimal | None:
    """Parse a cost header into a Decimal, None when it is absent or not a finite number."""
    if value is None:
        return None
    try:
        cost = Decimal(value.strip())
    except InvalidOperation:
        return None
    return cost if cost.is_finite() else None


def _result_of(
    row: TraceRow, latency_ms: float, completion: ChatCompletion, cost_header: str | None
) -> RequestResult:
    usage = completion.usage
    if usage is None:
        return RequestResult(
            row=row, latency_ms=latency_ms, error=f"line {row.line}: the response has no usage"
        )
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    return RequestResult(
        row=row,
        latency_ms=latency_ms,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=cached or 0,
        cost_usd=parse_cost(cost_header),
    )


def _describe_error(exc: openai.APIError) -> str:
    message = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        message += f" ({exc.__cause__})"
    return message


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
