"""Metering one call of a wrapped client: which calls count, and their records.

A call is metered when it is a POST to one of the endpoints the gateway
meters (chat completions, Responses and embeddings for an OpenAI client,
messages for an Anthropic client), matched on the end of the URL path so a
base URL with a prefix works. Other calls (models, files, batches) pass
through untouched.

The record is built with the gateway's own metering functions, so a call
made through ``thrifty.track`` and the same call through the gateway give
the same record, apart from the request id and timings.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.config import ProviderConfig, ProviderKind
from thrifty.errors import RequestError, UsageError
from thrifty.gateway.attribution import Attribution, attribute
from thrifty.gateway.endpoints import CHAT_COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, Endpoint
from thrifty.gateway.metering import (
    Call,
    build_record,
    error_type_of,
    normalize_tier,
    price_call,
)
from thrifty.gateway.upstream import Target
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage, served_from_response, usage_from_response

logger = logging.getLogger(__name__)

# Path endings of the metered endpoints, per API kind.
_ENDPOINTS: dict[ProviderKind, tuple[tuple[str, Endpoint], ...]] = {
    "openai": (
        ("/chat/completions", CHAT_COMPLETIONS),
        ("/responses", RESPONSES),
        ("/embeddings", EMBEDDINGS),
    ),
    "anthropic": (("/messages", MESSAGES),),
}


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What the wrapper knows about the client it wraps.

    ``provider`` names the provider in records and prices; ``kind`` is the API
    the client speaks; ``attribution`` holds the defaults given to ``track``,
    which a request's own ``X-Thrifty-*`` headers and body metadata override.
    """

    provider: str
    kind: ProviderKind
    client_name: str
    attribution: Attribution = field(default_factory=Attribution)


def endpoint_for(kind: ProviderKind, method: str, path: str) -> Endpoint | None:
    """Return the metered endpoint of a request, or None for one that is not metered."""
    if method.upper() != "POST":
        return None
    trimmed = path.rstrip("/")
    for ending, endpoint in _ENDPOINTS[kind]:
        if trimmed.endswith(ending):
            return endpoint
    return None


def start_call(
    info: ClientInfo, endpoint: Endpoint, base_url: str, body: Mapping[str, Any], headers: Any
) -> Call:
    """Describe a metered request that is about to be sent."""
    model = body.get("model")
    stream = body.get("stream") is True and endpoint.streams
    tier = body.get("service_tier")
    now = time.perf_counter()
    call = Call(
        request_id=f"req_{uuid.uuid4().hex}",
        endpoint=endpoint,
        target=Target(
            ProviderConfig(info.provider, info.kind, base_url), str(model or ""), renamed=False
        ),
        attribution=_attribution(info.attribution, headers, body),
        model_requested=str(model or ""),
        streamed=stream,
        tier_requested=tier if isinstance(tier, str) else None,
        started_at=datetime.now(UTC),
        started=now,
        upstream_started=now,
    )
    call.extra["body"] = body
    return call


def buffered_record(
    engine: CostEngine, call: Call, status: int, content: bytes, info: ClientInfo
) -> RequestRecord:
    """Build the record of a whole (not streamed) response."""
    body = _loads_or_none(content)
    mapping = body if isinstance(body, dict) else {}
    usage = Usage()
    error_type: str | None = None
    if status == 200:
        try:
            usage = usage_from_response(call.endpoint.name, mapping)
        except UsageError as exc:
            logger.warning("request %s: provider usage is invalid: %s", call.request_id, exc)
            error_type = "invalid_usage"
    else:
        error_type = error_type_of(body) or f"http_{status}"
    served = served_from_response(call.endpoint.name, mapping)
    tier = normalize_tier(served.service_tier)
    cost = price_call(
        engine, call, served.model or call.target.model, usage, tier, speed=served.speed
    )
    if error_type == "invalid_usage":
        cost = _without_price(engine, call, "the provider reported impossible usage")
    record = build_record(
        call,
        status=status,
        usage=usage,
        cost=cost,
        model_served=served.model,
        tier_served=tier,
        ended=time.perf_counter(),
        error_type=error_type,
    )
    return annotate(record, info)


def failed_record(
    engine: CostEngine, call: Call, info: ClientInfo, *, timed_out: bool
) -> RequestRecord:
    """Build the record of a call that got no response: no connection, or a timeout."""
    cost = price_call(engine, call, call.target.model, Usage(), None)
    record = build_record(
        call,
        status=0,
        usage=Usage(),
        cost=cost,
        model_served=None,
        tier_served=None,
        ended=time.perf_counter(),
        error_type="upstream_timeout" if timed_out else "upstream_unreachable",
    )
    return annotate(record, info)


def annotate(record: RequestRecord, info: ClientInfo) -> RequestRecord:
    """Mark a record as made by the in-process wrapper, naming the client class."""
    record.details["track"] = {"client": info.client_name}
    return record


def _without_price(engine: CostEngine, call: Call, reason: str) -> Cost:
    cost = price_call(engine, call, call.target.model, Usage(), None)
    return replace(cost, cost_usd=None, breakdown={}, unpriced_reason=reason)


def _attribution(defaults: Attribution, headers: Any, body: Mapping[str, Any]) -> Attribution:
    """Merge the request's own attribution over the defaults given to ``track``."""
    try:
        own = attribute(headers, body)
    except RequestError as exc:
        # The provider decides whether the request is valid; a bad tag only
        # loses the request's own attribution.
        logger.warning("request attribution ignored: %s", exc.message)
        own = Attribution()
    return Attribution(
        team=own.team or defaults.team,
        project=own.project or defaults.project,
        user=own.user or defaults.user,
        feature=own.feature or defaults.feature,
        session=own.session or defaults.session,
        tags={**defaults.tags, **own.tags},
    )


def _loads_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
