"""The routing step: a request for ``thrifty/<route>`` is sent to the model its route picks.

``prepare`` decides the route and leaves a ``RoutePlan`` in
``call.extra[ROUTE_PLAN]``, which the gateway executes attempt by attempt
(``thrifty.gateway.attempts``). ``finish`` writes the decision and the
attempt into each record's ``details["routing"]``, and on a request's last
record what the request cost against its route's strongest model.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from thrifty.config import GatewayConfig
from thrifty.errors import ConfigError, RequestError
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.gateway.upstream import resolve_target
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.rates import EXACT
from thrifty.routing.config import ROUTE_PREFIX, RoutingConfig
from thrifty.routing.execution import AttemptInfo, plan_route
from thrifty.routing.report import strongest_cost
from thrifty.routing.router import Decision, Router

logger = logging.getLogger(__name__)

# Keys of ``call.extra``: the plan of a routed request, and what one attempt did.
ROUTE_PLAN = "route_plan"
ROUTE_ATTEMPT = "route_attempt"


class RoutingStep:
    """Rewrite the model of a routed request and record the decision.

    A chosen model of a provider that speaks another API than the endpoint's
    (``anthropic/claude-haiku-4-5`` for a chat completion) is served through
    a translation, for the endpoints ``thrifty.translation`` covers.
    """

    name = "routing"

    def __init__(
        self, routing: RoutingConfig, config: GatewayConfig, engine: CostEngine | None = None
    ) -> None:
        self.routing = routing
        self.config = config
        self.engine = engine or CostEngine()

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        model = call.target.model
        if not model.startswith(ROUTE_PREFIX):
            return body
        router = self.routing.router_for(model)
        if router is None:
            known = ", ".join(sorted(self.routing.routes)) or "none"
            raise RequestError(
                404,
                f"unknown route '{model}'; the configured routes are {known}",
                param="model",
                error_type="not_found_error",
            )
        decision = router.decide(body, call.attribution, key_id=call.extra.get("key_id"))
        try:
            call.target = resolve_target(self.config, call.endpoint.kind, decision.model)
        except ConfigError as exc:
            raise RequestError(
                500, f"route '{decision.route}' chose {decision.model}: {exc}"
            ) from exc
        call.extra["routing"] = decision
        call.extra[ROUTE_PLAN] = plan_route(router, decision)
        logger.debug(
            "request %s routed by %s to %s", call.request_id, decision.route, decision.model
        )
        return {**body, "model": call.target.model}

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        decision = call.extra.get("routing")
        if not isinstance(decision, Decision):
            return
        details = decision.to_details()
        attempt = call.extra.get(ROUTE_ATTEMPT)
        if isinstance(attempt, AttemptInfo):
            details.update(attempt.to_details())
            if attempt.request_id == record.request_id:
                details.update(self._comparison(call, record, attempt))
        record.details["routing"] = details

    def _comparison(
        self, call: Call, record: RequestRecord, attempt: AttemptInfo
    ) -> dict[str, Any]:
        """Sum the request's attempts, and price its answer on the route's strongest model."""
        router = self.routing.routes.get(attempt.route)
        details: dict[str, Any] = {"attempts": attempt.attempts}
        if record.cost_usd is not None and attempt.prior_cost_usd is not None:
            total = EXACT.add(record.cost_usd, attempt.prior_cost_usd)
            details["request_cost_usd"] = format(total, "f")
        if router is None or record.http_status != 200 or record.error_type is not None:
            return details
        details["strongest_model"] = router.strongest
        cost = self._strongest_cost(call, record, router)
        if cost is not None:
            details["strongest_cost_usd"] = format(cost, "f")
        return details

    def _strongest_cost(self, call: Call, record: RequestRecord, router: Router) -> Decimal | None:
        try:
            target = resolve_target(self.config, call.endpoint.kind, router.strongest)
        except ConfigError as exc:
            logger.info("route %s: strongest model has no provider: %s", router.name, exc)
            return None
        provider = target.provider.price_provider
        return strongest_cost(self.engine, provider, target.model, record, call.started_at)
