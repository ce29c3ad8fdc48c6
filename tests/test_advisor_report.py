"""The savings plan as an HTML page and on the dashboard's advice endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]
from typer.testing import CliRunner

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import make_record
from thrifty.advisor.traffic import DAYS_PER_MONTH, usage_of
from thrifty.cli.main import app as cli_app
from thrifty.control.model import Budget
from thrifty.control.scopes import Scope
from thrifty.control.store import ControlStore
from thrifty.ledger import open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

ENGINE = CostEngine()
# The records fall in this month so far, so the forecast has days to project.
NOW = datetime.now(UTC)
START = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _records() -> list[RequestRecord]:
    """Ten requests of a background feature and ten of chat, within this month."""
    step = (NOW - START) / 21
    records = []
    for index in range(20):
        feature = "nightly-digest" if index % 2 == 0 else "chat"
        record = make_record(f"r{index}", feature=feature, started_at=START + step * (index + 1))
        cost = ENGINE.price(record.provider, record.model_requested, usage_of(record))
        records.append(replace(record, cost_usd=cost.cost_usd, details={}))
    return records


def _spend(records: list[RequestRecord], feature: str) -> Decimal:
    return sum((r.cost_usd or Decimal(0) for r in records if r.feature == feature), Decimal(0))


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'plan.db'}"
    ledger = open_ledger(db_url)
    ledger.write(_records())
    ledger.close()
    output = tmp_path / "plan.html"

    result = CliRunner().invoke(
        cli_app,
        [
            "advise",
            "--db",
            db_url,
            "--background",
            "nightly-digest",
            "--format",
            "html",
            "--output",
            str(output),
        ],
    )

    assert result.exit_code == 0, result.output
    page = output.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert '<table id="plan">' in page
    assert "Move background work to the Batch API (50% off)" in page
    assert "thrifty batch submit requests.jsonl" in page
    assert 'id="feature-chart"' in page
    assert 'id="forecast-chart"' in page
    # plotly.js is inline, and no script is loaded from anywhere. The only
    # CDN address is plotly.js's own default for map outlines, which no chart uses.
    assert get_plotlyjs() in page
    assert "<script src" not in page
    assert page.count("cdn.plot.ly") == get_plotlyjs().count("cdn.plot.ly")
    assert "Plotly.newPlot" in page
    assert len(page) > 3_000_000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("advice")) as running:
        ledger = open_ledger(running.db_url)
        ledger.write(_records())
        budget = Budget("b-chat", Scope("feature", "chat"), Decimal("0.000001"), "monthly", START)
        ControlStore(ledger.engine).create_budget(budget, "test")
        ledger.close()
        yield running


def test_advice_api_plan_and_forecast(gateway: RunningGateway) -> None:
    records = _records()
    until = START.replace(day=NOW.day) + timedelta(days=1)
    params = {"since": START.date().isoformat(), "until": until.date().isoformat()}
    response = httpx.get(f"{gateway.url}/ui/api/advice", params=params, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()

    plan = data["plan"]
    levers = {lever["lever"]: lever for lever in plan["levers"]}
    # "nightly-digest" names background work, so only the generous scenario batches it.
    assert plan["period_s"] == int((until - START).total_seconds())
    factor = DAYS_PER_MONTH * 86400 / plan["period_s"]
    batch = levers["batch"]
    assert Decimal(batch["saving_high_usd"]) == _spend(records, "nightly-digest") / 2 * factor
    assert batch["features"] == ["nightly-digest"]
    features = {row["feature"]: row for row in plan["features"]}
    assert set(features) == {"chat", "nightly-digest"}
    assert Decimal(features["chat"]["monthly_usd"]) == _spend(records, "chat") * factor

    assert data["anomalies"] == []
    (budget,) = data["forecast"]["budgets"]
    assert budget["budget_id"] == "b-chat"
    assert budget["key"] == "feature:chat"
    assert Decimal(budget["spent_usd"]) == _spend(records, "chat")
    assert budget["overspend"] is True
    totals = data["forecast"]["total"]
    assert [Decimal(item["spent_usd"]) for item in totals] == [
        _spend(records, "chat") + _spend(records, "nightly-digest")
    ]
    assert [item["key"] for item in data["forecast"]["features"]] == ["chat", "nightly-digest"]


def test_advice_api_filters_the_plan(gateway: RunningGateway) -> None:
    params = {
        "since": START.date().isoformat(),
        "until": (NOW + timedelta(days=1)).date().isoformat(),
        "feature": "chat",
    }
    response = httpx.get(f"{gateway.url}/ui/api/advice", params=params, timeout=60)
    assert response.status_code == 200, response.text
    plan = response.json()["plan"]
    assert [row["feature"] for row in plan["features"]] == ["chat"]
    assert "batch" not in [lever["lever"] for lever in plan["levers"]]
    assert plan["requests"] == 10
