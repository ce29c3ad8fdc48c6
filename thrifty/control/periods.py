"""Budget periods: UTC calendar periods, rolling windows and the lifetime.

A calendar period (``daily``, ``weekly`` from Monday, ``monthly``,
``quarterly``) starts at 00:00 UTC on its first day and ends exactly where
the next one starts, so a budget resets at the boundary itself. A rolling
period (``rolling:24h``, ``rolling:7d``, ``rolling:90m``) counts the spend of
the last span of time, kept in 60 buckets: spend leaves the window up to one
bucket late, never early. ``lifetime`` never resets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thrifty.errors import ControlError

CALENDAR_PERIODS = ("daily", "weekly", "monthly", "quarterly")
ROLLING_BUCKETS = 60

_ROLLING = re.compile(r"^rolling:(\d+)([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Window:
    """The span of one period that contains a given instant.

    ``key`` names it in counter keys (``2025-03`` for March 2025). ``end``
    is None for the lifetime. For a rolling period ``start`` is the start of
    the oldest bucket still counted and ``bucket_s`` the bucket length.
    """

    key: str
    start: datetime | None
    end: datetime | None
    bucket_s: int = 0

    @property
    def rolling(self) -> bool:
        return self.bucket_s > 0


def check_period(period: str) -> str:
    """Return ``period`` if it is valid; raise ControlError otherwise."""
    if period in CALENDAR_PERIODS or period == "lifetime":
        return period
    match = _ROLLING.match(period)
    if match is None or int(match.group(1)) == 0:
        raise ControlError(
            f"invalid budget period {period!r}; use daily, weekly, monthly, quarterly, "
            "lifetime or rolling:N followed by m, h or d (e.g. rolling:24h)"
        )
    if rolling_seconds(period) < ROLLING_BUCKETS:
        raise ControlError(
            f"rolling period {period!r} is shorter than a minute; use rolling:1m or more"
        )
    return period


def rolling_seconds(period: str) -> int:
    match = _ROLLING.match(period)
    if match is None:
        raise ControlError(f"{period!r} is not a rolling period")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def window_at(period: str, now: datetime) -> Window:
    """Return the window of ``period`` that contains ``now`` (timezone-aware)."""
    now = now.astimezone(UTC)
    if period == "lifetime":
        return Window("lifetime", None, None)
    if period.startswith("rolling:"):
        span = rolling_seconds(period)
        bucket = span // ROLLING_BUCKETS
        current = int(now.timestamp()) // bucket
        start = datetime.fromtimestamp((current - ROLLING_BUCKETS + 1) * bucket, UTC)
        return Window("rolling", start, now, bucket_s=bucket)
    start = period_start(period, now)
    end = next_start(period, start)
    return Window(_label(period, start), start, end)


def period_start(period: str, now: datetime) -> datetime:
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    if period == "quarterly":
        return day.replace(month=(now.month - 1) // 3 * 3 + 1, day=1)
    raise ControlError(f"{period!r} is not a calendar period")


def next_start(period: str, start: datetime) -> datetime:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    months = 1 if period == "monthly" else 3
    month_index = start.month - 1 + months
    return start.replace(year=start.year + month_index // 12, month=month_index % 12 + 1)


def _label(period: str, start: datetime) -> str:
    if period == "monthly":
        return start.strftime("%Y-%m")
    if period == "quarterly":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return start.strftime("%Y-%m-%d")
