"""Advisor alerts: anomalies and projected overspend, through the budget alert sinks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from tests.ledger_support import make_record, unpriced
from tests.servers import serve_in_thread
from thrifty.advisor.alerting import (
    COST_PER_REQUEST_JUMP,
    FORECAST_OVERSPEND,
    NEW_MODEL,
    REQUEST_RATE_JUMP,
    UNPRICED_TRAFFIC,
    FileOnce,
    find_alerts,
    raise_new,
)
from thrifty.advisor.anomalies import detect_anomalies, feature_jumps, robust_z
from thrifty.advisor.watch import AlertWatch, advisor_alert_step
from thrifty.cli.main import app as cli_app
from thrifty.control.alerts import Alert, AlertDispatcher
from thrifty.control.config import AlertSettings, AlertSink, ControlConfig
from thrifty.control.counters import MemoryCounters
from thrifty.control.model import Budget
from thrifty.control.plane import ControlPlane
from thrifty.control.scopes import Scope
from thrifty.control.store import ControlStore
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

# The hour the checks look at is 2026-11-20 09:00 to 10:00.
NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
CHECKED = datetime(2026, 11, 20, 9, tzinfo=UTC)


@dataclass
class Hook:
    """A webhook receiver on loopback that keeps every body posted to it."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    received = Hook()

    async def receive(request: Request) -> Response:
        received.bodies.append(orjson.loads(await request.body()))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    with serve_in_thread(app) as url:
        received.url = f"{url}/hook"
        yield received


def _ledger(tmp_path: Path, records: list[RequestRecord]) -> Ledger:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'alerts.db'}")
    ledger.write(records)
    return ledger


def _hourly(feature: str, hours: int, per_hour: list[int], cost: list[str]) -> list[RequestRecord]:
    """Requests of the ``hours`` hours before CHECKED; hour h gets per_hour[h % len] of them."""
    records = []
    for hour in range(hours):
        start = CHECKED - timedelta(hours=hours - hour)
        for index in range(per_hour[hour % len(per_hour)]):
            records.append(
                make_record(
                    f"{feature}-{hour}-{index}",
                    feature=feature,
                    started_at=start + timedelta(minutes=index),
                    cost_usd=Decimal(cost[hour % len(cost)]),
                )
            )
    return records


def _current(feature: str, count: int, cost: str) -> list[RequestRecord]:
    return [
        make_record(
            f"{feature}-now-{index}",
            feature=feature,
            started_at=CHECKED + timedelta(minutes=index),
            cost_usd=Decimal(cost),
        )
        for index in range(count)
    ]


def test_robust_z_uses_median_and_mad() -> None:
    history = [Decimal("0.001"), Decimal("0.002")] * 15
    median, score = robust_z(Decimal("0.005"), history)
    assert median == Decimal("0.0015")
    assert score == Decimal("0.6745") * Decimal("0.0035") / Decimal("0.0005")


@pytest.mark.parametrize(("cost", "jumps"), [("0.004", False), ("0.005", True)])
def test_cost_per_request_jump(tmp_path: Path, cost: str, jumps: bool) -> None:
    records = _hourly("chat", 30, [5], ["0.001", "0.002"]) + _current("chat", 5, cost)
    ledger = _ledger(tmp_path, records)
    found = feature_jumps(ledger, NOW)
    ledger.close()

    kinds = [anomaly.kind for anomaly in found]
    if not jumps:
        # z = 0.6745 * (0.004 - 0.0015) / 0.0005 = 3.3725, under the 3.5 threshold.
        assert kinds == []
        return
    (anomaly,) = found
    assert anomaly.kind == "cost_per_request"
    assert anomaly.subject == "chat"
    assert anomaly.period == "2026-11-20T09:00Z"
    assert anomaly.value == Decimal("0.005")
    assert anomaly.usual == Decimal("0.0015")
    assert anomaly.score == Decimal("4.7215")


def test_request_rate_jump(tmp_path: Path) -> None:
    records = _hourly("search", 30, [1, 2], ["0.001"]) + _current("search", 20, "0.001")
    ledger = _ledger(tmp_path, records)
    (anomaly,) = feature_jumps(ledger, NOW)
    ledger.close()
    assert anomaly.kind == "request_rate"
    assert anomaly.value == 20
    assert anomaly.usual == Decimal("1.5")
    assert anomaly.score == Decimal("0.6745") * Decimal("18.5") / Decimal("0.5")


