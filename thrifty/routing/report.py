"""Routing savings: each route's cost against the same requests on its strongest model.

The last record of each routed request (the one whose id the client got)
keeps two sums in ``details["routing"]``. ``request_cost_usd`` is the exact
sum of the costs of every attempt of the request. ``strongest_cost_usd``,
set when the request was served, is the cost of its answer's tokens at the
list price of the route's strongest model, priced with ``CostEngine``.
Reports sum both in SQL, on SQLite and PostgreSQL.

NOTE: the strongest model's cost reuses the served model's token counts,
so between models with different tokenizers it is an estimate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.errors import PricingError
from thrifty.ledger import Ledger
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.report import ReportQuery, request_conditions
from thrifty.ledger.schema import ExactDecimal, requests
from thrifty.ledger.sqlfuncs import ExactSum, JsonText
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.rates import EXACT
from thrifty.usage import Usage

logger = logging.getLogger(__name__)

_r = requests.c


@dataclass(frozen=True, slots=True)
class RouteSavings:
    """One route's requests, attempts and costs.

    ``cost_usd`` sums every attempt. ``compared_requests`` are the served
    requests with a price on both sides, whose attempts cost
    ``compared_cost_usd`` and whose answers would cost
    ``strongest_cost_usd`` on the strongest model.
    """

    route: str
    requests: int = 0
    attempts: int = 0
    escalations: int = 0
    fallbacks: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_attempts: int = 0
    compared_requests: int = 0
    compared_cost_usd: Decimal = Decimal(0)
    strongest_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        return EXACT.subtract(self.strongest_cost_usd, self.compared_cost_usd)


def strongest_cost(
    engine: CostEngine, provider: str, model: str, record: RequestRecord, at: datetime
) -> Decimal | None:
    """Price a record's tokens on ``model`` at the default tier; None when it has no price."""
    usage = Usage(
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cache_write_tokens=record.cache_write_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens,
        reasoning_tokens=record.reasoning_tokens,
    )
    try:
        cost = engine.price(provider, model, usage, at=at)
    except PricingError as exc:
        logger.info("request %s: no price on %s to compare: %s", record.request_id, model, exc)
        return None
    return cost.cost_usd


@dataclass(frozen=True, slots=True)
class RouteReport:
    """The savings of every route among a report's requests, by route name."""

    routes: list[RouteSavings]

    @property
    def json(self) -> list[dict[str, Any]]:
        return route_savings_json(self.routes)

    @property
    def lines(self) -> list[str]:
        return route_savings_lines(self.routes)


def route_report(ledger: Ledger, query: ReportQuery) -> RouteReport:
    """Sum each route's attempts and costs among the requests a report covers."""
    return RouteReport(route_savings(ledger, query))


def route_savings(ledger: Ledger, query: ReportQuery) -> list[RouteSavings]:
    """Sum each route's attempts and costs among the requests a report covers."""
    route = JsonText(_r.details, "routing", "route")
    outcome = JsonText(_r.details, "routing", "outcome")
    request_cost = JsonText(_r.details, "routing", "request_cost_usd")
    strongest = JsonText(_r.details, "routing", "strongest_cost_usd")
    is_last = JsonText(_r.details, "routing", "request_id") == _r.request_id
    compared = sa.and_(is_last, request_cost.is_not(None), strongest.is_not(None))
    statement = (
        sa.select(
            route,
            _count(is_last),
            sa.func.count(),
            _count(outcome == "escalated"),
            _count(outcome.in_(("fell_back", "retried"))),
            ExactSum(_r.cost_usd),
            _count(_r.unpriced.is_(True)),
            _count(compared),
            ExactSum(sa.case((compared, _decimal(request_cost)))),
            ExactSum(sa.case((compared, _decimal(strongest)))),
        )
        .where(route.is_not(None), *request_conditions(query))
        .group_by(route)
        .order_by(route)
    )
    with ledger.engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [
        RouteSavings(
            route=row[0],
            requests=int(row[1]),
            attempts=int(row[2]),
            escalations=int(row[3]),
            fallbacks=int(row[4]),
            cost_usd=_amount(row[5]),
            unpriced_attempts=int(row[6]),
            compared_requests=int(row[7]),
            compared_cost_usd=_amount(row[8]),
            strongest_cost_usd=_amount(row[9]),
        )
        for row in rows
    ]


def route_savings_json(savings: list[RouteSavings]) -> list[dict[str, Any]]:
    """Return the routes' savings as JSON, money as exact decimal strings."""
    return [
        {
            "route": item.route,
            "requests": item.requests,
            "attempts": item.attempts,
            "escalations": item.escalations,
            "fallbacks": item.fallbacks,
            "cost_usd": format(item.cost_usd, "f"),
            "unpriced_attempts": item.unpriced_attempts,
            "compared_requests": item.compared_requests,
            "compared_cost_usd": format(item.compared_cost_usd, "f"),
            "strongest_cost_usd": format(item.strongest_cost_usd, "f"),
            "savings_usd": format(item.savings_usd, "f"),
        }
        for item in savings
    ]


def route_savings_lines(savings: list[RouteSavings]) -> list[str]:
    """Return one line per route, for people."""
    return [
        f"Route {item.route}: {item.requests:,} requests in {item.attempts:,} attempts "
        f"({item.escalations:,} escalations, {item.fallbacks:,} fallbacks); "
        f"{item.compared_requests:,} served requests cost ${item.compared_cost_usd:,.6f} and "
        f"would cost ${item.strongest_cost_usd:,.6f} on the strongest model: "
        f"saved ${item.savings_usd:,.6f}"
        for item in savings
    ]


def _decimal(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(text, ExactDecimal())


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _amount(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
