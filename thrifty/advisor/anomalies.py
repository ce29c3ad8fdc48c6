"""Anomalies in the ledger: jumps in a feature's cost or volume, new models, unpriced traffic.

A jump is judged on the feature's hourly series over the last 7 days, with
the modified z-score of Iglewicz and Hoaglin::

    z = 0.6745 * (x - median) / MAD

where ``x`` is the last complete hour, and the median and the median
absolute deviation (MAD) are those of the hours before it. An hour with
``z`` of at least 3.5 is a jump. The MAD is 0 when at least half the hours
equal the median. The mean absolute deviation from the median, times
1.2533, is then used in its place. When that is 0 too (every hour equal),
a rise of half the median or more is a jump. Only rises are reported,
because the advisor watches cost.

Two series are watched per feature: the cost per priced request (hours
with at least ``MIN_PRICED_REQUESTS`` of them) and the requests per hour
(hours without requests count as 0 from the feature's first hour on, and
the hour checked needs ``MIN_RATE_REQUESTS``). Each needs
``MIN_HISTORY_HOURS`` hours of history before it is judged.

A model is new when it served requests in the last 24 hours and none in the
30 days before, provided those 30 days contain at least
``MIN_MODEL_HISTORY_REQUESTS`` requests (a young ledger has no "usual").
Unpriced traffic is any request of today (UTC) recorded without a cost.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from thrifty.ledger import Ledger, ReportQuery, Totals

AnomalyKind = Literal["cost_per_request", "request_rate", "new_model", "unpriced"]

HOUR = timedelta(hours=1)
HISTORY = timedelta(days=7)
MIN_HISTORY_HOURS = 24
MIN_PRICED_REQUESTS = 5
MIN_RATE_REQUESTS = 10
Z_THRESHOLD = Decimal("3.5")
# 0.6745 is the 75th percentile of the standard normal distribution, so
# MAD / 0.6745 estimates the standard deviation of normal data.
MAD_SCALE = Decimal("0.6745")
# sqrt(pi / 2): the mean absolute deviation times this estimates the standard deviation.
MEAN_AD_SCALE = Decimal("1.2533")
FLAT_SERIES_RISE = Decimal("1.5")
NEW_MODEL_WINDOW = timedelta(hours=24)
NEW_MODEL_HISTORY = timedelta(days=30)
MIN_MODEL_HISTORY_REQUESTS = 100


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One finding: what jumped or appeared, in which period, and by how much.

    ``period`` is the hour or day it concerns, so the same anomaly is
    alerted once per period. ``usual`` is the history's median and
    ``score`` the modified z-score, for jumps only.
    """

    kind: AnomalyKind
    subject: str
    period: str
    value: Decimal
    message: str
    usual: Decimal | None = None
    score: Decimal | None = None

    @property
    def key(self) -> str:
        return f"anomaly:{self.kind}:{self.subject}:{self.period}"

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "period": self.period,
            "value": format(self.value, "f"),
            "usual": None if self.usual is None else format(self.usual, "f"),
            "score": None if self.score is None else format(self.score, "f"),
            "message": self.message,
        }


def detect_anomalies(ledger: Ledger, now: datetime) -> list[Anomaly]:
    """Return the anomalies of the last complete hour and of today, in a stable order."""
    found = feature_jumps(ledger, now)
    found += new_models(ledger, now)
    found += unpriced_models(ledger, now)
    return found


def feature_jumps(ledger: Ledger, now: datetime) -> list[Anomaly]:
    """Return the cost-per-request and request-rate jumps of each feature's last complete hour."""
    end = _hour_floor(now)
    checked = end - HOUR
    query = ReportQuery(by=["feature", "hour"], since=checked - HISTORY, until=end)
    hourly: dict[str, dict[datetime, Totals]] = defaultdict(dict)
    for group in ledger.report(query).groups:
        feature = group.values["feature"] or "(none)"
        hour = datetime.fromisoformat(str(group.values["hour"]).replace("Z", "+00:00"))
        hourly[feature][hour] = group.totals

    found = []
    for feature, series in sorted(hourly.items()):
        current = series.get(checked)
        if current is None:
            continue
        history = {hour: totals for hour, totals in series.items() if hour < checked}
        for anomaly in (
            _cost_jump(feature, checked, current, history),
            _rate_jump(feature, checked, current, history),
        ):
            if anomaly is not None:
                found.append(anomaly)
    return found


