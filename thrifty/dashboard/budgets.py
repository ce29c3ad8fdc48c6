"""Budgets against their spend, active cutoffs and the control audit log, for the dashboard.

Budgets and cutoffs come from ``thrifty.control`` (stored in the ledger
database). A budget's spend is what the ledger recorded in its current
window, read like a report, so from the rollups where its scope allows.
It leaves out reservations of requests still in flight. The projection
extends the spend so far at the same rate to the end of a calendar window;
rolling and lifetime budgets have none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from thrifty.control.config import ControlConfig
from thrifty.control.model import Budget
from thrifty.control.periods import Window, window_at
from thrifty.control.store import ControlStore
from thrifty.errors import ControlError
from thrifty.ledger import Ledger, ReportQuery

logger = logging.getLogger(__name__)

_RATIO = Context(prec=12)


def budgets_view(ledger: Ledger, now: datetime, control: ControlConfig) -> dict[str, Any]:
    """Return every budget with its spend, thresholds and projection, highest use first.

    A budget without thresholds of its own is marked at ``control.thresholds``.
    No projection is made before ``control.projection_min_elapsed`` of its
    window has passed, the same rule the alerts follow.
    """
    try:
        snapshot = ControlStore(ledger.engine).snapshot()
    except ControlError as exc:
        logger.warning("could not load budgets for the dashboard: %s", exc)
        return _unavailable(f"budgets could not be loaded: {exc}")

    rows = []
    for budget in snapshot.budgets:
        window = window_at(budget.period, now)
        where = scope_filter(budget.scope.kind, budget.scope.value)
        query = ReportQuery(since=window.start, until=window.end, where=where)
        spent = ledger.report(query).totals.cost_usd
        rows.append(_budget_row(budget, window, spent, control, now))
    rows.sort(key=lambda row: (-Decimal(row["used_fraction"]), row["budget_id"]))
    return {"available": True, "reason": None, "budgets": rows}


def scope_filter(kind: str, value: str) -> dict[str, str]:
    """Return the report filter that selects a control scope's requests."""
    if kind == "all":
        return {}
    if kind == "tag":
        name, _, tag_value = value.partition("=")
        return {f"tag:{name}": tag_value}
    return {kind: value}


def _budget_row(
    budget: Budget, window: Window, spent: Decimal, control: ControlConfig, now: datetime
) -> dict[str, Any]:
    limit = budget.limit_usd
    thresholds = budget.thresholds or control.thresholds
    used = Decimal(0) if limit == 0 else _RATIO.divide(spent, limit)
    projected = _projection(spent, window, now, control.projection_min_elapsed)
    return {
        **budget.public(),
        "window": window.key,
        "resets_at": None if window.end is None or window.rolling else window.end.isoformat(),
        "spent_usd": format(spent, "f"),
        "used_fraction": format(used, "f"),
        "projected_usd": None if projected is None else format(projected, "f"),
        "projected_over": projected is not None and projected > limit,
        "thresholds": [
            {
                "fraction": format(fraction, "f"),
                "amount_usd": format(_RATIO.multiply(limit, fraction), "f"),
                "crossed": spent >= limit * fraction,
            }
            for fraction in thresholds
        ],
        "status": _status(spent, limit, thresholds),
    }


def _status(spent: Decimal, limit: Decimal, thresholds: Sequence[Decimal]) -> str:
    if spent >= limit:
        return "exhausted"
    if any(spent >= limit * fraction for fraction in thresholds):
        return "warning"
    return "ok"


def _projection(
    spent: Decimal, window: Window, now: datetime, min_elapsed: Decimal
) -> Decimal | None:
    start, end = window.start, window.end
    if window.rolling or start is None or end is None:
        return None
    elapsed = Decimal((now - start).total_seconds())
    length = Decimal((end - start).total_seconds())
    if length <= 0 or elapsed / length < min_elapsed:
        return None
    if elapsed >= length:
        return spent
    return _RATIO.divide(_RATIO.multiply(spent, length), elapsed)


def control_events(ledger: Ledger, limit: int = 50) -> dict[str, Any]:
    """Return the active cutoffs and the latest control changes (the audit log).

    Alerts themselves go to the configured sinks and are not stored, so the
    audit log of key, budget and cutoff changes is what can be shown.
    """
    store = ControlStore(ledger.engine)
    try:
        snapshot = store.snapshot()
        audit = store.audit_log(limit=limit)
    except ControlError as exc:
        logger.warning("could not load cutoffs for the dashboard: %s", exc)
        return _unavailable(f"cutoffs could not be loaded: {exc}")
    return {
        "available": True,
        "reason": None,
        "cutoffs": [cutoff.public() for cutoff in snapshot.cutoffs.values()],
        "audit": audit,
    }


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason, "budgets": [], "cutoffs": [], "audit": []}
