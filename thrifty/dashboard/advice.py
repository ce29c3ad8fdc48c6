"""The savings plan, anomalies and month-end forecasts, for the dashboard's Advice page.

The plan is ``thrifty advise`` over the view's time range and filters
(``thrifty.advisor.plan``). Anomalies are judged at the time of the request
(the last complete hour, and today), and the forecasts are of the current
month, whatever range the view shows.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from thrifty.advisor.anomalies import detect_anomalies
from thrifty.advisor.bench_evidence import load_bench_scores
from thrifty.advisor.forecast import Bound, project_budgets, project_month
from thrifty.advisor.plan import build_plan
from thrifty.advisor.render import plan_json, projection_json
from thrifty.advisor.traffic import Traffic, load_traffic
from thrifty.control.store import ControlStore
from thrifty.dashboard.view import View
from thrifty.errors import ControlError
from thrifty.ledger import Ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

# The forecast bound the page marks budgets by, the same default as `thrifty advise --alerts`.
ALERT_BOUND: Bound = "central"


def advice_view(ledger: Ledger, view: View, engine: CostEngine, now: datetime) -> dict[str, Any]:
    """Return the plan for the view, the anomalies at ``now`` and this month's forecasts."""
    traffic = _filtered(load_traffic(ledger, since=view.since, until=view.until), view)
    plan = build_plan(traffic, engine, bench=load_bench_scores(ledger))
    month = load_traffic(
        ledger, since=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    return {
        "view": view.public(),
        "plan": plan_json(plan),
        "anomalies": [anomaly.public() for anomaly in detect_anomalies(ledger, now)],
        "forecast": {
            "total": [projection_json(item) for item in project_month(month, now)],
            "features": [projection_json(item) for item in project_month(month, now, by="feature")],
            "teams": [projection_json(item) for item in project_month(month, now, by="team")],
            "budgets": _budget_forecasts(ledger, now),
        },
    }


def _budget_forecasts(ledger: Ledger, now: datetime) -> list[dict[str, Any]]:
    try:
        budgets = ControlStore(ledger.engine).snapshot().budgets
    except ControlError as exc:
        logger.warning("could not load budgets for the advice page: %s", exc)
        return []
    rows = []
    for item in project_budgets(ledger, budgets, now):
        rows.append(
            {
                "budget_id": item.budget.budget_id,
                "limit_usd": format(item.budget.limit_usd, "f"),
                "overspend": item.bound_usd(ALERT_BOUND) > item.budget.limit_usd,
                **projection_json(item.projection),
            }
        )
    return rows


def _filtered(traffic: Traffic, view: View) -> Traffic:
    """Keep the records that match every filter of the view."""
    if not view.where:
        return traffic
    kept = tuple(
        record
        for record in traffic.records
        if all(_value(record, name) == value for name, value in view.where.items())
    )
    return replace(traffic, records=kept)


def _value(record: RequestRecord, name: str) -> str | None:
    """Return a record's value of a report dimension, as the ledger's reports read it."""
    if name.startswith("tag:"):
        return record.tags.get(name.removeprefix("tag:"))
    if name == "key":
        return record.key_id
    if name == "model":
        return record.model_served or record.model_requested
    if name == "service_tier":
        return record.service_tier_served or record.service_tier_requested
    value = getattr(record, name, None)
    return value if isinstance(value, str) else None
