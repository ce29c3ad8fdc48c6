"""Ledger records of batch results, priced at batch rates.

Every result, including an error, an expired or a cancelled request, is one
record. Only successes cost anything: an error, an expired or a cancelled
request is recorded with cost $0. A success is priced with
``CostEngine.price(..., batch=True)`` (cache reads at the batch cache rate
where the catalog has one) and also at synchronous rates, kept as
``details["batch"]["standard_cost_usd"]`` for the savings report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from thrifty.batch.providers import ResultLine
from thrifty.batch.store import Job, Part
from thrifty.errors import PricingError, UsageError
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage, usage_from_response

logger = logging.getLogger(__name__)

# The usage parser for each batch endpoint; legacy completions report usage
# as chat completions do. Moderations and images have no parser.
USAGE_ENDPOINTS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}

_ERROR_TYPES = {"expired": "batch_expired", "cancelled": "batch_cancelled"}


@dataclass(frozen=True, slots=True)
class PricedResult:
    """A result's ledger record and its synchronous price (None when unpriced or free)."""

    record: RequestRecord
    standard_cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class _Priced:
    usage: Usage
    cost: Cost
    standard_cost_usd: Decimal | None
    problem: str | None


class ResultPricer:
    """Parse and price result usage, remembering recent usage objects.

    The results of one batch repeat few distinct usage objects (the same
    prompt template and output limit), so most results skip parsing and
    pricing. The memory contains at most ``size`` entries.
    """

    def __init__(self, engine: CostEngine, size: int = 4096) -> None:
        self.engine = engine
        self._size = size
        self._known: dict[tuple[str, str, str, bytes], _Priced] = {}

    def price(self, endpoint: str, provider: str, model: str, body: dict[str, Any]) -> _Priced:
        usage_object = body.get("usage")
        key = (endpoint, provider, model, orjson.dumps(usage_object, option=orjson.OPT_SORT_KEYS))
        known = self._known.get(key)
        if known is not None:
            return known
        priced = self._price(endpoint, provider, model, {"usage": usage_object})
        if len(self._known) >= self._size:
            self._known.pop(next(iter(self._known)))
        self._known[key] = priced
        return priced

    def _price(self, endpoint: str, provider: str, model: str, body: dict[str, Any]) -> _Priced:
        try:
            usage = usage_from_response(endpoint, body)
        except UsageError as exc:
            problem = f"the provider reported impossible usage: {exc}"
            return _Priced(Usage(), _unpriced(provider, model, problem), None, problem)
        try:
            batch = self.engine.price(provider, model, usage, batch=True)
            standard = self.engine.price(provider, model, usage)
        except PricingError as exc:
            return _Priced(usage, _unpriced(provider, model, str(exc)), None, None)
        return _Priced(usage, batch, standard.cost_usd, None)


def result_record(
    pricer: ResultPricer, job: Job, part: Part, result: ResultLine, model: str | None
) -> PricedResult:
    """Build the ledger record of one batch result.

    ``model`` is the model the request named, when the job has it.
    """
    endpoint = USAGE_ENDPOINTS.get(part.endpoint)
    succeeded = result.outcome == "succeeded" and result.body is not None
    body = result.body if succeeded and result.body is not None else {}
    served = body.get("model")
    model_served = served if isinstance(served, str) and served else None
    model_requested = model or model_served or part.model or "unknown"
    price_provider = job.pricing_provider or job.provider

    if not succeeded:
        priced = _Priced(Usage(), _free(price_provider, model_requested), None, None)
    elif endpoint is None:
        problem = "Thrifty does not read the usage of this batch endpoint's results"
        priced = _Priced(Usage(), _unpriced(price_provider, model_requested), None, problem)
    else:
        priced = pricer.price(endpoint, price_provider, model_served or model_requested, body)
    if priced.problem is not None:
        logger.warning("batch result %s: %s", result.custom_id, priced.problem)

    usage, cost = priced.usage, priced.cost
    record = RequestRecord(
        request_id=f"{part.provider_batch_id}:{result.custom_id}",
        started_at=part.submitted_at or part.created_at,
        ended_at=part.ended_at or datetime.now(UTC),
        provider=job.provider,
        endpoint=endpoint or part.endpoint,
        model_requested=model_requested,
        model_served=model_served,
        model_priced=cost.model,
        http_status=result.status_code,
        error_type=_error_type(result, priced.problem),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost.cost_usd,
        cost_breakdown=dict(cost.breakdown),
        unpriced=cost.cost_usd is None,
        service_tier_requested="batch",
        service_tier_served="batch",
        team=job.team,
        project=job.project,
        user=job.user,
        feature=job.feature,
        session=job.session,
        tags=dict(job.tags),
        details={"batch": _details(job, part, result, priced.standard_cost_usd)},
    )
    return PricedResult(record, priced.standard_cost_usd)


def _free(provider: str, model: str) -> Cost:
    return Cost(provider, model, None, "batch", True, Decimal(0))


def _unpriced(provider: str, model: str, reason: str | None = None) -> Cost:
    reason = reason or "Thrifty does not read the usage of this batch endpoint's results"
    return Cost(provider, model, None, "batch", True, None, unpriced_reason=reason)


def _error_type(result: ResultLine, problem: str | None) -> str | None:
    if result.outcome == "succeeded":
        return "invalid_usage" if problem and "impossible" in problem else None
    return _ERROR_TYPES.get(result.outcome) or result.error_code or "batch_error"


def _details(job: Job, part: Part, result: ResultLine, standard: Decimal | None) -> dict[str, Any]:
    return {
        "job": job.job_id,
        "part": part.part_id,
        "provider_batch": part.provider_batch_id,
        "custom_id": result.custom_id,
        "round": part.round,
        "outcome": result.outcome,
        "standard_cost_usd": None if standard is None else format(standard, "f"),
    }
