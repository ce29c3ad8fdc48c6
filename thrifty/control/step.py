"""The admission step: the first stage of the gateway's pipeline.

``prepare`` authenticates the caller, fills attribution defaults from the
key, applies cutoffs, the key's model, provider and tier limits,
throttling, rate limits and the budget reservation; a refusal is an error
response in the endpoint's format (401, 403, 429, or 503 when the counters
are unreachable and the gateway fails closed). ``finish`` records the key
on the request and settles the reservation with the recorded cost.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from thrifty.config import GatewayConfig
from thrifty.control.admission import REMAINING_HEADER, AdmissionRequest, Denial, Ticket
from thrifty.control.plane import ControlPlane
from thrifty.errors import ConfigError
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.gateway.upstream import resolve_target
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.rates import EXACT

logger = logging.getLogger(__name__)

TICKET = "control"


class AdmissionStep:
    """Authenticate, attribute and admit each metered request; settle it when done."""

    name = "admission"

    def __init__(self, plane: ControlPlane, config: GatewayConfig) -> None:
        self.plane = plane
        self.config = config

    async def start(self) -> None:
        if self.plane.keys_required:
            check_provider_keys(self.config)
        await self.plane.start()

    async def stop(self) -> None:
        await self.plane.stop()

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        plane = self.plane
        await plane.refresh_if_changed()
        principal = plane.authenticate(request.headers)
        if isinstance(principal, Denial):
            return self._refuse(call, principal)
        scopes = plane.attribute(principal, call.attribution)
        # Later steps (routing, Flex rules) select by key.
        call.extra["key_id"] = principal.key_id
        denial = plane.cutoff_for(scopes) or plane.check_access(
            principal, call.target.model, call.target.provider.name, call.tier_requested
        )
        if denial is not None:
            return self._refuse(call, denial)

        admission = AdmissionRequest(
            request_id=call.request_id,
            endpoint=call.endpoint.name,
            kind=call.endpoint.kind,
            provider=call.target.provider.name,
            price_provider=call.target.provider.price_provider,
            model=call.target.model,
            tier=call.tier_requested,
            body=body,
        )
        outcome = await plane.admit(admission, principal, scopes)
        if isinstance(outcome, Denial):
            return self._refuse(call, outcome)
        call.extra[TICKET] = outcome
        if outcome.remaining_usd is not None:
            headers = call.extra.setdefault("response_headers", {})
            headers[REMAINING_HEADER] = format(outcome.remaining_usd.normalize(), "f")
        return self._throttled_body(call, body, outcome)

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        ticket = call.extra.get(TICKET)
        if not isinstance(ticket, Ticket):
            return
        record.key_id = ticket.principal.key_id
        record.details[TICKET] = ticket.details()
        tokens = record.input_tokens + record.output_tokens
        if record.request_id != ticket.request_id:
            # An earlier upstream call of this request (a Flex rejection or a
            # routing attempt): its cost counts when the final record settles.
            if record.cost_usd is not None:
                ticket.prior_cost_usd = EXACT.add(ticket.prior_cost_usd, record.cost_usd)
            ticket.prior_tokens += tokens
            return
        cost = record.cost_usd
        if ticket.prior_cost_usd or ticket.prior_tokens:
            cost = EXACT.add(cost or Decimal(0), ticket.prior_cost_usd)
            tokens += ticket.prior_tokens
        self.plane.settle_later(ticket, cost, tokens)

    def _throttled_body(self, call: Call, body: dict[str, Any], ticket: Ticket) -> dict[str, Any]:
        if ticket.model is None and ticket.tier is None:
            return body
        changed = dict(body)
        if ticket.tier is not None:
            changed["service_tier"] = ticket.tier
            call.tier_requested = ticket.tier
        if ticket.model is not None:
            changed["model"] = ticket.model
            call.target = resolve_target(self.config, call.endpoint.kind, ticket.model)
        logger.info("request %s throttled: %s", call.request_id, ticket.throttled)
        return changed

    def _refuse(self, call: Call, denial: Denial) -> Reply:
        logger.info("request %s refused (%d): %s", call.request_id, denial.status, denial.message)
        headers = {"x-thrifty-request-id": call.request_id, **denial.headers}
        response = error_response(
            call.endpoint.kind,
            denial.status,
            denial.message,
            error_type=denial.error_type,
            headers=headers,
        )
        return Reply(response)


def check_provider_keys(config: GatewayConfig) -> None:
    """Require every provider to have its own key, so no virtual key is forwarded upstream.

    A provider without ``api_key_env`` receives the client's credentials,
    which with virtual keys on would be the virtual key itself.
    """
    for provider in config.providers.values():
        if provider.api_key_env is None:
            hint = (
                "the --sandbox providers have none, so run `thrifty sandbox` and name it under "
                "providers: with an api_key_env (the sandbox accepts any key)"
                if config.sandbox
                else f"set providers.{provider.name}.api_key_env in thrifty.yaml"
            )
            raise ConfigError(
                f"provider '{provider.name}' has no api_key_env, but virtual keys are on "
                f"(a master key is set), so the gateway must call it with its own key; {hint}"
            )
        provider.api_key()
