"""Warnings about models without a price: one per model per UTC day.

An unpriced request is recorded with cost NULL and flagged, so the log line
is a prompt to add a price, not the record of the request. A gateway that
serves an unpriced model all day logs it once, not once per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

logger = logging.getLogger(__name__)

# Distinct unpriced models warned about per day. Model names come from
# clients, so past this many a day the rest are counted in one last line.
MAX_WARNINGS_PER_DAY = 1000


def utc_today() -> date:
    return datetime.now(UTC).date()


class UnpricedLog:
    """Logs a warning the first time each (provider, model) is unpriced on a UTC day.

    ``today`` is the clock it reads; tests pass their own.
    """

    def __init__(self, *, today: Callable[[], date] | None = None) -> None:
        self._today = today or utc_today
        self._day: date | None = None
        self._seen: set[tuple[str, str]] = set()
        self._capped = False

    def record(self, provider: str, model: str, reason: str) -> bool:
        """Log ``reason`` unless this model was already logged today; return whether it was."""
        today = self._today()
        if today != self._day:
            self._day = today
            self._seen.clear()
            self._capped = False
        key = (provider, model)
        if key in self._seen:
            return False
        if len(self._seen) >= MAX_WARNINGS_PER_DAY:
            if not self._capped:
                self._capped = True
                logger.warning(
                    "more than %d models were unpriced on %s; not naming the others today, "
                    "run `thrifty prices missing` to list them",
                    MAX_WARNINGS_PER_DAY,
                    today.isoformat(),
                )
            return False
        self._seen.add(key)
        logger.warning(
            "model %r of provider %r is unpriced, its requests are recorded with no cost: %s",
            model,
            provider,
            reason,
        )
        return True
