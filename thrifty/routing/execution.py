"""Executing a route: the models one request tries, in order, and what each attempt did.

A routed request tries ``RoutePlan.candidates`` one after the other. It
moves to the next candidate when a call fails with an error worth another
model (``should_fall_back``) or, on a cascade route, when a check rejects
the answer. The gateway runs the attempts (``thrifty.gateway.attempts``);
this module holds the decisions that need no network.

Every attempt is one upstream call and one ledger record. Its
``details["routing"]`` is the route's decision plus ``AttemptInfo``: the
attempt's number, the model it requested, its outcome, and ``request_id``,
the id of the request's last record, which every attempt of the request
shares.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from thrifty.routing.router import Decision, Router

Outcome = Literal["served", "escalated", "fell_back", "retried", "failed"]

# Statuses whose Retry-After may be waited out on the same model.
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RoutePlan:
    """A routed request's decision and the models it may try, in order."""

    router: Router
    decision: Decision
    candidates: tuple[str, ...]

    @property
    def checked(self) -> bool:
        """Whether answers are checked, so that a rejected one moves to the next candidate."""
        return self.decision.policy == "cascade"


@dataclass(slots=True)
class AttemptInfo:
    """The outcome of one attempt of a routed request, for its ledger record.

    ``prior_cost_usd`` is the exact sum of the other attempts' costs, None
    when one of them is unpriced. It and ``attempts``, the request's number of
    attempts, are set on the attempt whose record has the request's id.
    """

    route: str
    request_id: str
    attempt: int
    model_requested: str
    outcome: Outcome = "served"
    outcome_reason: str | None = None
    prior_cost_usd: Decimal | None = Decimal(0)
    attempts: int = 1

    def to_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "request_id": self.request_id,
            "attempt": self.attempt,
            "model_requested": self.model_requested,
            "outcome": self.outcome,
        }
        if self.outcome_reason is not None:
            details["outcome_reason"] = self.outcome_reason
        return details


def plan_route(router: Router, decision: Decision) -> RoutePlan:
    """Order the candidates: the chosen model, a cascade's escalation, then the fallbacks."""
    ordered = [decision.model, *decision.escalation, *decision.fallbacks]
    return RoutePlan(router, decision, tuple(dict.fromkeys(ordered)))


def retry_wait_s(plan: RoutePlan, status: int, headers: Mapping[str, str]) -> float | None:
    """Return the wait before retrying the same model, or None to move to the next one.

    Only a 429 or 503 whose Retry-After is at most the route's
    ``retry_after_max_s`` is retried; without that setting none is.
    """
    limit = plan.router.retry_after_max_s
    if limit is None or status not in RETRY_AFTER_STATUSES:
        return None
    wait = retry_after_s(headers)
    if wait is None or wait > limit:
        return None
    return wait


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Read ``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds or an HTTP date)."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
