"""Savings of Batch and Flex: their cost against the same tokens at standard prices.

Batch result records keep their synchronous price in
``details["batch"]["standard_cost_usd"]`` and Flex calls theirs in
``details["flex"]["standard_cost_usd"]``; these sums read both in SQL, on
SQLite and PostgreSQL. Savings count priced results only, since an
unpriced record has no cost to compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.ledger import Ledger
from thrifty.ledger.report import ReportQuery, request_conditions
from thrifty.ledger.schema import ExactDecimal, requests
from thrifty.ledger.sqlfuncs import ExactSum, JsonFlag, JsonText
from thrifty.pricing.rates import EXACT

_r = requests.c


@dataclass(frozen=True, slots=True)
class JobCost:
    """The recorded results of one batch job and what they cost."""

    results: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)
    unpriced: int = 0

    @property
    def savings_usd(self) -> Decimal:
        return EXACT.subtract(self.standard_cost_usd, self.cost_usd)


@dataclass(frozen=True, slots=True)
class BatchSavings:
    """Batch results in a period, their cost at batch rates and at synchronous rates."""

    results: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        return EXACT.subtract(self.standard_cost_usd, self.cost_usd)


@dataclass(frozen=True, slots=True)
class FlexSavings:
    """Flex calls in a period.

    ``calls`` counts calls sent at the Flex tier, ``fallbacks`` those that
    fell back to the default tier and ``rejections`` the 429 attempts.
    ``served`` counts calls the provider served at Flex, whose cost is
    ``cost_usd`` against ``standard_cost_usd`` at the standard price.
    """

    calls: int = 0
    fallbacks: int = 0
    rejections: int = 0
    served: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        return EXACT.subtract(self.standard_cost_usd, self.cost_usd)

    @property
    def fallback_rate(self) -> float | None:
        return None if self.calls == 0 else self.fallbacks / self.calls


def job_cost(connection: sa.Connection, job_id: str) -> JobCost:
    """Sum the ledger records of one batch job."""
    standard = _decimal(JsonText(_r.details, "batch", "standard_cost_usd"))
    row = connection.execute(
        sa.select(
            sa.func.count(),
            ExactSum(_r.cost_usd),
            ExactSum(standard),
            _count(_r.unpriced.is_(True)),
        ).where(JsonText(_r.details, "batch", "job") == job_id)
    ).one()
    return JobCost(int(row[0]), _amount(row[1]), _amount(row[2]), int(row[3]))


def batch_savings(
    connection: sa.Connection, conditions: Sequence[ColumnElement[bool]] = ()
) -> BatchSavings:
    """Sum the batch results among the requests matching ``conditions``."""
    standard = JsonText(_r.details, "batch", "standard_cost_usd")
    is_batch = JsonText(_r.details, "batch", "job").is_not(None)
    priced = sa.and_(is_batch, standard.is_not(None), _r.cost_usd.is_not(None))
    row = connection.execute(
        sa.select(
            _count(is_batch),
            ExactSum(sa.case((priced, _r.cost_usd))),
            ExactSum(sa.case((priced, _decimal(standard)))),
        ).where(*conditions)
    ).one()
    return BatchSavings(int(row[0]), _amount(row[1]), _amount(row[2]))


def flex_savings(
    connection: sa.Connection, conditions: Sequence[ColumnElement[bool]] = ()
) -> FlexSavings:
    """Sum the Flex calls among the requests matching ``conditions``."""
    standard = JsonText(_r.details, "flex", "standard_cost_usd")
    served = sa.and_(
        _r.service_tier_served == "flex", standard.is_not(None), _r.cost_usd.is_not(None)
    )
    row = connection.execute(
        sa.select(
            _count(JsonFlag(_r.details, "flex", "requested")),
            _count(JsonFlag(_r.details, "flex", "fallback")),
            _count(JsonFlag(_r.details, "flex", "rejected")),
            _count(served),
            ExactSum(sa.case((served, _r.cost_usd))),
            ExactSum(sa.case((served, _decimal(standard)))),
        ).where(*conditions)
    ).one()
    return FlexSavings(
        int(row[0]), int(row[1]), int(row[2]), int(row[3]), _amount(row[4]), _amount(row[5])
    )


def _decimal(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(text, ExactDecimal())


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _amount(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class LeverSavings:
    """The Batch and Flex savings among the requests of one report."""

    batch: BatchSavings
    flex: FlexSavings


def lever_savings(ledger: Ledger, query: ReportQuery) -> LeverSavings:
    """Sum the Batch and Flex savings of the requests a report covers."""
    conditions = request_conditions(query)
    with ledger.engine.connect() as connection:
        return LeverSavings(
            batch_savings(connection, conditions), flex_savings(connection, conditions)
        )


def savings_json(savings: LeverSavings) -> dict[str, Any]:
    """Return the savings as JSON, money as decimal strings."""
    batch, flex = savings.batch, savings.flex
    return {
        "batch": {
            "results": batch.results,
            "cost_usd": format(batch.cost_usd, "f"),
            "standard_cost_usd": format(batch.standard_cost_usd, "f"),
            "savings_usd": format(batch.savings_usd, "f"),
        },
        "flex": {
            "calls": flex.calls,
            "served": flex.served,
            "fallbacks": flex.fallbacks,
            "rejections": flex.rejections,
            "fallback_rate": flex.fallback_rate,
            "cost_usd": format(flex.cost_usd, "f"),
            "standard_cost_usd": format(flex.standard_cost_usd, "f"),
            "savings_usd": format(flex.savings_usd, "f"),
        },
    }


def savings_lines(savings: LeverSavings) -> list[str]:
    """Return one line for each lever the report's requests used, for people."""
    lines: list[str] = []
    batch, flex = savings.batch, savings.flex
    if batch.results:
        lines.append(
            f"Batch: {batch.results:,} results cost ${batch.cost_usd:,.6f} at batch rates and "
            f"would cost ${batch.standard_cost_usd:,.6f} at synchronous rates: "
            f"saved ${batch.savings_usd:,.6f}"
        )
    if flex.calls:
        rate = flex.fallback_rate or 0.0
        lines.append(
            f"Flex: {flex.calls:,} calls, {flex.served:,} served at Flex for "
            f"${flex.cost_usd:,.6f} (${flex.standard_cost_usd:,.6f} at standard prices: "
            f"saved ${flex.savings_usd:,.6f}); {flex.fallbacks:,} fell back to the default "
            f"tier ({rate:.1%}) after {flex.rejections:,} rejections"
        )
    return lines
