"""Advisor alerts: anomalies and projected overspend, sent through the budget alert sinks.

Each finding becomes an ``Alert`` for ``thrifty.control.alerts.AlertDispatcher``,
the dispatcher that delivers budget alerts (webhook, Slack and log sinks,
with retries). Before it is raised, each alert's key is checked with
``first_time``: the gateway's budget counters (in process, or Redis shared
by replicas) or, for the CLI without Redis, a JSON file. So one anomaly
alerts once per period, and one budget's projected overspend once a month.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import orjson

from thrifty.advisor.anomalies import Anomaly, detect_anomalies
from thrifty.advisor.forecast import Bound, BudgetProjection, overspends, project_budgets
from thrifty.control.alerts import Alert
from thrifty.control.store import ControlStore
from thrifty.errors import ConfigError, ControlError
from thrifty.ledger import Ledger

logger = logging.getLogger(__name__)

# Event names, beside the budget events of thrifty.control.alerts.
COST_PER_REQUEST_JUMP = "anomaly.cost_per_request"
REQUEST_RATE_JUMP = "anomaly.request_rate"
NEW_MODEL = "anomaly.new_model"
UNPRICED_TRAFFIC = "anomaly.unpriced"
FORECAST_OVERSPEND = "forecast.overspend"

_EVENTS = {
    "cost_per_request": COST_PER_REQUEST_JUMP,
    "request_rate": REQUEST_RATE_JUMP,
    "new_model": NEW_MODEL,
    "unpriced": UNPRICED_TRAFFIC,
}
# How long an alert's key is remembered: past the end of the period it names.
_TTL_S = {
    "cost_per_request": 2 * 3600,
    "request_rate": 2 * 3600,
    "new_model": 2 * 86400,
    "unpriced": 2 * 86400,
}
FORECAST_TTL_S = 32 * 86400


class Once(Protocol):
    """A store that deduplicates alerts, such as ``thrifty.control.counters.Counters``."""

    async def first_time(self, name: str, ttl_s: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert to raise, with the key and lifetime that deduplicate it."""

    key: str
    ttl_s: int
    alert: Alert


class FileOnce:
    """Alert keys remembered in a JSON file, for the CLI when no Redis is configured.

    NOTE: two processes sharing the file at the same instant may both send an
    alert; the gateway's Redis counters have no such race.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._seen = self._load()

    async def first_time(self, name: str, ttl_s: int) -> bool:
        now = self.clock()
        self._seen = {key: until for key, until in self._seen.items() if until > now}
        if name in self._seen:
            return False
        self._seen[name] = now + ttl_s
        self._save()
        return True

    def _load(self) -> dict[str, float]:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(
                f"cannot read the alert state file {self.path}: {exc}; delete it to start afresh"
            ) from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                f"alert state file {self.path} is not a JSON object; delete it to start afresh"
            )
        return {str(key): float(until) for key, until in raw.items()}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(self._seen))
        temporary.replace(self.path)


def find_alerts(ledger: Ledger, now: datetime, *, bound: Bound = "central") -> list[Finding]:
    """Return the anomalies and projected overspends of the ledger at ``now`` as alerts."""
    findings = [anomaly_finding(anomaly) for anomaly in detect_anomalies(ledger, now)]
    try:
        budgets = ControlStore(ledger.engine).snapshot().budgets
    except ControlError as exc:
        logger.warning("could not load budgets for the forecast alerts: %s", exc)
        return findings
    for item in overspends(project_budgets(ledger, budgets, now), bound=bound):
        findings.append(overspend_finding(item, bound))
    return findings


async def raise_new(
    findings: Iterable[Finding], once: Once, raise_alert: Callable[[Alert], None]
) -> list[Alert]:
    """Raise each finding not alerted before in its period; return the alerts raised."""
    raised = []
    for finding in findings:
        if not await once.first_time(finding.key, finding.ttl_s):
            continue
        raise_alert(finding.alert)
        raised.append(finding.alert)
    if raised:
        logger.info("advisor raised %d alerts", len(raised))
    return raised


def anomaly_finding(anomaly: Anomaly) -> Finding:
    alert = Alert(_EVENTS[anomaly.kind], anomaly.message, anomaly.public())
    return Finding(anomaly.key, _TTL_S[anomaly.kind], alert)


def overspend_finding(item: BudgetProjection, bound: Bound) -> Finding:
    budget, projection = item.budget, item.projection
    which = "the low end of its interval" if bound == "low" else "its central projection"
    message = (
        f"budget {budget.budget_id} ({budget.scope}, monthly) is projected to spend "
        f"${projection.projected:.2f} (interval ${projection.low:.2f} to ${projection.high:.2f}) "
        f"in {projection.month}, over its ${budget.limit_usd} limit by {which}; "
        f"${projection.spent:.2f} is spent so far"
    )
    details = {
        "budget_id": budget.budget_id,
        "scope": str(budget.scope),
        "month": projection.month,
        "limit_usd": format(budget.limit_usd, "f"),
        "spent_usd": format(projection.spent, "f"),
        "projected_usd": format(projection.projected, "f"),
        "low_usd": format(projection.low, "f"),
        "high_usd": format(projection.high, "f"),
        "bound": bound,
    }
    key = f"forecast:{budget.budget_id}:{projection.month}"
    return Finding(key, FORECAST_TTL_S, Alert(FORECAST_OVERSPEND, message, details))
