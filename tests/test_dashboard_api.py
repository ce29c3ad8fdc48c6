"""The dashboard's data endpoints, served by a real gateway over loopback.

Records are written to the gateway's SQLite ledger directly, then read back
through /ui/api/... with httpx: exact decimal costs, filters, CSV exports,
the session and request views, unit costs, savings and budgets.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import make_record, unpriced
from thrifty.batch.store import BatchStore, Job, RequestRow
from thrifty.control.model import Budget, Cutoff
from thrifty.control.scopes import Scope
from thrifty.control.store import ControlStore
from thrifty.dashboard.config import DashboardConfig
from thrifty.ledger import open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage.model import Usage

OCT = datetime(2026, 10, 1, tzinfo=UTC)
RANGE = {"since": "2026-10-01", "until": "2026-10-04"}

RECORDS = [
    make_record(
        "a1",
        started_at=OCT + timedelta(hours=1),
        feature="chat",
        team="search",
        key_id="key_a",
        user="u1",
        session="s1",
        cost_usd=Decimal("0.1"),
        ended_at=OCT + timedelta(hours=1, milliseconds=1500),
        tags={"customer": "acme"},
    ),
    make_record(
        "a2",
        started_at=OCT + timedelta(hours=2),
        feature="chat",
        team="search",
        key_id="key_a",
        user="u2",
        session="s1",
        cost_usd=Decimal("0.2"),
        tags={"customer": "acme"},
    ),
    make_record(
        "a3",
        started_at=OCT + timedelta(days=1, hours=3),
        feature="search",
        team="support",
        key_id="key_b",
        user="u1",
        session="s2",
        cost_usd=Decimal("0.0000000000000000000001"),
        tags={"customer": "globex"},
    ),
    unpriced(
        "a4",
        started_at=OCT + timedelta(days=2),
        feature="search",
        team="support",
        model_served="mystery",
        model_priced=None,
        user="u3",
        session="s2",
    ),
    make_record(
        "a5",
        started_at=OCT + timedelta(days=2, hours=5),
        feature=None,
        team=None,
        key_id=None,
        cost_usd=Decimal("0.05"),
        http_status=500,
        error_type="server_error",
    ),
]
TOTAL = "0.3500000000000000000001"
TINY = "0.0000000000000000000001"


def write(gateway: RunningGateway, records: list[RequestRecord]) -> None:
    ledger = open_ledger(gateway.db_url)
    try:
        ledger.write(records)
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("dashboard")) as running:
        write(running, RECORDS)
        yield running


def get(gateway: RunningGateway, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{gateway.url}/ui/api/{path}", params=params, timeout=30)


def get_json(gateway: RunningGateway, path: str, **params: Any) -> Any:
    response = get(gateway, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_overview_totals_are_exact(gateway: RunningGateway) -> None:
    totals = get_json(gateway, "overview", **RANGE)["totals"]
    assert totals["requests"] == 5
    assert totals["cost_usd"] == TOTAL
    assert totals["unpriced_requests"] == 1
    assert totals["errors"] == 1
    assert totals["input_tokens"] == 6000
    assert totals["cost_per_request_usd"] == "0.0875000000000"


def test_overview_top_lists_by_cost(gateway: RunningGateway) -> None:
    top = get_json(gateway, "overview", **RANGE)["top"]
    assert [row["value"] for row in top["feature"]] == ["chat", None, "search"]
    assert top["feature"][0]["cost_usd"] == "0.3"
    assert top["feature"][0]["requests"] == 2
    assert [row["value"] for row in top["team"]] == ["search", None, "support"]
    assert [row["value"] for row in top["key"]] == ["key_a", None, "key_b"]
    assert set(top) == {"feature", "model", "team", "key"}


def test_filter_changes_every_number(gateway: RunningGateway) -> None:
    chat = get_json(gateway, "overview", feature="chat", **RANGE)
    assert chat["totals"]["requests"] == 2
    assert chat["totals"]["cost_usd"] == "0.3"
    assert [row["value"] for row in chat["top"]["team"]] == ["search"]
    assert chat["view"]["filters"] == {"feature": "chat"}
    by_tag = get_json(gateway, "overview", tag="customer=globex", **RANGE)
    assert by_tag["totals"]["requests"] == 1
    assert by_tag["totals"]["cost_usd"] == TINY


def test_series_lists_every_bucket(gateway: RunningGateway) -> None:
    series = get_json(gateway, "series", stack="feature", **RANGE)
    assert series["buckets"] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    stacks = {stack["name"]: stack for stack in series["stacks"]}
    assert stacks["chat"]["cost_usd"] == ["0.3", "0", "0"]
    assert stacks["chat"]["requests"] == [2, 0, 0]
    assert stacks["(none)"]["cost_usd"] == ["0", "0", "0.05"]
    assert stacks["search"]["requests"] == [0, 1, 1]


def test_series_by_hour_and_month(gateway: RunningGateway) -> None:
    hourly = get_json(
        gateway,
        "series",
        since="2026-10-01T00:00:00Z",
        until="2026-10-01T03:00:00Z",
        resolution="hour",
        stack="team",
    )
    assert hourly["buckets"] == [
        "2026-10-01T00:00:00Z",
        "2026-10-01T01:00:00Z",
        "2026-10-01T02:00:00Z",
    ]
    assert hourly["stacks"][0]["cost_usd"] == ["0", "0.1", "0.2"]
    monthly = get_json(
        gateway, "series", since="2026-09-01", until="2026-11-01", resolution="month"
    )
    assert monthly["buckets"] == ["2026-09", "2026-10"]
    total = sum(Decimal(stack["cost_usd"][1]) for stack in monthly["stacks"])
    assert total == Decimal(TOTAL)


def test_series_csv_is_exact(gateway: RunningGateway) -> None:
    response = get(gateway, "series", stack="feature", format="csv", **RANGE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "thrifty-series.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0].keys() == {"bucket", "name", "requests", "cost_usd"}
    search = [row for row in rows if row["name"] == "search" and row["bucket"] == "2026-10-02"]
    assert search == [{"bucket": "2026-10-02", "name": "search", "requests": "1", "cost_usd": TINY}]


def test_top_csv_export(gateway: RunningGateway) -> None:
    response = get(gateway, "top", dimension="user", format="csv", **RANGE)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["value"] for row in rows] == ["u2", "u1", "", "u3"]
    assert rows[1]["cost_usd"] == "0.1000000000000000000001"
    assert rows[1]["requests"] == "2"


def test_top_limit(gateway: RunningGateway) -> None:
    rows = get_json(gateway, "top", dimension="session", limit=1, **RANGE)["rows"]
    assert rows == [{**rows[0], "value": "s1", "requests": 2, "cost_usd": "0.3"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"resolution": "week"}, "invalid resolution 'week'"),
        ({"since": "yesterday"}, "invalid since 'yesterday'"),
        ({"since": "2026-10-05", "until": "2026-10-01"}, "is not before until"),
        ({"since": "2026-01-01", "until": "2026-12-01", "resolution": "hour"}, "more than 1000"),
        ({"tag": "customer"}, "invalid tag filter 'customer'"),
        ({"stack": "user"}, "invalid stack 'user'"),
    ],
)
def test_invalid_parameters_are_400(
    gateway: RunningGateway, params: dict[str, str], message: str
) -> None:
    response = get(gateway, "overview", **params)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_bad_top_dimension_and_limit(gateway: RunningGateway) -> None:
    assert get(gateway, "top", dimension="colour").status_code == 400
    response = get(gateway, "top", limit="0")
    assert response.status_code == 400
    assert "from 1 to 500" in response.json()["error"]["message"]


def test_csv_not_offered_for_overview(gateway: RunningGateway) -> None:
    response = get(gateway, "overview", format="csv")
    assert response.status_code == 400
    assert "has no CSV form" in response.json()["error"]["message"]


def test_session_view_in_start_order(gateway: RunningGateway) -> None:
    data = get_json(gateway, "sessions/s1")
    assert [row["request_id"] for row in data["requests"]] == ["a1", "a2"]
    assert data["totals"]["cost_usd"] == "0.3"
    assert data["totals"]["requests"] == 2
    assert data["requests"][0]["latency_ms"] == 1500.0
    assert data["truncated"] is False


def test_session_csv(gateway: RunningGateway) -> None:
    rows = list(csv.DictReader(io.StringIO(get(gateway, "sessions/s2", format="csv").text)))
    assert [row["request_id"] for row in rows] == ["a3", "a4"]
    assert rows[1]["cost_usd"] == ""
    assert rows[1]["unpriced"] == "True"


def test_request_view_has_full_record(gateway: RunningGateway) -> None:
    data = get_json(gateway, "requests/a3")
    assert data["record"]["request_id"] == "a3"
    assert data["record"]["cost_usd"] == TINY
    assert data["record"]["tags"] == {"customer": "globex"}
    assert data["bodies_stored"] is False
    missing = get(gateway, "requests/nope")
    assert missing.status_code == 404
    assert "no request with id 'nope'" in missing.json()["error"]["message"]


def test_recent_requests_newest_first(gateway: RunningGateway) -> None:
    rows = get_json(gateway, "requests", **RANGE)["rows"]
    assert [row["request_id"] for row in rows] == ["a5", "a4", "a3", "a2", "a1"]
    filtered = get_json(gateway, "requests", team="support", **RANGE)["rows"]
    assert [row["request_id"] for row in filtered] == ["a4", "a3"]
    tagged = get_json(gateway, "requests", tag="customer=acme", **RANGE)["rows"]
    assert [row["request_id"] for row in tagged] == ["a2", "a1"]


def test_spenders_by_user_and_customer(gateway: RunningGateway) -> None:
    users = get_json(gateway, "spenders", dimension="user", **RANGE)
    assert [row["value"] for row in users["rows"]] == ["u2", "u1", None, "u3"]
    assert users["rows"][1]["cost_per_bucket"] == {
        "2026-10-01": "0.1",
        "2026-10-02": TINY,
    }
    customers = get_json(gateway, "spenders", dimension="customer", **RANGE)
    assert customers["dimension"] == "tag:customer"
    assert [row["value"] for row in customers["rows"]] == ["acme", None, "globex"]
    assert customers["rows"][0]["cost_per_bucket"] == {"2026-10-01": "0.3"}


def test_unknown_path_is_404(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/ui/nothing-here")
    assert response.status_code == 404
    assert "no dashboard page or endpoint" in response.json()["error"]["message"]


def test_pages_and_vendor_script_served(gateway: RunningGateway) -> None:
    page = httpx.get(f"{gateway.url}/ui/")
    assert page.status_code == 200
    assert '<script src="vendor/plotly.min.js"' in page.text
    script = httpx.get(f"{gateway.url}/ui/vendor/plotly.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 1_000_000
    assert httpx.get(f"{gateway.url}/ui/static/app.js").status_code == 200
    redirect = httpx.get(f"{gateway.url}/ui", follow_redirects=False)
    assert redirect.status_code in (307, 308)
    assert redirect.headers["location"].endswith("/ui/")


def test_me_without_keys(gateway: RunningGateway) -> None:
    assert get_json(gateway, "me") == {"role": None, "login_required": False}


def test_batches_lists_jobs_with_progress(tmp_path: Path) -> None:
    created = datetime(2026, 10, 2, tzinfo=UTC)
    job = Job(
        job_id="job_dash",
        source="cli",
        status="in_progress",
        provider="openai",
        provider_kind="openai",
        base_url="http://127.0.0.1:1",
        request_count=4,
        created_at=created,
        updated_at=created,
        max_rounds=3,
        name="nightly",
    )
    statuses = ["succeeded", "succeeded", "failed", "submitted"]
    requests = [
        RequestRow(f"q{n}", n, n + 1, "gpt-4o-mini", status, 1, None, "p0", 0, 10)
        for n, status in enumerate(statuses)
    ]
    results = [
        make_record(
            f"br{n}",
            started_at=created,
            cost_usd=Decimal("0.5"),
            service_tier_served="batch",
            details={"batch": {"job": "job_dash", "standard_cost_usd": "1"}},
        )
        for n in range(2)
    ]
    with running_gateway(tmp_path) as gateway:
        assert get_json(gateway, "batches") == {"available": True, "reason": None, "jobs": []}
        write(gateway, results)
        ledger = open_ledger(gateway.db_url)
        try:
            BatchStore(ledger.engine).create_job(job, [], requests)
        finally:
            ledger.close()
        data = get_json(gateway, "batches")
        exported = get(gateway, "batches", format="csv").text

    (row,) = data["jobs"]
    assert row["job_id"] == "job_dash"
    assert row["status"] == "in_progress"
    assert row["requests"] == 4
    assert row["done"] == 3
    assert row["progress"] == 0.75
    assert row["succeeded"] == 2
    assert row["failed"] == 1
    assert row["cost_usd"] == "1.0"
    assert row["saved_usd"] == "1.0"
    assert exported.splitlines()[1].startswith("job_dash,nightly,openai,in_progress")


# Unit costs: twenty calls of one feature costing 1..20 tenths of a cent.
UNIT = datetime(2026, 9, 10, tzinfo=UTC)
UNIT_RECORDS = [
    make_record(
        f"u{number}",
        started_at=UNIT + timedelta(minutes=number),
        feature="unit",
        session=f"conv{number % 4}",
        cost_usd=Decimal(number) / 1000,
    )
    for number in range(1, 21)
]


@pytest.fixture(scope="module")
def unit_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("unit")) as running:
        write(running, UNIT_RECORDS)
        yield running


def test_feature_call_mean_and_p95(unit_gateway: RunningGateway) -> None:
    data = get_json(
        unit_gateway, "unit-costs", of="feature", since="2026-09-10", until="2026-09-11"
    )
    (series,) = data["series"]
    assert series["name"] == "unit"
    assert series["summary"] == {
        "count": 20,
        "cost_usd": "0.210",
        "mean_usd": "0.0105",
        # Nearest rank: the 19th of 20 sorted costs.
        "p95_usd": "0.019000000",
    }
    assert series["points"]["2026-09-10"]["count"] == 20


def test_conversation_mean_and_p95(unit_gateway: RunningGateway) -> None:
    data = get_json(
        unit_gateway, "unit-costs", of="conversation", since="2026-09-10", until="2026-09-11"
    )
    (series,) = data["series"]
    # conv0 has 4+8+12+16+20 thousandths, conv3 has 3+7+11+15+19.
    assert series["summary"]["count"] == 4
    assert series["summary"]["cost_usd"] == "0.210"
    assert series["summary"]["mean_usd"] == "0.0525"
    assert series["summary"]["p95_usd"] == "0.060000000"


def test_unit_costs_csv_rows(unit_gateway: RunningGateway) -> None:
    response = get(
        unit_gateway,
        "unit-costs",
        of="feature",
        since="2026-09-10",
        until="2026-09-12",
        format="csv",
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows == [
        {
            "name": "unit",
            "bucket": "2026-09-10",
            "count": "20",
            "cost_usd": "0.210",
            "mean_usd": "0.0105",
            "p95_usd": "0.019000000",
        }
    ]


# Savings: identical requests priced by the real cost engine, so the estimates are exact.
SAVE_DAY = datetime(2026, 8, 3, 9, tzinfo=UTC)


def priced(
    engine: CostEngine, request_id: str, usage: Usage, tier: str | None, **changes: Any
) -> RequestRecord:
    cost = engine.price(
        "openai",
        "gpt-4o-mini",
        usage,
        service_tier=tier,
        batch=tier == "batch",
        at=SAVE_DAY + timedelta(hours=3),
    )
    assert cost.cost_usd is not None
    return make_record(
        request_id,
        started_at=SAVE_DAY,
        model_requested="gpt-4o-mini",
        model_served="gpt-4o-mini",
        model_priced=cost.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        service_tier_served=tier,
        cost_usd=cost.cost_usd,
        **changes,
    )


def test_savings_per_lever(tmp_path: Path) -> None:
    engine = CostEngine()
    plain = Usage(input_tokens=10_000, output_tokens=1_000)
    cached = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=8_192)
    records = [
        *(priced(engine, f"b{n}", plain, "batch", feature="nightly") for n in range(3)),
        *(priced(engine, f"f{n}", plain, "flex", feature="nightly") for n in range(2)),
        *(priced(engine, f"c{n}", cached, "default", feature="chat") for n in range(4)),
        make_record(
            "hit",
            started_at=SAVE_DAY,
            feature="chat",
            model_priced=None,
            cost_usd=Decimal(0),
            input_tokens=0,
            output_tokens=0,
            cache_status="hit",
            details={"cache": {"saved_usd": Decimal("0.0123")}},
        ),
    ]
    standard = engine.price("openai", "gpt-4o-mini", plain, at=SAVE_DAY).cost_usd
    discounted = engine.price("openai", "gpt-4o-mini", cached, at=SAVE_DAY).cost_usd
    assert standard is not None
    assert discounted is not None

    with running_gateway(tmp_path) as gateway:
        write(gateway, records)
        data = get_json(gateway, "savings", since="2026-08-01", until="2026-08-05")

    features = {row["feature"]: row for row in data["features"]}
    nightly, chat = features["nightly"], features["chat"]
    batch_cost = records[0].cost_usd
    flex_cost = records[3].cost_usd
    assert batch_cost is not None
    assert flex_cost is not None
    assert Decimal(nightly["batch_usd"]) == (3 * (standard - batch_cost)).quantize(Decimal("1e-9"))
    assert Decimal(nightly["flex_usd"]) == (2 * (standard - flex_cost)).quantize(Decimal("1e-9"))
    assert Decimal(nightly["prompt_caching_usd"]) == 0
    assert Decimal(chat["prompt_caching_usd"]) == (4 * (standard - discounted)).quantize(
        Decimal("1e-9")
    )
    assert chat["response_cache_usd"] == "0.012300000"
    assert chat["unestimated_requests"] == 0
    assert Decimal(data["totals"]["saved_usd"]) > Decimal(chat["saved_usd"])
    assert data["levers"] == ["response_cache", "prompt_caching", "batch", "flex"]


def test_savings_skip_unpriced_groups(gateway: RunningGateway) -> None:
    data = get_json(gateway, "savings", **RANGE)
    search = next(row for row in data["features"] if row["feature"] == "search")
    assert search["unestimated_requests"] == 1
    assert search["requests"] == 2


def test_budgets_against_spend(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    records = [
        make_record(
            "m1", started_at=now - timedelta(minutes=5), team="search", cost_usd=Decimal("6")
        ),
        make_record(
            "m2", started_at=now - timedelta(minutes=4), team="support", cost_usd=Decimal("50")
        ),
    ]
    with running_gateway(tmp_path) as gateway:
        write(gateway, records)
        ledger = open_ledger(gateway.db_url)
        try:
            store = ControlStore(ledger.engine)
            store.create_budget(
                Budget("b-search", Scope("team", "search"), Decimal("10"), "monthly", now),
                actor="test",
            )
            store.create_budget(
                Budget("b-all", Scope("all"), Decimal("40"), "lifetime", now), actor="test"
            )
            store.cutoff_on(Cutoff(Scope("team", "support"), now, "over budget"), actor="test")
        finally:
            ledger.close()
        budgets = get_json(gateway, "budgets")
        events = get_json(gateway, "control")
        budgets_csv = get(gateway, "budgets", format="csv").text

    rows = {row["budget_id"]: row for row in budgets["budgets"]}
    assert budgets["available"] is True
    assert list(rows) == ["b-all", "b-search"]
    assert rows["b-all"]["spent_usd"] == "56"
    assert rows["b-all"]["status"] == "exhausted"
    assert rows["b-all"]["projected_usd"] is None
    assert rows["b-search"]["spent_usd"] == "6"
    assert rows["b-search"]["used_fraction"] == "0.6"
    assert rows["b-search"]["status"] == "warning"
    assert [mark["crossed"] for mark in rows["b-search"]["thresholds"]] == [True, False, False]
    assert [mark["amount_usd"] for mark in rows["b-search"]["thresholds"]] == ["5.0", "8.0", "10"]
    assert events["cutoffs"] == [
        {
            "scope": "team:support",
            "reason": "over budget",
            "created_at": events["cutoffs"][0]["created_at"],
        }
    ]
    assert [entry["action"] for entry in events["audit"]][-1] == "budget.created"
    assert budgets_csv.splitlines()[0].startswith("budget_id,scope,limit_usd,period")


def test_disabled_dashboard_is_404(tmp_path: Path) -> None:
    sections = {"dashboard": DashboardConfig(enabled=False)}
    with running_gateway(tmp_path, sections=sections) as gateway:
        response = httpx.get(f"{gateway.url}/ui/")
    assert response.status_code == 404
    assert "dashboard.enabled is false" in response.json()["error"]["message"]
