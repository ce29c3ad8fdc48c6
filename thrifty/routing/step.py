"""The routing step: a request for ``thrifty/<route>`` is sent to the model its route picks."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from thrifty.config import GatewayConfig
from thrifty.errors import ConfigError, RequestError
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.gateway.upstream import resolve_target
from thrifty.ledger.record import RequestRecord
from thrifty.routing.config import ROUTE_PREFIX, RoutingConfig
from thrifty.routing.router import Decision

logger = logging.getLogger(__name__)


class RoutingStep:
    """Rewrite the model of a routed request and record the decision.

    The chosen model must speak the endpoint's API (an OpenAI-format request
    is routed to models served through an OpenAI-format provider).
    """

    name = "routing"

    def __init__(self, routing: RoutingConfig, config: GatewayConfig) -> None:
        self.routing = routing
        self.config = config

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
        logger.debug(
            "request %s routed by %s to %s", call.request_id, decision.route, decision.model
        )
        return {**body, "model": call.target.model}

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        decision = call.extra.get("routing")
        if isinstance(decision, Decision):
            record.details["routing"] = decision.to_details()