def test_flat_history_jumps_on_half_again(tmp_path: Path) -> None:
    records = _hourly("flat", 30, [2], ["0.001"]) + _current("flat", 10, "0.001")
    ledger = _ledger(tmp_path, records)
    (anomaly,) = feature_jumps(ledger, NOW)
    ledger.close()
    assert anomaly.kind == "request_rate"
    assert anomaly.usual == 2
    assert anomaly.score is None


def test_short_history_is_not_judged(tmp_path: Path) -> None:
    records = _hourly("young", 10, [5], ["0.001"]) + _current("young", 50, "0.05")
    ledger = _ledger(tmp_path, records)
    assert feature_jumps(ledger, NOW) == []
    ledger.close()


def test_new_model_and_unpriced_traffic(tmp_path: Path) -> None:
    old = [
        make_record(f"old{i}", started_at=NOW - timedelta(days=3, minutes=i)) for i in range(100)
    ]
    new = make_record("new", model_served="gpt-4.1", started_at=NOW - timedelta(hours=2))
    mystery = unpriced("u1", model_served="mystery-1", started_at=NOW - timedelta(hours=1))
    ledger = _ledger(tmp_path, [*old, new, mystery])
    found = detect_anomalies(ledger, NOW)
    ledger.close()

    assert [(item.kind, item.subject, item.period) for item in found] == [
        ("new_model", "openai/gpt-4.1", "first"),
        ("new_model", "openai/mystery-1", "first"),
        ("unpriced", "openai/mystery-1", "2026-11-20"),
    ]
    assert found[0].value == Decimal("0.00036")
    assert found[2].value == 1


def test_new_model_needs_history(tmp_path: Path) -> None:
    old = [make_record(f"old{i}", started_at=NOW - timedelta(days=3)) for i in range(99)]
    new = make_record("new", model_served="gpt-4.1", started_at=NOW - timedelta(hours=2))
    ledger = _ledger(tmp_path, [*old, new])
    assert detect_anomalies(ledger, NOW) == []
    ledger.close()


def _overspending_ledger(tmp_path: Path) -> Ledger:
    # $2 on each even day of November 1 to 20, $0 on odd days: $20 spent and
    # $30 projected, but the low end of the interval is under the $25 limit.
    records = [
        make_record(
            f"d{day}",
            feature="reports",
            started_at=datetime(2026, 11, day, 8, tzinfo=UTC),
            cost_usd=Decimal(2 if day % 2 == 0 else 0),
        )
        for day in range(1, 21)
    ]
    ledger = _ledger(tmp_path, records)
    store = ControlStore(ledger.engine)
    created = datetime(2026, 11, 1, tzinfo=UTC)
    for budget_id, limit in (("b-over", "25"), ("b-fine", "40")):
        budget = Budget(budget_id, Scope("feature", "reports"), Decimal(limit), "monthly", created)
        store.create_budget(budget, "test")
    daily = Budget("b-daily", Scope("all"), Decimal("0.5"), "daily", created)
    store.create_budget(daily, "test")
    return ledger


@pytest.mark.parametrize(("bound", "alerts"), [("central", ["b-over"]), ("low", [])])
def test_forecast_overspend_alert(tmp_path: Path, bound: str, alerts: list[str]) -> None:
    ledger = _overspending_ledger(tmp_path)
    findings = find_alerts(ledger, NOW, bound=bound)  # type: ignore[arg-type]
    ledger.close()

    overspends = [item for item in findings if item.alert.event == FORECAST_OVERSPEND]
    assert [item.alert.details["budget_id"] for item in overspends] == alerts
    if not alerts:
        return
    details = overspends[0].alert.details
    assert details["spent_usd"] == "20"
    assert Decimal(details["projected_usd"]) == 30
    assert Decimal(details["low_usd"]) < 25
    assert details["limit_usd"] == "25"
    assert details["bound"] == bound
    assert overspends[0].key == "forecast:b-over:2026-11"


