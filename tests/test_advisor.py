"""The savings advisor: levers on a hand-built ledger, and estimates checked against replays."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.gateway_support import running_gateway
from tests.ledger_support import make_record
from tests.services import require_shared_data
from thrifty.advisor.forecast import project_month
from thrifty.advisor.plan import build_plan
from thrifty.advisor.simulation import Scenario, Simulator
from thrifty.advisor.traffic import DAYS_PER_MONTH, load_traffic, usage_of
from thrifty.advisor.whatif import load_policy, run_whatif
from thrifty.config import ProviderConfig
from thrifty.errors import ConfigError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox.server import SandboxServer
from thrifty.sandbox.settings import SandboxSettings
from thrifty.traces import read_trace
from thrifty.traces.replay import replay
from thrifty.usage import Usage

DAY_START = datetime(2026, 11, 2, tzinfo=UTC)
ENGINE = CostEngine()


def _priced(request_id: str, **changes: object) -> RequestRecord:
    changes.setdefault("details", {})
    record = make_record(request_id, **changes)
    cost = ENGINE.price(record.provider, record.model_requested, usage_of(record))
    return replace(record, cost_usd=cost.cost_usd, cost_breakdown=dict(cost.breakdown))


def _ledger(tmp_path: Path, records: list[RequestRecord]) -> Ledger:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'advisor.db'}")
    ledger.write(records)
    return ledger


def _facts(fingerprint: str, *, temperature: float | None = 0) -> dict[str, object]:
    return {"request": {"fingerprint": fingerprint, "temperature": temperature, "max_tokens": 500}}


def test_batch_lever_saves_half_of_a_background_feature(tmp_path: Path) -> None:
    records = [
        _priced(f"r{i}", feature="nightly-digest", started_at=DAY_START + timedelta(hours=i))
        for i in range(10)
    ]
    ledger = _ledger(tmp_path, records)
    traffic = load_traffic(ledger, since=DAY_START, until=DAY_START + timedelta(days=1))
    plan = build_plan(traffic, ENGINE, background=["nightly-digest"])
    ledger.close()

    spend = sum((record.cost_usd or Decimal(0) for record in records), Decimal(0))
    batch = next(lever for lever in plan.levers if lever.lever == "batch")
    assert traffic.monthly_factor == DAYS_PER_MONTH
    assert batch.saving_low == spend / 2 * DAYS_PER_MONTH
    assert batch.saving_high == spend / 2 * DAYS_PER_MONTH
    assert batch.requests == 10
    assert batch.features == ["nightly-digest"]
    assert plan.monthly_spend == spend * DAYS_PER_MONTH


def test_exact_repeat_at_temperature_zero_is_free(tmp_path: Path) -> None:
    first = _priced("a", feature="faq", details=_facts("same"))
    repeat = _priced(
        "b",
        feature="faq",
        details=_facts("same"),
        started_at=first.started_at + timedelta(minutes=2),
    )
    sampled = _priced(
        "c",
        feature="faq",
        details=_facts("other", temperature=1),
        started_at=first.started_at + timedelta(minutes=3),
    )
    ledger = _ledger(tmp_path, [first, repeat, sampled])
    plan = build_plan(load_traffic(ledger), ENGINE)
    ledger.close()

    cache = next(lever for lever in plan.levers if lever.lever == "response_cache")
    factor = Decimal(86400) * DAYS_PER_MONTH / 3600  # under an hour is scaled as one hour
    full = repeat.cost_usd or Decimal(0)
    # gpt-4o-mini has no Flex tier, so no earlier lever takes part of the saving.
    assert cache.saving_high == full * factor
    assert cache.saving_low == full * factor
    assert cache.samples == ["b"]


def test_levers_never_count_a_dollar_twice(tmp_path: Path) -> None:
    records = [
        _priced(
            f"r{i}",
            feature="report-builder",
            details=_facts("same"),
            started_at=DAY_START + timedelta(minutes=i),
        )
        for i in range(6)
    ]
    ledger = _ledger(tmp_path, records)
    traffic = load_traffic(ledger)
    ledger.close()
    scenario = Scenario(
        name="test",
        batch_features=frozenset({"report-builder"}),
        flex_features=None,
        flex_fallback_share=Decimal(0),
        cache_ttl=timedelta(hours=1),
        cache_any_temperature=True,
        prompt_cache_window=None,
        prefix_upper_bound=False,
        successors={},
    )
    result = Simulator(ENGINE, scenario).run(traffic)

    each = records[0].cost_usd or Decimal(0)
    saved = sum((tally.saving for tally in result.levers.values()), Decimal(0))
    assert result.levers["batch"].saving == each / 2 * 6
    assert result.levers["response_cache"].saving == each / 2 * 5
    assert result.levers["flex"].saving == 0
    assert saved + result.simulated == result.spend
    assert result.simulated == each / 2


def test_output_cap_far_above_use_is_advised(tmp_path: Path) -> None:
    records = [
        _priced(f"r{i}", feature="titles", output_tokens=20, details=_facts(f"f{i}"))
        for i in range(12)
    ]
    ledger = _ledger(tmp_path, records)
    plan = build_plan(load_traffic(ledger), ENGINE)
    ledger.close()
    titles = [item.title for item in plan.advice]
    assert "Lower max_tokens for titles" in titles


def _replay_mooncake(
    tmp_path: Path, name: str, cache_ttl_s: float, rows: list[object]
) -> tuple[str, Decimal]:
    settings = SandboxSettings(openai_cache_ttl_s=cache_ttl_s)
    with SandboxServer(settings) as sandbox:
        provider = ProviderConfig("openai", "openai", sandbox.url)
        folder = tmp_path / name
        with running_gateway(folder, extra_providers={"openai": provider}) as gateway:
            summary = asyncio.run(
                replay(
                    rows,  # type: ignore[arg-type]
                    base_url=gateway.url,
                    model="gpt-4o-mini",
                    concurrency=1,
                    headers={"X-Thrifty-Feature": "chat"},
                )
            )
    assert summary.errors == 0
    assert summary.cost_usd is not None
    return gateway.db_url, summary.cost_usd


def test_prompt_caching_estimate_brackets_a_cached_replay(tmp_path: Path) -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    # Keep the rows whose first two 512-token blocks recur: only a prefix of
    # at least 1,024 tokens can be cached, and most early rows share one block.
    early = list(itertools.islice(read_trace(path), 400))
    pairs = Counter(row.prefix_blocks[:2] for row in early if len(row.prefix_blocks) >= 2)
    rows = [row for row in early if pairs[row.prefix_blocks[:2]] >= 2]
    assert len(rows) >= 10

    uncached_db, uncached_cost = _replay_mooncake(tmp_path, "uncached", 0.0, rows)
    _, cached_cost = _replay_mooncake(tmp_path, "cached", 600.0, rows)
    actual_saving = uncached_cost - cached_cost

    ledger = open_ledger(uncached_db)
    traffic = load_traffic(ledger)
    ledger.close()
    plan = build_plan(traffic, ENGINE)
    lever = next(lever for lever in plan.levers if lever.lever == "prompt_caching")
    factor = traffic.monthly_factor
    assert actual_saving > 0
    assert lever.alone_low / factor <= actual_saving
    assert actual_saving <= lever.alone_high / factor


@pytest.mark.parametrize("hours", [1, 30])
def test_monthly_factor_scales_the_period(tmp_path: Path, hours: int) -> None:
    records = [_priced("r0"), _priced("r1", started_at=DAY_START)]
    ledger = _ledger(tmp_path, records)
    traffic = load_traffic(ledger, since=DAY_START, until=DAY_START + timedelta(hours=hours))
    ledger.close()
    assert traffic.monthly_factor == DAYS_PER_MONTH * 24 / hours


def test_whatif_reprices_batch_and_model_changes(tmp_path: Path) -> None:
    records = [
        _priced("n1", feature="nightly"),
        _priced("c1", feature="chat", started_at=DAY_START),
    ]
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "changes:\n"
        "  - feature: nightly\n    batch: true\n"
        "  - feature: chat\n    model: gpt-4.1-nano\n    max_input_tokens: 1000\n"
    )
    ledger = _ledger(tmp_path, records)
    result = run_whatif(load_traffic(ledger), ENGINE, load_policy(policy))
    ledger.close()

    nightly_cost = records[0].cost_usd or Decimal(0)
    trimmed = replace(usage_of(records[1]), input_tokens=1000)
    chat_after = ENGINE.price("openai", "gpt-4.1-nano", trimmed).cost_usd
    assert result.features["nightly"].after == nightly_cost / 2
    assert result.features["chat"].after == chat_after
    assert result.before == sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))


def test_whatif_policy_errors_name_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("changes:\n  - feature: chat\n    flex: {fallback_share: 2}\n")
    with pytest.raises(ConfigError, match=r"changes\[0\]\.flex"):
        load_policy(policy)


def test_forecast_adds_the_mean_day_for_days_left(tmp_path: Path) -> None:
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    records = [
        _priced(f"d{day}", started_at=datetime(2026, 11, day, 9, tzinfo=UTC))
        for day in range(1, 11)
    ]
    ledger = _ledger(tmp_path, records)
    (total,) = project_month(load_traffic(ledger), now)
    ledger.close()
    each = records[0].cost_usd or Decimal(0)
    assert total.spent == each * 10
    assert total.projected == each * 30
    assert total.low == each * 30
    assert total.high == each * 30


def _anthropic_prefix_record(request_id: str, minutes: int) -> RequestRecord:
    prefixes = {str(length): f"p{length}" for length in (2048, 4096, 8192)}
    return _priced(
        request_id,
        provider="anthropic",
        model_requested="claude-haiku-4-5",
        model_served="claude-haiku-4-5",
        model_priced="claude-haiku-4-5",
        input_tokens=2500,
        output_tokens=100,
        started_at=DAY_START + timedelta(minutes=minutes),
        details={"request": {"prefix": prefixes, "prompt_chars": 10000}},
    )


def _prompt_caching_only(window: timedelta) -> Scenario:
    return Scenario(
        name="test",
        batch_features=frozenset(),
        flex_features=None,
        flex_fallback_share=Decimal(0),
        cache_ttl=None,
        cache_any_temperature=False,
        prompt_cache_window=window,
        prefix_upper_bound=False,
        successors={},
        levers=frozenset({"prompt_caching"}),
    )


@pytest.mark.parametrize(
    ("window", "one_hour"), [(timedelta(minutes=5), False), (timedelta(hours=1), True)]
)
def test_prompt_caching_charges_anthropic_write(
    tmp_path: Path, window: timedelta, one_hour: bool
) -> None:
    records = [_anthropic_prefix_record(f"r{i}", i) for i in range(3)]
    ledger = _ledger(tmp_path, records)
    traffic = load_traffic(ledger)
    ledger.close()
    result = Simulator(ENGINE, _prompt_caching_only(window)).run(traffic)

    # 8,192 of 10,000 characters are shared: 2,500 * 8192 // 10000 = 2,048 tokens.
    full = Usage(input_tokens=2500, output_tokens=100)
    read = replace(full, cache_read_tokens=2048)
    written = Usage(
        input_tokens=2500, cache_write_tokens=2048, cache_write_1h_tokens=2048 if one_hour else 0
    )
    price = ENGINE.price
    before = price("anthropic", "claude-haiku-4-5", full).cost_usd or Decimal(0)
    after = price("anthropic", "claude-haiku-4-5", read).cost_usd or Decimal(0)
    plain = price("anthropic", "claude-haiku-4-5", Usage(input_tokens=2500)).cost_usd or Decimal(0)
    as_write = price("anthropic", "claude-haiku-4-5", written).cost_usd or Decimal(0)
    premium = as_write - plain
    tally = result.levers["prompt_caching"]
    # The first read pays the first request's write; the second read pays none.
    assert premium == Decimal("0.000001") * 2048 * (Decimal(1) if one_hour else Decimal("0.25"))
    assert tally.saving == 2 * (before - after) - premium
    assert tally.requests == 2
    assert result.simulated == before + 2 * after + premium


def test_costlier_model_update_after_cache_write_is_skipped(tmp_path: Path) -> None:
    records = [_anthropic_prefix_record(f"r{i}", i) for i in range(3)]
    ledger = _ledger(tmp_path, records)
    traffic = load_traffic(ledger)
    ledger.close()
    scenario = replace(
        _prompt_caching_only(timedelta(minutes=5)),
        successors={"claude-haiku-4-5": "claude-sonnet-4-5"},
        levers=frozenset({"prompt_caching", "model_update"}),
    )
    result = Simulator(ENGINE, scenario).run(traffic)

    alone = Simulator(ENGINE, _prompt_caching_only(timedelta(minutes=5))).run(traffic)
    assert result.levers["model_update"].requests == 0
    assert result.levers["model_update"].saving == 0
    assert result.simulated == alone.simulated
