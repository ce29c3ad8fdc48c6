"""Automatic throttling: what to change on a request while its budgets run low.

Each rule names a fraction of a budget; a rule applies while any budget the
request counts against has that much of its limit spent or reserved. Every
applying rule acts, and each action taken is recorded on the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from thrifty.control.admission import AdmissionRequest
from thrifty.control.config import ThrottleRule

# Flex processing is an OpenAI service tier of the chat completions and responses APIs.
_FLEX_ENDPOINTS = frozenset({"chat.completions", "responses"})


@dataclass(slots=True)
class Throttle:
    """The changes throttling makes to one request.

    ``model`` and ``tier`` are None when unchanged; ``factor`` scales the
    request's rate limits; ``actions`` is what the ledger records.
    """

    model: str | None = None
    tier: str | None = None
    factor: Decimal = Decimal(1)
    actions: list[dict[str, Any]] = field(default_factory=list)


def plan_throttle(
    rules: tuple[ThrottleRule, ...], fraction: Decimal, request: AdmissionRequest
) -> Throttle:
    """Return the changes the rules at or below ``fraction`` make to ``request``."""
    throttle = Throttle()
    for rule in rules:
        if fraction < rule.at:
            continue
        at = format(rule.at, "f")
        if rule.action == "flex" and _can_use_flex(request, throttle):
            throttle.tier = "flex"
            throttle.actions.append({"action": "flex", "at": at, "from_tier": request.tier})
        elif rule.action == "cheaper_model":
            current = throttle.model or request.model
            cheaper = rule.models.get(current)
            if cheaper is not None and cheaper != current:
                throttle.model = cheaper
                throttle.actions.append(
                    {
                        "action": "cheaper_model",
                        "at": at,
                        "from_model": current,
                        "to_model": cheaper,
                    }
                )
        elif rule.action == "lower_rate_limit":
            throttle.factor = min(throttle.factor, rule.factor)
            throttle.actions.append(
                {"action": "lower_rate_limit", "at": at, "factor": format(rule.factor, "f")}
            )
    return throttle


def _can_use_flex(request: AdmissionRequest, throttle: Throttle) -> bool:
    if request.kind != "openai" or request.endpoint not in _FLEX_ENDPOINTS:
        return False
    return throttle.tier is None and request.tier not in ("flex", "priority")
