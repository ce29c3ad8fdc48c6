"""Pricing a finished call and turning it into one ledger record."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from thrifty.errors import PricingError
from thrifty.gateway.attribution import Attribution
from thrifty.gateway.endpoints import Endpoint
from thrifty.gateway.upstream import Target
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.repricing import pricing_details
from thrifty.pricing.tiers import SERVICE_TIERS
from thrifty.tokens import count_chat_messages, count_text, message_text
from thrifty.translation import Translation
from thrifty.translation import details as translation_details
from thrifty.usage import Usage

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    """What the gateway knows about one request while it is in flight."""

    request_id: str
    endpoint: Endpoint
    target: Target
    attribution: Attribution
    model_requested: str
    streamed: bool
    tier_requested: str | None
    started_at: datetime
    started: float
    upstream_started: float = 0.0
    upstream_s: float = 0.0
    first_token_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Set when the target provider speaks another API than the endpoint's.
    translation: Translation | None = None


def normalize_tier(tier: object) -> str | None:
    """Map a response's ``service_tier`` (``standard``, ``auto``...) to the tier it is priced as."""
    if not isinstance(tier, str) or not tier:
        return None
    return SERVICE_TIERS.get(tier.strip().lower(), tier)


def price_call(
    engine: CostEngine,
    call: Call,
    model: str,
    usage: Usage,
    tier: str | None,
    *,
    speed: str | None = None,
) -> Cost:
    """Price a call; a price that cannot be computed is recorded as unpriced, never $0."""
    provider = call.target.provider.price_provider
    # Reprice reads what the ledger row has no column for (audio, image and
    # web-search counts, Anthropic's speed mode) from details["pricing"].
    call.extra["pricing"] = pricing_details(provider, model, usage, speed)
    try:
        return engine.price(
            provider, model, usage, service_tier=tier, at=call.started_at, speed=speed
        )
    except PricingError as exc:
        logger.warning("request %s left unpriced: %s", call.request_id, exc)
        return Cost(
            provider=provider,
            model_requested=model,
            model=None,
            service_tier=tier or "default",
            batch=False,
            cost_usd=None,
            unpriced_reason=str(exc),
        )


def build_record(
    call: Call,
    *,
    status: int,
    usage: Usage,
    cost: Cost,
    model_served: str | None,
    tier_served: str | None,
    ended: float,
    error_type: str | None = None,
) -> RequestRecord:
    """Assemble the ledger record of a finished call."""
    total_ms = (ended - call.started) * 1000
    upstream_ms = call.upstream_s * 1000
    attribution = call.attribution
    return RequestRecord(
        request_id=call.request_id,
        started_at=call.started_at,
        first_token_at=call.first_token_at,
        ended_at=datetime.now(UTC),
        provider=call.target.provider.name,
        endpoint=call.endpoint.name,
        model_requested=call.model_requested,
        model_served=model_served,
        model_priced=cost.model,
        streamed=call.streamed,
        http_status=status,
        error_type=error_type,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        usage_estimated=usage.estimated,
        cost_usd=cost.cost_usd,
        cost_breakdown=dict(cost.breakdown),
        unpriced=cost.cost_usd is None,
        service_tier_requested=call.tier_requested,
        service_tier_served=tier_served,
        team=attribution.team,
        project=attribution.project,
        user=attribution.user,
        feature=attribution.feature,
        session=attribution.session,
        tags=dict(attribution.tags),
        upstream_ms=round(upstream_ms, 3),
        overhead_ms=round(max(total_ms - upstream_ms, 0.0), 3),
        details=_initial_details(call),
    )


def _initial_details(call: Call) -> dict[str, Any]:
    details: dict[str, Any] = {}
    facts = call.extra.get("request_facts")
    if facts:
        details["request"] = facts
    pricing = call.extra.get("pricing")
    if pricing:
        details["pricing"] = pricing
    if call.translation is not None:
        details["translation"] = translation_details(call.translation)
    return details


def error_type_of(body: object) -> str | None:
    """Return the provider's error type from an error response body."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping):
        kind = error.get("type") or error.get("code")
        return str(kind) if kind else None
    return None


def estimate_input_tokens(call: Call) -> int:
    """Count a request's prompt offline, for a stream cut before its usage arrived."""
    body = call.extra.get("body")
    if not isinstance(body, Mapping):
        return 0
    model = call.target.model
    messages = body.get("messages")
    if isinstance(messages, list):
        total = count_chat_messages([m for m in messages if isinstance(m, Mapping)], model)
        system = body.get("system")
        return total + (count_text(message_text(system), model) if system else 0)
    prompt = body.get("input")
    if isinstance(prompt, str):
        return count_text(prompt, model)
    if isinstance(prompt, list):
        texts = [message_text(item.get("content")) for item in prompt if isinstance(item, Mapping)]
        return sum(count_text(text, model) for text in texts)
    return 0
