"""What admission decides: who is calling, and whether a request may go ahead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from thrifty.control.counters import BudgetCharge, RateCharge
from thrifty.control.estimate import Estimate
from thrifty.control.model import VirtualKey

REMAINING_HEADER = "x-thrifty-budget-remaining-usd"


class Attributable(Protocol):
    """A request's attribution (``thrifty.gateway.attribution.Attribution``)."""

    team: str | None
    project: str | None
    user: str | None
    feature: str | None
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the master key, a virtual key, or anyone (no master key is set)."""

    kind: Literal["master", "key", "open"]
    key: VirtualKey | None = None

    @property
    def key_id(self) -> str | None:
        return None if self.key is None else self.key.key_id


@dataclass(frozen=True, slots=True)
class Denial:
    """A request refused before it reaches a provider."""

    status: int
    message: str
    error_type: str = "invalid_request_error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What admission reads from one request."""

    request_id: str
    endpoint: str
    kind: str
    provider: str
    price_provider: str
    model: str
    tier: str | None
    body: Mapping[str, Any]


@dataclass(slots=True)
class Ticket:
    """An admitted request: what it reserved, and what admission changed.

    ``counted`` is False when the counters were unreachable and the gateway
    failed open, so the ticket has no reservation. ``model`` and ``tier`` are
    set when throttling moved the request; ``throttled`` lists each action.
    """

    request_id: str
    principal: Principal
    estimate: Estimate | None
    budgets: list[BudgetCharge]
    rates: list[RateCharge]
    counted: bool = True
    remaining_usd: Decimal | None = None
    model: str | None = None
    tier: str | None = None
    throttled: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = False
    # Cost and tokens of the request's earlier upstream calls (Flex rejections,
    # routing attempts), settled together with its final record.
    prior_cost_usd: Decimal = Decimal(0)
    prior_tokens: int = 0

    def details(self) -> dict[str, Any]:
        """Return the annotations recorded on the request under ``details["control"]``."""
        reserved = None if self.estimate is None else self.estimate.cost_usd
        return {
            "principal": self.principal.kind,
            "reserved_usd": None if reserved is None else format(reserved, "f"),
            "reserved_tokens": None if self.estimate is None else self.estimate.tokens,
            "budgets": [charge.budget.budget_id for charge in self.budgets],
            "counted": self.counted,
            "throttled": list(self.throttled),
        }
