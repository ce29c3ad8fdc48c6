"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright).

Pages must load with no console errors, filters must change the numbers
shown, the charts must render and CSV exports must download. Screenshots
go to test-artifacts/ (git-ignored); docs/dashboard.png is a copy of the
overview one. Chromium start-up and parsing plotly.js (4.8 MB) make these
tests take several seconds.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import make_record
from tests.services import require_chromium
from thrifty.config import ProviderConfig
from thrifty.ledger import open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage.model import Usage

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ["overview", "savings", "unit-costs", "people", "requests", "budgets", "alerts", "batches"]

# (feature, team, provider, model, tier, cache status chance, weight)
FEATURES = [
    ("support-bot", "support", "openai", "gpt-4o-mini", None, 0.3, 6),
    ("search-answer", "search", "openai", "gpt-4o", None, 0.0, 4),
    ("summarize", "search", "anthropic", "claude-sonnet-4-5", "batch", 0.0, 3),
    ("classify", "growth", "openai", "gpt-4o-mini", "flex", 0.0, 3),
    ("email-draft", "growth", "anthropic", "claude-haiku-4-5", None, 0.0, 2),
]


def workload(now: datetime, count: int = 400, seed: int = 3) -> list[RequestRecord]:
    """Priced requests over the last 28 days, shaped like a small company's traffic."""
    rng = random.Random(seed)
    engine = CostEngine()
    weights = [feature[-1] for feature in FEATURES]
    records = []
    for number in range(count):
        name, team, provider, model, tier, hit_chance, _ = rng.choices(FEATURES, weights)[0]
        started = now - timedelta(minutes=rng.randrange(28 * 24 * 60))
        usage = Usage(
            input_tokens=rng.randrange(500, 8000),
            output_tokens=rng.randrange(50, 900),
        )
        if rng.random() < 0.4:
            usage = Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.input_tokens // 2,
            )
        cost = engine.price(
            provider, model, usage, service_tier=tier, batch=tier == "batch", at=started
        )
        assert cost.cost_usd is not None, cost.unpriced_reason
        changes: dict[str, Any] = {
            "started_at": started,
            "ended_at": started + timedelta(milliseconds=rng.randrange(300, 4000)),
            "provider": provider,
            "endpoint": "/v1/messages" if provider == "anthropic" else "/v1/chat/completions",
            "model_requested": model,
            "model_served": model,
            "model_priced": cost.model,
            "service_tier_served": tier,
            "feature": name,
            "team": team,
            "key_id": f"key_{team}",
            "user": f"user-{rng.randrange(12)}",
            "session": f"conv-{rng.randrange(60)}",
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cost_usd": cost.cost_usd,
            "tags": {"customer": rng.choice(["acme", "globex", "initech"])},
        }
        if rng.random() < hit_chance:
            saved = cost.cost_usd
            changes.update(
                cost_usd=Decimal(0),
                cache_status="hit",
                model_priced=None,
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                details={"cache": {"saved_usd": saved}},
            )
        records.append(make_record(f"req-{number:04d}", **changes))
    return records


def write(gateway: RunningGateway, records: list[RequestRecord]) -> None:
    ledger = open_ledger(gateway.db_url)
    try:
        ledger.write(records)
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("browser")) as running:
        write(running, workload(datetime.now(UTC)))
        yield running


class Page:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def open(self, fragment: str, expected: str) -> None:
        """Load /ui/#/FRAGMENT and wait until the page has rendered ``expected``."""
        self.page.goto(f"{self.base_url}/ui/#/{fragment}")
        self.wait_loaded(expected)

    def wait_loaded(self, expected: str) -> None:
        self.page.wait_for_selector(f"body[data-loaded='{expected}']", timeout=20_000)

    def reload_marker(self) -> None:
        self.page.evaluate("delete document.body.dataset.loaded")

    def card(self, label: str) -> str:
        card = self.page.locator(".card", has=self.page.locator(".label", has_text=label)).first
        return str(card.locator(".value").inner_text())

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, gateway: RunningGateway) -> Iterator[Page]:
    page = Page(browser, gateway.url)
    yield page
    page.close()