async def test_alerts_reach_webhook_once(tmp_path: Path, hook: Hook) -> None:
    records = _hourly("chat", 30, [5], ["0.001", "0.002"]) + _current("chat", 5, "0.005")
    records.append(unpriced("u1", model_served="mystery-1", started_at=NOW - timedelta(hours=1)))
    ledger = _ledger(tmp_path, records)
    findings = find_alerts(ledger, NOW)
    ledger.close()
    settings = AlertSettings(sinks=(AlertSink("webhook", hook.url), AlertSink("log")))
    state = tmp_path / "state.json"

    sent = []
    for _ in range(2):
        dispatcher = AlertDispatcher(settings)
        await dispatcher.start()
        sent.append(await raise_new(findings, FileOnce(state), dispatcher.raise_alert))
        await dispatcher.stop()

    events = [body["event"] for body in hook.bodies]
    assert events == [COST_PER_REQUEST_JUMP, UNPRICED_TRAFFIC]
    assert [len(alerts) for alerts in sent] == [2, 0]
    assert hook.bodies[0]["details"]["subject"] == "chat"
    assert hook.bodies[0]["details"]["value"] == "0.005"
    assert NEW_MODEL not in events
    assert REQUEST_RATE_JUMP not in events


def test_file_once_forgets_after_ttl(tmp_path: Path) -> None:
    clock = [1000.0]
    path = tmp_path / "state.json"
    once = FileOnce(path, clock=lambda: clock[0])
    assert asyncio.run(once.first_time("a", 60)) is True
    reread = FileOnce(path, clock=lambda: clock[0])
    assert asyncio.run(reread.first_time("a", 60)) is False
    clock[0] += 61
    assert asyncio.run(once.first_time("a", 60)) is True


def test_cli_alerts_send_once(tmp_path: Path, hook: Hook) -> None:
    # $1 on each day of this month so far projects to $28 or more; the limit is $10.
    now = datetime.now(UTC)
    records = [
        make_record(
            f"d{day}", started_at=now.replace(day=day, hour=0, minute=0), cost_usd=Decimal(1)
        )
        for day in range(1, now.day + 1)
    ]
    ledger = _ledger(tmp_path, records)
    budget = Budget("b-month", Scope("all"), Decimal(10), "monthly", now)
    ControlStore(ledger.engine).create_budget(budget, "test")
    db_url = str(ledger.engine.url)
    ledger.close()
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        f"control:\n  alerts:\n    sinks:\n      - {{type: webhook, url: '{hook.url}'}}\n"
    )
    command = [
        "advise",
        "--alerts",
        "--db",
        db_url,
        "--config",
        str(config),
        "--alert-state",
        str(tmp_path / "state.json"),
        "--format",
        "json",
    ]
    runner = CliRunner()
    first = runner.invoke(cli_app, command)
    second = runner.invoke(cli_app, command)

    assert first.exit_code == 0, first.output
    raised = orjson.loads(first.output)["raised"]
    assert [alert["event"] for alert in raised] == [FORECAST_OVERSPEND]
    assert raised[0]["details"]["budget_id"] == "b-month"
    assert [body["event"] for body in hook.bodies] == [FORECAST_OVERSPEND]
    assert orjson.loads(second.output) == {"raised": [], "already_sent": 1}


async def test_gateway_watch_alerts_through_plane(tmp_path: Path, hook: Hook) -> None:
    records = _hourly("chat", 30, [5], ["0.001", "0.002"]) + _current("chat", 5, "0.005")
    ledger = _ledger(tmp_path, records)
    sinks = (AlertSink("webhook", hook.url),)
    config = ControlConfig(alerts=AlertSettings(sinks=sinks))
    plane = ControlPlane(config, ControlStore(ledger.engine), CostEngine(), clock=lambda: NOW)
    step = advisor_alert_step(ledger, plane)
    await plane.start()
    try:
        first = await step.watch.check()
        second = await step.watch.check()
    finally:
        await plane.stop()
        ledger.close()

    assert [alert.event for alert in first] == [COST_PER_REQUEST_JUMP]
    assert second == []
    assert [body["event"] for body in hook.bodies] == [COST_PER_REQUEST_JUMP]
    assert hook.bodies[0]["details"]["period"] == "2026-11-20T09:00Z"


async def test_gateway_watch_runs_each_interval(tmp_path: Path) -> None:
    records = _hourly("chat", 30, [5], ["0.001", "0.002"]) + _current("chat", 5, "0.005")
    ledger = _ledger(tmp_path, records)
    raised: list[Alert] = []
    watch = AlertWatch(ledger, MemoryCounters(), raised.append, interval_s=0.05, clock=lambda: NOW)
    await watch.start()
    try:
        deadline = time.monotonic() + 10
        while not raised and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # several more checks, which find only what was sent
    finally:
        await watch.stop()
        ledger.close()
    assert [alert.event for alert in raised] == [COST_PER_REQUEST_JUMP]
