"""Month-end spend projection from the daily series."""

from __future__ import annotations

import calendar
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal

from thrifty.advisor.traffic import Traffic
from thrifty.control.model import Budget
from thrifty.control.scopes import Scope
from thrifty.ledger import Ledger, ReportQuery

# The end of a projection that an overspend check compares with the limit.
Bound = Literal["low", "central"]

# Two standard deviations each side: about 95% of months, if daily spend
# varies independently around its mean (an assumption, stated in the output).
INTERVAL_SIGMAS = Decimal(2)


@dataclass(frozen=True, slots=True)
class Projection:
    """Spend so far this month and the projected total, with an interval."""

    key: str
    month: str
    spent: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal
    days_seen: int


@dataclass(frozen=True, slots=True)
class BudgetProjection:
    """A monthly budget and the month-end projection of its scope's spend."""

    budget: Budget
    projection: Projection

    def bound_usd(self, bound: Bound) -> Decimal:
        return self.projection.low if bound == "low" else self.projection.projected


def project_month(traffic: Traffic, now: datetime, *, by: str | None = None) -> list[Projection]:
    """Project each group's month-end spend: spent so far plus the mean day times days left.

    ``by`` groups by ``feature`` or ``team``; None gives one total.
    """
    month_start = now.date().replace(day=1)
    daily: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for record in traffic.records:
        day = record.started_at.date()
        if day < month_start or day > now.date():
            continue
        key = getattr(record, by) or "(none)" if by else "total"
        daily[key][day] += record.cost_usd or Decimal(0)
    return [project_series(key, series, now) for key, series in sorted(daily.items())]


def project_series(key: str, series: Mapping[date, Decimal], now: datetime) -> Projection:
    """Project one daily spend series of this month to the month's end.

    Days of the month up to today without an entry count as $0.
    """
    month_start = now.date().replace(day=1)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    days_elapsed = (now.date() - month_start).days + 1
    days_left = days_in_month - days_elapsed
    values = [series.get(_day(month_start, offset), Decimal(0)) for offset in range(days_elapsed)]
    spent = sum(values, Decimal(0))
    mean = spent / days_elapsed
    spread = Decimal(str(statistics.stdev(values))) if len(values) > 1 else mean
    margin = INTERVAL_SIGMAS * spread * Decimal(str(math.sqrt(max(days_left, 0))))
    projected = spent + mean * days_left
    return Projection(
        key=key,
        month=month_start.strftime("%Y-%m"),
        spent=spent,
        projected=projected,
        low=max(spent, projected - margin),
        high=projected + margin,
        days_seen=days_elapsed,
    )


def project_budgets(
    ledger: Ledger, budgets: Iterable[Budget], now: datetime
) -> list[BudgetProjection]:
    """Project the month-end spend of each monthly budget's scope from the ledger's daily series.

    Budgets of other periods are left out: their windows do not end with the month.
    """
    month_start = datetime.combine(now.date().replace(day=1), time(), tzinfo=UTC)
    projections = []
    for budget in budgets:
        if budget.period != "monthly":
            continue
        query = ReportQuery(
            by=["day"], since=month_start, until=now, where=scope_where(budget.scope)
        )
        series = {
            date.fromisoformat(str(group.values["day"])): group.totals.cost_usd
            for group in ledger.report(query).groups
        }
        projections.append(BudgetProjection(budget, project_series(str(budget.scope), series, now)))
    return projections


def overspends(
    projections: Iterable[BudgetProjection], *, bound: Bound = "central"
) -> list[BudgetProjection]:
    """Return the projections whose ``bound`` is above their budget's limit.

    ``central`` is the projection itself; ``low`` is the bottom of its interval,
    so an overspend by ``low`` is likely even if the rest of the month is quiet.
    """
    return [item for item in projections if item.bound_usd(bound) > item.budget.limit_usd]


def scope_where(scope: Scope) -> dict[str, str]:
    """Return the ledger report filter that selects a control scope's requests."""
    if scope.kind == "all":
        return {}
    if scope.kind == "tag":
        name, _, value = scope.value.partition("=")
        return {f"tag:{name}": value}
    return {scope.kind: scope.value}


def _day(start: date, offset: int) -> date:
    return date.fromordinal(start.toordinal() + offset)
