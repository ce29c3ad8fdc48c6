"""The gateway's prompt optimization step: transform the body, record what it saved.

``prepare`` runs the request's feature settings on the body and forwards the
optimized one. ``finish`` writes the annotation into the ledger record's
``details["prompts"]``: the estimated input tokens before and after, per
transform, and the saving priced at the request's input rate.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from thrifty.errors import PricingError, ThriftyError
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.prompts.config import PromptsConfig
from thrifty.prompts.dialect import API_NAMES, Api
from thrifty.prompts.pipeline import Optimization, optimize
from thrifty.usage import Usage

logger = logging.getLogger(__name__)

# Bodies larger than this are optimized in a worker thread, so that counting
# their tokens does not hold up other requests on the event loop.
THREAD_THRESHOLD_BYTES = 256 * 1024


class PromptOptimizationStep:
    name = "prompts"

    def __init__(self, config: PromptsConfig, engine: CostEngine) -> None:
        self.config = config
        self.engine = engine

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        api = call.endpoint.name
        if api not in API_NAMES:
            return body
        settings = self.config.settings_for(
            call.attribution.feature, call.endpoint.path, call.model_requested
        )
        if not settings.transforms:
            return body
        try:
            if _declared_size(request) > THREAD_THRESHOLD_BYTES:
                result = await asyncio.to_thread(
                    optimize, body, settings, api=_api(api), model=call.target.model
                )
            else:
                result = optimize(body, settings, api=_api(api), model=call.target.model)
        except ThriftyError as exc:
            logger.warning("request %s sent unoptimized: %s", call.request_id, exc)
            return body
        except Exception:
            # Optimizing is never worth failing a request over: a bug in a
            # transform is logged and the request forwarded as the client sent it.
            logger.exception(
                "request %s sent unoptimized: prompt optimization failed", call.request_id
            )
            return body
        call.extra["prompts"] = result
        return result.body

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        result = call.extra.get("prompts")
        if not isinstance(result, Optimization):
            return
        annotation = result.as_dict()
        saved = self._saved_usd(call, record, result.saved_tokens)
        annotation["saved_usd"] = None if saved is None else str(saved)
        record.details["prompts"] = annotation

    def _saved_usd(self, call: Call, record: RequestRecord, saved_tokens: int) -> Decimal | None:
        """Price the saved input tokens at the request's own uncached input rate."""
        if saved_tokens == 0:
            return Decimal(0)
        model = record.model_served or call.target.model
        try:
            cost = self.engine.price(
                call.target.provider.price_provider,
                model,
                Usage(input_tokens=abs(saved_tokens)),
                service_tier=record.service_tier_served,
                at=call.started_at,
            )
        except PricingError as exc:
            logger.info("request %s: prompt saving left unpriced: %s", call.request_id, exc)
            return None
        if cost.cost_usd is None:
            return None
        # A layout change can add a token or two, priced as a negative saving.
        return cost.cost_usd if saved_tokens > 0 else -cost.cost_usd


def _api(name: str) -> Api:
    for api in API_NAMES:
        if api == name:
            return api
    raise AssertionError(f"not an optimizable endpoint: {name}")


def _declared_size(request: Request) -> int:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0
