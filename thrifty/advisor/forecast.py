"""Month-end spend projection from the daily series."""

from __future__ import annotations

import calendar
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from thrifty.advisor.traffic import Traffic

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


def project_month(traffic: Traffic, now: datetime, *, by: str | None = None) -> list[Projection]:
    """Project each group's month-end spend: spent so far plus the mean day times days left.

    ``by`` groups by ``feature`` or ``team``; None gives one total.
    """
    month_start = now.date().replace(day=1)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    daily: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for record in traffic.records:
        day = record.started_at.date()
        if day < month_start or day > now.date():
            continue
        key = getattr(record, by) or "(none)" if by else "total"
        daily[key][day] += record.cost_usd or Decimal(0)

    days_elapsed = (now.date() - month_start).days + 1
    days_left = days_in_month - days_elapsed
    projections = []
    for key, series in sorted(daily.items()):
        values = [
            series.get(_day(month_start, offset), Decimal(0)) for offset in range(days_elapsed)
        ]
        spent = sum(values, Decimal(0))
        mean = spent / days_elapsed
        spread = Decimal(str(statistics.stdev(values))) if len(values) > 1 else mean
        margin = INTERVAL_SIGMAS * spread * Decimal(str(math.sqrt(max(days_left, 0))))
        projected = spent + mean * days_left
        projections.append(
            Projection(
                key=key,
                month=month_start.strftime("%Y-%m"),
                spent=spent,
                projected=projected,
                low=max(spent, projected - margin),
                high=projected + margin,
                days_seen=days_elapsed,
            )
        )
    return projections


def _day(start: date, offset: int) -> date:
    return date.fromordinal(start.toordinal() + offset)
