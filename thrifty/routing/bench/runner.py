"""Running an evaluation set through a gateway with the official OpenAI client.

Every request carries ``X-Thrifty-Feature: bench`` and the tags
``bench_run`` and ``bench_item``, so its ledger record can be found; the
gateway records its cost and latency there. The cost comes back in the
``X-Thrifty-Cost-USD`` header and the request id in
``X-Thrifty-Request-Id``. A judge model, when given, is called through the
same gateway, and its calls are tagged ``bench_role=judge``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import openai

from thrifty.routing.bench.evalset import EvalItem
from thrifty.routing.bench.grading import Grade, JudgeClient, grade_answer
from thrifty.routing.bench.results import BenchResult
from thrifty.traces.replay import api_base_url

logger = logging.getLogger(__name__)

COST_HEADER = "x-thrifty-cost-usd"
REQUEST_ID_HEADER = "x-thrifty-request-id"
FEATURE = "bench"
JUDGE_MAX_TOKENS = 512


@dataclass
class BenchRun:
    """A benchmark's settings: where to send requests and how many at a time.

    ``extra_headers`` go with every answer request (not the judge's).
    """

    gateway_url: str
    models: Sequence[str]
    api_key: str = "sandbox"
    concurrency: int = 4
    judge_model: str | None = None
    timeout_s: float = 120.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:12]}")


async def run_benchmark(
    items: Sequence[EvalItem],
    run: BenchRun,
    *,
    on_result: Callable[[BenchResult], None] | None = None,
) -> list[BenchResult]:
    """Send every item to every model, grade each answer, and return the results in order."""
    client = openai.AsyncOpenAI(
        base_url=api_base_url(run.gateway_url),
        api_key=run.api_key,
        max_retries=0,
        timeout=run.timeout_s,
    )
    slots = asyncio.Semaphore(run.concurrency)
    judge = _judge(client, run) if run.judge_model else None

    async def one(item: EvalItem, model: str) -> BenchResult:
        async with slots:
            result = await _answer(client, run, item, model, judge)
        if on_result is not None:
            on_result(result)
        return result

    logger.info("benchmark %s: %d items x %d models", run.run_id, len(items), len(run.models))
    try:
        tasks = [one(item, model) for model in run.models for item in items]
        return list(await asyncio.gather(*tasks))
    finally:
        await client.close()


async def _answer(
    client: openai.AsyncOpenAI,
    run: BenchRun,
    item: EvalItem,
    model: str,
    judge: JudgeClient | None,
) -> BenchResult:
    headers = {
        **run.extra_headers,
        "X-Thrifty-Feature": FEATURE,
        "X-Thrifty-Tags": f"bench_run={run.run_id},bench_item={item.id}",
    }
    started = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=list(item.messages),  # type: ignore[arg-type]  # checked when read
            max_tokens=item.max_tokens,
            extra_headers=headers,
        )
        completion = raw.parse()
    except openai.APIError as exc:
        logger.warning("benchmark %s: %s on item %s failed: %s", run.run_id, model, item.id, exc)
        return _failed(item, model, started, exc)
    latency_ms = (time.perf_counter() - started) * 1000

    answer = (completion.choices[0].message.content or "") if completion.choices else ""
    try:
        grade = await grade_answer(item, answer, judge)
    except openai.APIError as exc:
        logger.warning("benchmark %s: the judge failed on item %s: %s", run.run_id, item.id, exc)
        grade = Grade(None, f"the judge call failed: {type(exc).__name__}")
    usage = completion.usage
    return BenchResult(
        item_id=item.id,
        model=model,
        prompt=item.prompt,
        answer=answer,
        score=grade.score,
        grade_detail=grade.detail,
        cost_usd=_decimal(raw.headers.get(COST_HEADER)),
        latency_ms=latency_ms,
        request_id=raw.headers.get(REQUEST_ID_HEADER),
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )


def _judge(client: openai.AsyncOpenAI, run: BenchRun) -> JudgeClient:
    assert run.judge_model is not None
    model = run.judge_model

    async def ask(prompt: str) -> str:
        completion = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=JUDGE_MAX_TOKENS,
            temperature=0,
            extra_headers={
                "X-Thrifty-Feature": FEATURE,
                "X-Thrifty-Tags": f"bench_run={run.run_id},bench_role=judge",
            },
        )
        return (completion.choices[0].message.content or "") if completion.choices else ""

    return ask


def _failed(item: EvalItem, model: str, started: float, exc: openai.APIError) -> BenchResult:
    request_id: str | None = None
    response: Any = getattr(exc, "response", None)
    if response is not None:
        request_id = response.headers.get(REQUEST_ID_HEADER)
    return BenchResult(
        item_id=item.id,
        model=model,
        prompt=item.prompt,
        answer=None,
        score=None,
        grade_detail="request failed",
        cost_usd=None,
        latency_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        error=f"{type(exc).__name__}: {exc}",
    )


def _decimal(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None