def api(gateway: RunningGateway, path: str, **params: str) -> Any:
    response = httpx.get(f"{gateway.url}/ui/api/{path}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def test_every_page_loads_without_errors(tab: Page) -> None:
    for name in PAGES:
        tab.reload_marker()
        tab.open(name, name)
        assert tab.page.locator("#view .error").count() == 0, name
        tab.screenshot(name)
    assert tab.errors == []


def test_spend_chart_renders_stacked_bars(tab: Page, gateway: RunningGateway) -> None:
    tab.open("overview", "overview")
    tab.page.wait_for_selector("#spend-chart .main-svg")
    stacks = api(gateway, "overview")["series"]["stacks"]
    assert tab.page.locator("#spend-chart g.trace.bars").count() == len(stacks)
    assert tab.page.locator("#spend-chart g.trace.bars path").count() > 0
    legend = tab.page.locator("#spend-chart .legendtext")
    # Plotly lists stacked traces top first, the reverse of the order they were given.
    assert legend.evaluate_all("texts => texts.map(text => text.textContent)") == [
        stack["name"] for stack in reversed(stacks)
    ]
    tab.screenshot("overview")
    assert tab.errors == []


def test_filter_changes_numbers_shown(tab: Page, gateway: RunningGateway) -> None:
    tab.open("overview", "overview")
    everything = api(gateway, "overview")["totals"]
    assert tab.card("Requests") == f"{everything['requests']:,}"

    tab.reload_marker()
    tab.page.fill("#filters input[name=feature]", "summarize")
    tab.page.click("#apply")
    tab.wait_loaded("overview")
    summarize = api(gateway, "overview", feature="summarize")["totals"]
    assert summarize["requests"] < everything["requests"]
    assert tab.card("Requests") == f"{summarize['requests']:,}"
    assert "feature=summarize" in tab.page.url
    teams = tab.page.locator("#top-lists section", has_text="Top teams").locator("tbody tr")
    assert teams.count() == 1
    assert tab.errors == []


def test_drill_down_from_top_list(tab: Page, gateway: RunningGateway) -> None:
    tab.open("overview", "overview")
    first = tab.page.locator("#top-lists section", has_text="Top models").locator("a.drill").first
    model = first.inner_text()
    tab.reload_marker()
    first.click()
    tab.wait_loaded("overview")
    expected = api(gateway, "overview", model=model)["totals"]["requests"]
    assert tab.card("Requests") == f"{expected:,}"
    assert tab.page.input_value("#filters input[name=model]") == model


def test_savings_and_unit_cost_charts_render(tab: Page) -> None:
    tab.open("savings", "savings")
    assert tab.page.locator("#savings-chart g.trace.bars path").count() == 4
    tab.reload_marker()
    tab.open("unit-costs", "unit-costs")
    assert tab.page.locator("#unit-chart g.trace.scatter").count() == len(FEATURES)
    assert tab.errors == []


def test_csv_export_downloads_exact_table(tab: Page, gateway: RunningGateway) -> None:
    tab.open("overview", "overview")
    link = tab.page.locator("#top-lists section", has_text="Top features").locator("a.csv")
    with tab.page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "thrifty-top.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    expected = api(gateway, "top", dimension="feature")["rows"]
    assert [row["value"] for row in rows] == [row["value"] for row in expected]
    assert [row["cost_usd"] for row in rows] == [row["cost_usd"] for row in expected]


def test_session_page_from_people(tab: Page) -> None:
    tab.open("people", "people")
    session = tab.page.locator("section", has_text="Top sessions").locator("a.drill").first
    name = session.inner_text()
    tab.reload_marker()
    session.click()
    tab.wait_loaded("sessions")
    assert tab.page.locator("section h2", has_text=f"Session {name}").count() == 1
    assert tab.page.locator("tbody tr").count() >= 1
    tab.screenshot("session")
    assert tab.errors == []


def test_login_required_once_master_key_set(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_url: str
) -> None:
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "sk-browser-master")
    monkeypatch.setenv("THRIFTY_TEST_BROWSER_PROVIDER_KEY", "sk-sandbox")
    providers = {
        name: ProviderConfig(name, name, sandbox_url, "THRIFTY_TEST_BROWSER_PROVIDER_KEY")
        for name in ("openai", "anthropic")
    }
    with running_gateway(tmp_path, extra_providers=providers) as gateway:
        tab = Page(browser, gateway.url)
        try:
            tab.page.goto(f"{gateway.url}/ui/#/savings")
            assert "/ui/login" in tab.page.url
            tab.page.fill("input[name=key]", "sk-not-it")
            tab.page.click("button[type=submit]")
            assert tab.page.locator(".login-error").inner_text() == "That key is not valid."
            tab.screenshot("login")

            tab.page.fill("input[name=key]", "sk-browser-master")
            tab.page.click("button[type=submit]")
            tab.wait_loaded("overview")
            assert tab.page.locator("#role").inner_text() == "master key"
            assert tab.page.is_visible("#logout")
            # The failed attempt logged a 401 for the form post; nothing else may fail.
            assert [error for error in tab.errors if "401" not in error] == []
        finally:
            tab.close()


def test_advice_page_shows_plan_and_chart(tab: Page, gateway: RunningGateway) -> None:
    tab.open("advice", "advice")
    tab.page.wait_for_selector("#advice-chart .main-svg")
    data = api(gateway, "advice")
    plan_rows = tab.page.locator("section", has_text="Savings plan").locator("tbody tr")
    assert plan_rows.count() == len(data["plan"]["levers"])
    assert tab.page.locator("#advice-chart g.trace.bars").count() == 3
    assert tab.card("Anomalies") == str(len(data["anomalies"]))
    tab.screenshot("advice")
    assert tab.errors == []
