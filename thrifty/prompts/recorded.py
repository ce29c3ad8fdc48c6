"""Savings the gateway's prompt optimization step recorded: ``details["prompts"]`` in the ledger.

The ledger keeps no request bodies, so ``thrifty prompts analyze --db`` cannot
analyze prompts afresh. It sums the annotations the step wrote instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from thrifty.errors import LedgerError
from thrifty.ledger import Ledger
from thrifty.ledger.schema import requests


@dataclass(slots=True)
class RecordedTotals:
    """Sums of the step's annotations over a set of ledger records."""

    requests: int = 0
    input_tokens_before: int = 0
    input_tokens_after: int = 0
    saved_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0
    transforms: dict[str, int] = field(default_factory=dict)

    def add(self, annotation: dict[str, Any]) -> None:
        self.requests += 1
        self.input_tokens_before += int(annotation.get("input_tokens_before", 0))
        self.input_tokens_after += int(annotation.get("input_tokens_after", 0))
        saved = _decimal(annotation.get("saved_usd"))
        if saved is None:
            self.unpriced_requests += 1
        else:
            self.saved_usd += saved
        transforms = annotation.get("transforms")
        if isinstance(transforms, dict):
            for name, report in transforms.items():
                if isinstance(report, dict):
                    saved_tokens = int(report.get("saved_tokens", 0))
                    self.transforms[name] = self.transforms.get(name, 0) + saved_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "input_tokens_before": self.input_tokens_before,
            "input_tokens_after": self.input_tokens_after,
            "saved_tokens": self.input_tokens_before - self.input_tokens_after,
            "saved_usd": str(self.saved_usd),
            "unpriced_requests": self.unpriced_requests,
            "transforms": dict(sorted(self.transforms.items())),
        }


def recorded_savings(ledger: Ledger) -> dict[str, Any]:
    """Sum the prompt optimization annotations in the ledger, in total and per feature."""
    total = RecordedTotals()
    features: dict[str, RecordedTotals] = {}
    statement = sa.select(requests.c.feature, requests.c.details).where(
        requests.c.details.like('%"prompts"%')
    )
    try:
        with ledger.engine.connect() as connection:
            rows = connection.execute(statement).all()
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"could not read prompt optimization records from the ledger at {ledger.url}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    for feature, details in rows:
        annotation = orjson.loads(details).get("prompts")
        if not isinstance(annotation, dict):
            continue
        total.add(annotation)
        features.setdefault(feature or "", RecordedTotals()).add(annotation)
    return {
        "records": ledger.count(),
        "optimized": total.as_dict(),
        "features": [
            {"feature": name or None, **totals.as_dict()}
            for name, totals in sorted(features.items())
        ],
    }


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
