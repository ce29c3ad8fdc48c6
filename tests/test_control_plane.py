"""The control plane in process: periods, counters, estimates and calendar resets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.control_support import delete_prefix
from thrifty.config import ProviderConfig, load_config
from thrifty.control.admission import AdmissionRequest, Principal, Ticket
from thrifty.control.config import ControlConfig, parse_control_config
from thrifty.control.counters import (
    Admitted,
    BudgetCharge,
    Counters,
    MemoryCounters,
    Missing,
    Refused,
)
from thrifty.control.estimate import estimate_request
from thrifty.control.model import Budget
from thrifty.control.periods import window_at
from thrifty.control.plane import ControlPlane
from thrifty.control.redis_counters import RedisCounters
from thrifty.control.scopes import ALL, Scope, parse_scope
from thrifty.control.step import check_provider_keys
from thrifty.control.store import ControlStore
from thrifty.errors import ConfigError, ControlError
from thrifty.ledger import open_ledger
from thrifty.pricing.engine import CostEngine

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}


def test_calendar_windows_end_at_utc_boundaries() -> None:
    now = datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)
    monthly = window_at("monthly", now)
    quarterly = window_at("quarterly", now)
    weekly = window_at("weekly", now)
    assert monthly.key == "2025-03"
    assert monthly.end == datetime(2025, 4, 1, tzinfo=UTC)
    assert quarterly.key == "2025-Q1"
    assert quarterly.end == datetime(2025, 4, 1, tzinfo=UTC)
    assert weekly.start == datetime(2025, 3, 31, tzinfo=UTC)
    assert window_at("quarterly", datetime(2025, 12, 5, tzinfo=UTC)).end == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert window_at("rolling:24h", now).bucket_s == 1440
    assert window_at("lifetime", now).end is None


def test_scope_parsing_rejects_bad_scopes() -> None:
    assert parse_scope("team:search") == Scope("team", "search")
    assert parse_scope("all") == ALL
    assert str(parse_scope("tag:env=prod")) == "tag:env=prod"
    with pytest.raises(ControlError, match="invalid scope 'cohort:x'"):
        parse_scope("cohort:x")
    with pytest.raises(ControlError, match="tag:NAME=VALUE"):
        parse_scope("tag:env")


def test_config_errors_name_the_key() -> None:
    assert parse_control_config(None) == ControlConfig()
    strict = parse_control_config({"budget_mode": "fail_closed"})
    assert strict.unpriced_models == "reject"
    with pytest.raises(ConfigError, match=r"control\.budget_mode is 'strict'"):
        parse_control_config({"budget_mode": "strict"})
    with pytest.raises(ConfigError, match=r"control\.throttling\[0\]\.models is empty"):
        parse_control_config({"throttling": [{"at": 0.8, "action": "cheaper_model"}]})
    with pytest.raises(ConfigError, match=r"unknown key control\.redis\.host"):
        parse_control_config({"redis": {"url": "redis://127.0.0.1:6379/0", "host": "x"}})


def test_provider_without_key_is_rejected_with_keys_on() -> None:
    config = load_config(None, db_url="sqlite://")
    keyless = {"openai": ProviderConfig("openai", "openai", "http://127.0.0.1:9")}
    with pytest.raises(ConfigError, match="provider 'openai' has no api_key_env"):
        check_provider_keys(config.__class__(providers=keyless, db_url="sqlite://"))


def test_estimate_counts_output_cap_and_choices() -> None:
    engine = CostEngine()
    body = {**BODY, "n": 3}
    estimate = estimate_request(
        engine,
        endpoint="chat.completions",
        body=body,
        price_provider="openai",
        kind="openai",
        model="gpt-4o-mini",
        tier=None,
        mode="reserve",
        default_output_tokens=4096,
        at=datetime(2025, 6, 1, tzinfo=UTC),
    )
    assert estimate.output_tokens == 300
    assert estimate.input_tokens == 8
    assert estimate.cost_usd == Decimal("0.0001812")


def test_fail_closed_estimate_bounds_input_by_bytes() -> None:
    engine = CostEngine()
    common = {
        "endpoint": "chat.completions",
        "price_provider": "openai",
        "kind": "openai",
        "model": "gpt-4o-mini",
        "tier": None,
        "default_output_tokens": 4096,
        "at": datetime(2025, 6, 1, tzinfo=UTC),
    }
    loose = estimate_request(engine, body=BODY, mode="reserve", **common)  # type: ignore[arg-type]
    strict = estimate_request(engine, body=BODY, mode="fail_closed", **common)  # type: ignore[arg-type]
    image = {
        **BODY,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
    }
    unbounded = estimate_request(engine, body=image, mode="fail_closed", **common)  # type: ignore[arg-type]
    assert strict.input_tokens > loose.input_tokens
    assert strict.cost_usd is not None
    assert loose.cost_usd is not None
    assert strict.cost_usd > loose.cost_usd
    assert strict.unbounded_reason is None
    assert unbounded.unbounded_reason is not None
    assert "image_url" in unbounded.unbounded_reason


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"thrifty-test-{uuid.uuid4().hex[:12]}:"
    shared = RedisCounters(url, prefix=prefix)
    try:
        yield shared
    finally:
        await shared.close()
        delete_prefix(url, prefix)


def _charge(budget_id: str, limit: int, amount: int) -> BudgetCharge:
    budget = Budget(budget_id, ALL, Decimal(1), "monthly", datetime(2025, 1, 1, tzinfo=UTC))
    window = window_at("monthly", datetime(2025, 1, 15, tzinfo=UTC))
    return BudgetCharge(budget, window, limit, amount, ttl_s=3600)


async def test_counters_reserve_all_or_nothing(counters: Counters) -> None:
    wide, narrow = _charge("wide", 1000, 300), _charge("narrow", 500, 300)
    assert await counters.reserve("r1", [wide, narrow], [], 100.0, 200.0) == Missing(0)
    await counters.load(wide, {0: 0})
    await counters.load(narrow, {0: 100})

    first = await counters.reserve("r1", [wide, narrow], [], 100.0, 200.0)
    second = await counters.reserve("r2", [wide, narrow], [], 100.0, 200.0)
    levels = await counters.levels([wide, narrow], 100.0)

    assert isinstance(first, Admitted)
    assert second == Refused("budget", 1, 100, 300)
    assert levels[0] is not None
    assert levels[0].reserved == 300
    settled = await counters.settle("r1", [(wide, 250), (narrow, 250)], [], 101.0)
    assert [level.spent if level else None for level in settled] == [250, 350]
    assert [level.reserved if level else None for level in settled] == [0, 0]


async def test_expired_reservation_stops_counting(counters: Counters) -> None:
    charge = _charge("expiring", 1000, 600)
    await counters.load(charge, {0: 0})
    assert isinstance(await counters.reserve("lost", [charge], [], 100.0, 110.0), Admitted)
    assert isinstance(await counters.reserve("early", [charge], [], 105.0, 200.0), Refused)
    assert isinstance(await counters.reserve("late", [charge], [], 111.0, 200.0), Admitted)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ControlStore]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ControlStore(ledger.engine)
    ledger.close()


async def test_monthly_budget_resets_at_first_of_month(
    store: ControlStore, counters: Counters
) -> None:
    clock = Clock(datetime(2025, 1, 31, 23, 59, 30, tzinfo=UTC))
    budget = Budget("bud_month", ALL, Decimal("0.00013"), "monthly", clock.now)
    store.create_budget(budget, "test")
    plane = ControlPlane(ControlConfig(), store, CostEngine(), counters=counters, clock=clock)
    await plane.start()
    try:
        outcomes = [await _admit_and_settle(plane, f"jan{i}") for i in range(3)]
        assert [isinstance(outcome, Ticket) for outcome in outcomes] == [True, True, False]

        clock.now = datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
        assert not isinstance(await _admit_and_settle(plane, "last"), Ticket)

        clock.now = datetime(2025, 2, 1, 0, 0, tzinfo=UTC)
        assert isinstance(await _admit_and_settle(plane, "feb"), Ticket)
    finally:
        await plane.stop()


async def _admit_and_settle(plane: ControlPlane, request_id: str) -> object:
    request = AdmissionRequest(
        request_id, "chat.completions", "openai", "openai", "openai", "gpt-4o-mini", None, BODY
    )
    outcome = await plane.admit(request, Principal("open"), frozenset({ALL}))
    if isinstance(outcome, Ticket):
        assert outcome.estimate is not None
        await plane.settle(outcome, outcome.estimate.cost_usd, outcome.estimate.tokens)
    return outcome
