"""The traffic the advisor studies: ledger records over a period, and how to scale it to a month."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from thrifty.ledger import Ledger
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.rows import row_to_record
from thrifty.ledger.schema import requests
from thrifty.usage import Usage

# The average month of the Gregorian calendar, in days.
DAYS_PER_MONTH = Decimal("30.436875")
# A period shorter than this is scaled to a month as if it lasted this long,
# so a burst of a few seconds is not multiplied by millions.
MIN_PERIOD = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Successful, priced requests of a period, oldest first."""

    records: tuple[RequestRecord, ...]
    since: datetime | None
    until: datetime | None
    unpriced_requests: int
    failed_requests: int

    @property
    def period(self) -> timedelta:
        """The span the records cover: the query bounds where given, else first to last."""
        if not self.records:
            return MIN_PERIOD
        start = self.since or self.records[0].started_at
        end = self.until or self.records[-1].started_at
        return max(end - start, MIN_PERIOD)

    @property
    def monthly_factor(self) -> Decimal:
        """Multiply a sum over the period by this to get a month's worth."""
        seconds = Decimal(int(self.period.total_seconds()))
        return DAYS_PER_MONTH * 86400 / seconds

    @property
    def spend(self) -> Decimal:
        return sum((record.cost_usd or Decimal(0) for record in self.records), Decimal(0))


def load_traffic(
    ledger: Ledger, *, since: datetime | None = None, until: datetime | None = None
) -> Traffic:
    """Read the period's records: priced successes to study, and counts of the rest."""
    kept: list[RequestRecord] = []
    unpriced = failed = 0
    for record in _records(ledger, since, until):
        if record.http_status != 200 or record.error_type is not None:
            failed += 1
        elif record.cost_usd is None:
            unpriced += 1
        else:
            kept.append(record)
    return Traffic(tuple(kept), since, until, unpriced, failed)


def usage_of(record: RequestRecord) -> Usage:
    """Rebuild the normalized usage a record was priced from."""
    return Usage(
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cache_write_tokens=record.cache_write_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens,
        reasoning_tokens=record.reasoning_tokens,
    )


def _records(
    ledger: Ledger, since: datetime | None, until: datetime | None
) -> Iterator[RequestRecord]:
    query = sa.select(requests).order_by(requests.c.started_at, requests.c.request_id)
    if since is not None:
        query = query.where(requests.c.started_at >= since)
    if until is not None:
        query = query.where(requests.c.started_at < until)
    with ledger.engine.connect() as connection:
        for row in connection.execution_options(yield_per=2000).execute(query).mappings():
            yield row_to_record(row)
