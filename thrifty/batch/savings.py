"""Savings of Batch and Flex: their cost against the same tokens at standard prices.

Batch result records keep their synchronous price in
``details["batch"]["standard_cost_usd"]`` and Flex calls theirs in
``details["flex"]["standard_cost_usd"]``; these sums read both in SQL, on
SQLite and PostgreSQL. Savings count priced results only, since an
unpriced record has no cost to compare.

``batch_savings`` and ``flex_savings`` read request rows. ``lever_savings``,
which ``thrifty report`` shows, reads the same sums from the rollups
(see ``thrifty.ledger.savings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.ledger import Ledger
from thrifty.ledger.levers import (
    BatchSavings,
    FlexSavings,
    LeverSavings,
    levers_of,
    savings_json,
    savings_lines,
)
from thrifty.ledger.report import ReportQuery
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


def lever_savings(ledger: Ledger, query: ReportQuery) -> LeverSavings:
    """Sum the Batch and Flex savings of the requests a report covers, from the rollups."""
    totals_only = ReportQuery(since=query.since, until=query.until, where=dict(query.where))
    return levers_of(ledger.report(totals_only).totals)


__all__ = [
    "BatchSavings",
    "FlexSavings",
    "JobCost",
    "LeverSavings",
    "batch_savings",
    "flex_savings",
    "job_cost",
    "lever_savings",
    "savings_json",
    "savings_lines",
]