def new_models(ledger: Ledger, now: datetime) -> list[Anomaly]:
    """Return the models that served requests in the last 24 hours but not in the 30 days before."""
    recent_start = now - NEW_MODEL_WINDOW
    history = ledger.report(
        ReportQuery(
            by=["provider", "model"], since=recent_start - NEW_MODEL_HISTORY, until=recent_start
        )
    )
    if history.totals.requests < MIN_MODEL_HISTORY_REQUESTS:
        return []
    known = {_model_name(group.values) for group in history.groups}
    recent = ledger.report(ReportQuery(by=["provider", "model"], since=recent_start, until=now))
    found = []
    for group in sorted(recent.groups, key=lambda group: _model_name(group.values)):
        name = _model_name(group.values)
        if name in known:
            continue
        found.append(
            Anomaly(
                kind="new_model",
                subject=name,
                period="first",
                value=group.totals.cost_usd,
                message=(
                    f"new model {name}: {group.totals.requests} requests costing "
                    f"${group.totals.cost_usd} in the last 24 hours, none in the 30 days before"
                ),
            )
        )
    return found


def unpriced_models(ledger: Ledger, now: datetime) -> list[Anomaly]:
    """Return each model with requests recorded without a cost today (UTC)."""
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    report = ledger.report(ReportQuery(by=["provider", "model"], since=day_start, until=now))
    found = []
    for group in sorted(report.groups, key=lambda group: _model_name(group.values)):
        count = group.totals.unpriced_requests
        if not count:
            continue
        name = _model_name(group.values)
        found.append(
            Anomaly(
                kind="unpriced",
                subject=name,
                period=day_start.date().isoformat(),
                value=Decimal(count),
                message=(
                    f"{count} requests to {name} today have no price, so their spend is "
                    "unknown; add the model under `prices:` in thrifty.yaml"
                ),
            )
        )
    return found


def robust_z(value: Decimal, history: Sequence[Decimal]) -> tuple[Decimal, Decimal | None]:
    """Return the history's median and the modified z-score of ``value`` against it.

    The score is None for a flat history (every deviation 0): there is no
    spread to scale by.
    """
    median = Decimal(statistics.median(history))
    deviations = [abs(item - median) for item in history]
    mad = Decimal(statistics.median(deviations))
    if mad > 0:
        return median, MAD_SCALE * (value - median) / mad
    mean_ad = sum(deviations, Decimal(0)) / len(deviations)
    if mean_ad > 0:
        return median, (value - median) / (MEAN_AD_SCALE * mean_ad)
    return median, None


def _cost_jump(
    feature: str, hour: datetime, current: Totals, history: Mapping[datetime, Totals]
) -> Anomaly | None:
    priced = current.requests - current.unpriced_requests
    if priced < MIN_PRICED_REQUESTS:
        return None
    past = [
        totals.cost_usd / (totals.requests - totals.unpriced_requests)
        for totals in history.values()
        if totals.requests > totals.unpriced_requests
    ]
    if len(past) < MIN_HISTORY_HOURS:
        return None
    value = current.cost_usd / priced
    median, score = robust_z(value, past)
    if not _is_jump(value, median, score):
        return None
    return Anomaly(
        kind="cost_per_request",
        subject=feature,
        period=_hour_text(hour),
        value=value,
        usual=median,
        score=score,
        message=(
            f"feature {feature}: cost per request ${value:.6f} in the hour from "
            f"{_hour_text(hour)}, against a usual ${median:.6f}"
            f"{_score_text(score)}"
        ),
    )


def _rate_jump(
    feature: str, hour: datetime, current: Totals, history: Mapping[datetime, Totals]
) -> Anomaly | None:
    if current.requests < MIN_RATE_REQUESTS or not history:
        return None
    first = min(history)
    hours = int((hour - first) / HOUR)
    if hours < MIN_HISTORY_HOURS:
        return None
    past = [
        Decimal(history[first + HOUR * offset].requests if first + HOUR * offset in history else 0)
        for offset in range(hours)
    ]
    value = Decimal(current.requests)
    median, score = robust_z(value, past)
    if not _is_jump(value, median, score):
        return None
    return Anomaly(
        kind="request_rate",
        subject=feature,
        period=_hour_text(hour),
        value=value,
        usual=median,
        score=score,
        message=(
            f"feature {feature}: {current.requests} requests in the hour from "
            f"{_hour_text(hour)}, against a usual {median} an hour{_score_text(score)}"
        ),
    )


def _is_jump(value: Decimal, median: Decimal, score: Decimal | None) -> bool:
    if score is None:
        return value >= median * FLAT_SERIES_RISE and value > median
    return score >= Z_THRESHOLD


def _score_text(score: Decimal | None) -> str:
    if score is None:
        return " (every earlier hour was the same)"
    return f" (modified z-score {score:.1f}, threshold {Z_THRESHOLD})"


def _model_name(values: Mapping[str, str | None]) -> str:
    return f"{values['provider']}/{values['model']}"


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_text(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H:00Z")
