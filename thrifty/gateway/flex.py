"""Flex processing: send at the Flex tier, retry its 429 rejections, fall back to the default tier.

OpenAI's Flex tier bills at Batch API rates but may return ``429 Resource
Unavailable`` when it has no capacity, and may take longer. ``FlexStep``
decides which requests go at Flex (the request's own ``service_tier`` or a
``flex:`` rule). ``send_flex`` sends them with the long Flex timeout,
retries a rejection with exponential backoff and jitter while the retry
budget lasts, then sends once more at the default tier when the policy
allows it. Each rejected attempt is its own ledger record with HTTP status
429 and cost $0; the final response is priced by the tier it reports.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.requests import Request

from thrifty.batch.config import FlexConfig
from thrifty.errors import PricingError
from thrifty.gateway.metering import Call, build_record
from thrifty.gateway.pipeline import Reply
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

if TYPE_CHECKING:
    from thrifty.gateway.proxy import Gateway

logger = logging.getLogger(__name__)

FALLBACK_TIER = "auto"
_FLEX_ENDPOINTS = frozenset({"chat.completions", "responses"})


@dataclass(slots=True)
class FlexPlan:
    """A Flex call in flight: its policy and what happened to it so far."""

    config: FlexConfig
    fallback: bool
    source: str
    rejections: int = 0
    fell_back: bool = False


class FlexStep:
    """Choose the Flex tier for a request, and annotate its record with the outcome."""

    name = "flex"

    def __init__(self, config: FlexConfig, engine: CostEngine) -> None:
        self.config = config
        self.engine = engine

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        if call.target.provider.kind != "openai" or call.endpoint.name not in _FLEX_ENDPOINTS:
            return body
        attribution = call.attribution
        rule = self.config.rule_for(
            {
                "feature": attribution.feature,
                "team": attribution.team,
                "project": attribution.project,
                "key": _text(call.extra.get("key_id")),
            }
        )
        requested = body.get("service_tier") == "flex"
        if rule is not None and rule.use == "never" and requested:
            call.tier_requested = FALLBACK_TIER
            return {**body, "service_tier": FALLBACK_TIER}
        source = "request"
        if rule is not None and rule.use == "always" and not requested:
            if not self.config.supports(call.target.model):
                return body
            body = {**body, "service_tier": "flex"}
            call.tier_requested = "flex"
            requested = True
            source = f"rule {rule.label}"
        if requested:
            fallback = self.config.fallback
            if rule is not None and rule.fallback is not None:
                fallback = rule.fallback
            call.extra["flex"] = FlexPlan(self.config, fallback, source)
        return body

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        plan = call.extra.get("flex")
        # A rejected attempt's record carries its own annotation already.
        if not isinstance(plan, FlexPlan) or "flex" in record.details:
            return
        rejected = record.http_status == 429 and not plan.fell_back
        if rejected:
            # The last rejection, returned to the client: it costs nothing.
            _make_free(record, "resource_unavailable")
        record.details["flex"] = {
            "requested": True,
            "rejected": rejected,
            "policy": plan.source,
            "rejections": plan.rejections,
            "fallback": plan.fell_back,
            "standard_cost_usd": self._standard_cost(call, record),
        }

    def _standard_cost(self, call: Call, record: RequestRecord) -> str | None:
        """Price a Flex-served record at the default tier, for the savings report.

        NOTE: the record keeps no audio token counts, so audio is priced as text here.
        """
        if record.service_tier_served != "flex" or record.cost_usd is None:
            return None
        usage = Usage(
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cache_read_tokens=record.cache_read_tokens,
            cache_write_tokens=record.cache_write_tokens,
            cache_write_1h_tokens=record.cache_write_1h_tokens,
            reasoning_tokens=record.reasoning_tokens,
        )
        model = record.model_served or call.target.model
        provider = call.target.provider.price_provider
        try:
            cost = self.engine.price(provider, model, usage, at=call.started_at)
        except PricingError as exc:
            logger.info("request %s: no standard price to compare: %s", call.request_id, exc)
            return None
        return None if cost.cost_usd is None else format(cost.cost_usd, "f")


async def send_flex(
    gateway: Gateway, call: Call, payload: bytes, headers: dict[str, str], plan: FlexPlan
) -> aiohttp.ClientResponse:
    """Send a Flex call, retrying 429 rejections within the budget, then falling back."""
    config = plan.config
    provider, path = call.target.provider, call.endpoint.path
    budget_ends = time.monotonic() + config.retry_budget_s
    attempt = 1
    while True:
        started_at, started = datetime.now(UTC), time.perf_counter()
        call.upstream_started = started
        response = await gateway.client.send(
            "POST", provider, path, payload, headers, timeout_s=config.timeout_s
        )
        if not await _is_rejection(response):
            return response

        delay = _backoff(config, attempt)
        retry = time.monotonic() + delay <= budget_ends
        if not retry and not plan.fallback:
            logger.info("request %s: flex rejected %d times; no fallback", call.request_id, attempt)
            return response
        _record_rejection(gateway, call, attempt, started_at, started)
        plan.rejections += 1
        response.release()
        if retry:
            logger.info(
                "request %s: flex rejected (attempt %d); retrying in %.2f s",
                call.request_id,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1
            continue

        logger.info(
            "request %s: flex rejected %d times; falling back to the default tier",
            call.request_id,
            attempt,
        )
        plan.fell_back = True
        call.upstream_started = time.perf_counter()
        fallback = _with_tier(payload, FALLBACK_TIER)
        return await gateway.client.send("POST", provider, path, fallback, headers)


async def _is_rejection(response: aiohttp.ClientResponse) -> bool:
    """Return whether a response is Flex's 429 "Resource Unavailable" (not a rate limit)."""
    if response.status != 429:
        return False
    try:
        body = orjson.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return False
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    words = " ".join(str(error.get(name) or "") for name in ("code", "type", "message")).lower()
    return "resource_unavailable" in words or "resource unavailable" in words


def _backoff(config: FlexConfig, attempt: int) -> float:
    """Return the wait before the next attempt: doubling from the initial wait, half jittered."""
    ceiling = min(config.backoff_max_s, config.backoff_initial_s * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def _record_rejection(
    gateway: Gateway, call: Call, attempt: int, started_at: datetime, started: float
) -> None:
    attempt_call = replace(
        call,
        request_id=f"{call.request_id}-flex{attempt}",
        started_at=started_at,
        started=started,
        upstream_s=time.perf_counter() - started,
    )
    provider = call.target.provider.price_provider
    free = Cost(provider, call.target.model, None, "flex", False, Decimal(0))
    record = build_record(
        attempt_call,
        status=429,
        usage=Usage(),
        cost=free,
        model_served=None,
        tier_served=None,
        ended=time.perf_counter(),
        error_type="resource_unavailable",
    )
    record.details["flex"] = {"rejected": True, "attempt": attempt, "call": call.request_id}
    gateway.submit(attempt_call, record)


def _make_free(record: RequestRecord, error_type: str) -> None:
    record.cost_usd = Decimal(0)
    record.cost_breakdown = {}
    record.unpriced = False
    record.error_type = error_type


def _with_tier(payload: bytes, tier: str) -> bytes:
    body = orjson.loads(payload)
    body["service_tier"] = tier
    return orjson.dumps(body)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
