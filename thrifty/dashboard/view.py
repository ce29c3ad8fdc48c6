"""The time range, resolution and filters of a dashboard request.

Every data endpoint takes the same query parameters:

- ``since`` (inclusive) and ``until`` (exclusive): an ISO-8601 date or
  datetime, UTC unless it has an offset. The default range is the 30 UTC
  days that end with today.
- ``resolution``: ``hour``, ``day`` (the default) or ``month`` buckets.
- one parameter per filter dimension (``feature=chat``, ``team=search``...),
  and ``tag=KEY=VALUE``, repeatable, for tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from thrifty.errors import RequestError
from thrifty.ledger import ReportQuery

Resolution = Literal["hour", "day", "month"]
RESOLUTIONS: tuple[Resolution, ...] = ("hour", "day", "month")

# Query parameters that filter requests, in the order the filter bar shows them.
FILTER_DIMENSIONS = (
    "provider",
    "model",
    "feature",
    "team",
    "project",
    "key",
    "user",
    "session",
    "service_tier",
    "endpoint",
    "cache_status",
)
# Dimensions the spend chart can be stacked by.
STACK_DIMENSIONS = ("model", "provider", "feature", "team", "key", "project")

DEFAULT_DAYS = 30
# More buckets than this make an unreadable chart and a slow query.
MAX_BUCKETS = 1000
_BUCKET_SECONDS = {"hour": 3600, "day": 86400, "month": 28 * 86400}


@dataclass(frozen=True, slots=True)
class View:
    """A validated time range, bucket resolution and set of filters."""

    since: datetime
    until: datetime
    resolution: Resolution = "day"
    where: dict[str, str] = field(default_factory=dict)

    def query(self, by: Sequence[str] = (), *, limit: int | None = None) -> ReportQuery:
        """Return the ledger report query for this view, grouped by ``by``."""
        return ReportQuery(
            by=list(by), since=self.since, until=self.until, where=dict(self.where), limit=limit
        )

    def bucket_dimension(self) -> Literal["hour", "day"]:
        """Return the report dimension the chart groups by; months are added up from days."""
        return "hour" if self.resolution == "hour" else "day"

    def public(self) -> dict[str, object]:
        """Return the view as JSON-ready values, as the pages echo it back."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "resolution": self.resolution,
            "filters": dict(self.where),
        }


def parse_view(params: Mapping[str, str], tags: Sequence[str], now: datetime) -> View:
    """Build a View from query parameters; raise RequestError (400) naming a bad one."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    until = _parse_time(params.get("until"), "until") or today + timedelta(days=1)
    since = _parse_time(params.get("since"), "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise RequestError(
            400,
            f"since {since.isoformat()} is not before until {until.isoformat()}; "
            "pick a start before the end",
            param="since",
        )

    resolution = _resolution(params.get("resolution") or "day")
    buckets = (until - since).total_seconds() / _BUCKET_SECONDS[resolution]
    if buckets > MAX_BUCKETS:
        raise RequestError(
            400,
            f"{resolution} resolution over {since.date()} to {until.date()} makes "
            f"{int(buckets)} buckets, more than {MAX_BUCKETS}; "
            "narrow the range or pick a coarser resolution",
            param="resolution",
        )

    where = {name: params[name] for name in FILTER_DIMENSIONS if params.get(name)}
    where.update(_parse_tags(tags))
    return View(since=since, until=until, resolution=resolution, where=where)


def choice(params: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    """Return parameter ``name`` if it is one of ``allowed``; raise RequestError otherwise."""
    value = params.get(name) or default
    if value not in allowed:
        raise RequestError(
            400, f"invalid {name} {value!r}; use one of {', '.join(allowed)}", param=name
        )
    return value


def positive_int(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """Return parameter ``name`` as a whole number from 1 to ``maximum``."""
    text = params.get(name)
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise RequestError(
            400, f"invalid {name} {text!r}; use a whole number from 1 to {maximum}", param=name
        )
    return int(text)


def _resolution(text: str) -> Resolution:
    for resolution in RESOLUTIONS:
        if text == resolution:
            return resolution
    raise RequestError(
        400,
        f"invalid resolution {text!r}; use one of {', '.join(RESOLUTIONS)}",
        param="resolution",
    )


def _parse_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RequestError(
            400,
            f"invalid {name} {text!r}; use an ISO-8601 date or datetime such as 2026-11-01",
            param=name,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parse_tags(items: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key, sign, value = item.partition("=")
        if not sign or not key.strip() or not value:
            raise RequestError(
                400, f"invalid tag filter {item!r}; write it as tag=KEY=VALUE", param="tag"
            )
        tags[f"tag:{key.strip()}"] = value
    return tags
