"""The advisor's routing and prompt-trimming levers, estimated from evidence in the ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ledger_support import make_record
from thrifty.advisor.bench_evidence import ModelScore, load_bench_scores
from thrifty.advisor.plan import LeverPlan, Plan, build_plan
from thrifty.advisor.traffic import DAYS_PER_MONTH, Traffic, load_traffic, usage_of
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.prompts.config import parse_prompts_config
from thrifty.routing.bench.ledger import annotate_grades
from thrifty.routing.bench.results import BenchResult
from thrifty.routing.config import parse_routing_config
from thrifty.usage import Usage

DAY_START = datetime(2026, 11, 2, tzinfo=UTC)
BENCH_DAY = DAY_START - timedelta(days=3)
ENGINE = CostEngine()


def _priced(request_id: str, model: str = "gpt-4o-mini", **changes: Any) -> RequestRecord:
    changes.setdefault("details", {})
    record = make_record(
        request_id, model_requested=model, model_served=model, model_priced=model, **changes
    )
    cost = ENGINE.price(record.provider, model, usage_of(record), at=record.started_at)
    return replace(record, cost_usd=cost.cost_usd, cost_breakdown=dict(cost.breakdown))


def _graded(feature: str, model: str, passed: int, total: int) -> list[RequestRecord]:
    """Benchmark answers of one model on one feature's evaluation set: ``passed`` of ``total``."""
    return [
        _priced(
            f"bench-{feature}-{model}-{i}",
            model,
            feature="bench",
            started_at=BENCH_DAY + timedelta(seconds=i),
            details={
                "bench": {
                    "run": "bench_1",
                    "item": str(i),
                    "score": 1.0 if i < passed else 0.0,
                    "grade": "exact",
                    "feature": feature,
                }
            },
        )
        for i in range(total)
    ]


def _traffic(feature: str, model: str, count: int, *, first_hour: int = 1) -> list[RequestRecord]:
    return [
        _priced(
            f"{feature}-{i}",
            model,
            feature=feature,
            input_tokens=2000,
            started_at=DAY_START + timedelta(hours=first_hour + i),
        )
        for i in range(count)
    ]


def _plan(tmp_path: Path, records: list[RequestRecord]) -> tuple[Plan, Traffic]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'levers.db'}")
    try:
        ledger.write(records)
        traffic = load_traffic(ledger, since=DAY_START, until=DAY_START + timedelta(days=1))
        plan = build_plan(traffic, ENGINE, bench=load_bench_scores(ledger))
    finally:
        ledger.close()
    return plan, traffic


def _lever(plan: Plan, name: str) -> LeverPlan:
    return next(lever for lever in plan.levers if lever.lever == name)


def _repriced(record: RequestRecord, model: str) -> Decimal:
    cost = ENGINE.price(record.provider, model, usage_of(record), at=record.started_at).cost_usd
    assert cost is not None
    return cost


def test_routing_reprices_benchmarked_feature(tmp_path: Path) -> None:
    support = _traffic("support", "gpt-4o", 4)
    bench = _graded("support", "gpt-4o", 34, 40) + _graded("support", "gpt-4o-mini", 40, 40)
    plan, _ = _plan(tmp_path, support + bench)

    routing = _lever(plan, "routing")
    # 2,000 input and 300 output tokens: $0.008 on gpt-4o, $0.00048 on gpt-4o-mini.
    per_request = Decimal("0.008") - Decimal("0.00048")
    assert (
        sum((_repriced(r, "gpt-4o") - _repriced(r, "gpt-4o-mini") for r in support), Decimal(0))
        == per_request * 4
    )
    assert routing.saving_low == per_request * 4 * DAYS_PER_MONTH
    assert routing.saving_high == per_request * 4 * DAYS_PER_MONTH
    assert routing.applies_to == Decimal("0.008") * 4 * DAYS_PER_MONTH
    assert routing.requests == 4
    assert routing.features == ["support"]
    assert routing.samples == ["support-0", "support-1", "support-2"]
    # Routing takes the place of the gpt-4o -> gpt-4.1 update for this feature.
    assert all(lever.lever != "model_update" for lever in plan.levers)
    assert all(item.title != "Routing to cheaper models" for item in plan.advice)


def test_routing_skips_worse_cheaper_model(tmp_path: Path) -> None:
    legal = _traffic("legal", "gpt-4o", 2)
    bench = _graded("legal", "gpt-4o", 40, 40) + _graded("legal", "gpt-4o-mini", 30, 40)
    plan, _ = _plan(tmp_path, legal + bench)

    assert all(lever.lever != "routing" for lever in plan.levers)
    update = _lever(plan, "model_update")
    assert update.features == ["legal"]


def test_routing_two_features_one_qualifies(tmp_path: Path) -> None:
    support = _traffic("support", "gpt-4o", 4)
    legal = _traffic("legal", "gpt-4o", 2, first_hour=9)
    bench = (
        _graded("support", "gpt-4o", 34, 40)
        + _graded("support", "gpt-4o-mini", 40, 40)
        + _graded("legal", "gpt-4o", 40, 40)
        + _graded("legal", "gpt-4o-mini", 30, 40)
    )
    plan, _ = _plan(tmp_path, support + legal + bench)

    routing = _lever(plan, "routing")
    update = _lever(plan, "model_update")
    assert routing.features == ["support"]
    assert routing.saving_low == (Decimal("0.008") - Decimal("0.00048")) * 4 * DAYS_PER_MONTH
    assert update.features == ["legal"]
    assert update.requests == 2


def test_routing_range_uses_wilson_bound(tmp_path: Path) -> None:
    # 30 of 30 against 30 of 30: the same mean, but the Wilson lower bound of
    # 30 answers (0.886) is more than 2 points below 1.0.
    support = _traffic("support", "gpt-4o", 4)
    bench = _graded("support", "gpt-4o", 30, 30) + _graded("support", "gpt-4o-mini", 30, 30)
    plan, _ = _plan(tmp_path, support + bench)

    routing = _lever(plan, "routing")
    assert routing.saving_low == 0
    assert routing.saving_high == (Decimal("0.008") - Decimal("0.00048")) * 4 * DAYS_PER_MONTH
    # The cautious scenario does not fall back to the unbenchmarked gpt-4.1.
    assert all(lever.lever != "model_update" for lever in plan.levers)


def test_routing_without_bench_needs_benchmark(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, _traffic("support", "gpt-4o", 4))

    assert all(lever.lever != "routing" for lever in plan.levers)
    advice = next(item for item in plan.advice if item.title == "Routing to cheaper models")
    assert advice.detail.startswith("needs a benchmark for support: run `thrifty bench models ")
    assert "--feature FEATURE --db LEDGER_URL" in advice.detail


def test_routing_needs_enough_answers(tmp_path: Path) -> None:
    support = _traffic("support", "gpt-4o", 4)
    bench = _graded("support", "gpt-4o", 10, 10) + _graded("support", "gpt-4o-mini", 10, 10)
    plan, _ = _plan(tmp_path, support + bench)

    assert all(lever.lever != "routing" for lever in plan.levers)


def test_routing_snippet_parses(tmp_path: Path) -> None:
    support = _traffic("support", "gpt-4o", 4)
    bench = _graded("support", "gpt-4o", 34, 40) + _graded("support", "gpt-4o-mini", 40, 40)
    plan, _ = _plan(tmp_path, support + bench)

    snippet = _lever(plan, "routing").config
    assert snippet.splitlines() == [
        "routing:",
        "  routes:",
        "    support:",
        "      models: [gpt-4o-mini, gpt-4o]",
        "      policy: rules",
        "      rules: [{when: {feature: [support]}, model: gpt-4o-mini}]",
        "      otherwise: gpt-4o",
    ]
    config = parse_routing_config(yaml.safe_load(snippet)["routing"])
    router = config.router_for("thrifty/support")
    assert router is not None
    assert router.models == ("gpt-4o-mini", "gpt-4o")


def _annotation(before: int, lossless: int, trimmed: int) -> dict[str, Any]:
    after_lossless = before - lossless
    after = after_lossless - trimmed
    return {
        "prompts": {
            "settings": "feature:summaries",
            "input_tokens_before": before,
            "input_tokens_after": after,
            "saved_tokens": before - after,
            "transforms": {
                "whitespace": {
                    "input_tokens_before": before,
                    "input_tokens_after": after_lossless,
                    "saved_tokens": lossless,
                },
                "trim": {
                    "input_tokens_before": after_lossless,
                    "input_tokens_after": after,
                    "saved_tokens": trimmed,
                },
            },
            "saved_usd": "0",
        }
    }


def _summaries() -> list[RequestRecord]:
    optimized = [
        _priced(
            f"opt-{i}",
            feature="summaries",
            input_tokens=700,
            started_at=DAY_START + timedelta(hours=1 + i),
            details=_annotation(1000, 100, 200),
        )
        for i in range(2)
    ]
    plain = [
        _priced(
            f"plain-{i}",
            feature="summaries",
            input_tokens=1200,
            cache_read_tokens=200,
            started_at=DAY_START + timedelta(hours=5 + i),
        )
        for i in range(2)
    ]
    return optimized + plain


def test_trimming_prices_removed_share(tmp_path: Path) -> None:
    plan, traffic = _plan(tmp_path, _summaries())

    trimming = _lever(plan, "prompt_trimming")
    plain = [record for record in traffic.records if record.request_id.startswith("plain")]
    # Of 1,000 uncached input tokens, 10% (lossless) or 30% (every transform)
    # is removed: 100 or 300 tokens at gpt-4o-mini's $0.15 per million.
    assert trimming.saving_low == Decimal("0.000015") * 2 * DAYS_PER_MONTH
    assert trimming.saving_high == Decimal("0.000045") * 2 * DAYS_PER_MONTH
    removed = ENGINE.price("openai", "gpt-4o-mini", Usage(input_tokens=100)).cost_usd
    assert removed == Decimal("0.000015")
    assert trimming.requests == 2
    assert trimming.samples == ["plain-0", "plain-1"]
    assert (
        trimming.applies_to
        == sum((record.cost_usd or Decimal(0) for record in plain), Decimal(0)) * DAYS_PER_MONTH
    )
    assert trimming.features == ["summaries"]
    assert all(item.title != "Prompt trimming" for item in plan.advice)


def test_trimming_snippet_parses(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, _summaries())

    snippet = _lever(plan, "prompt_trimming").config
    config = parse_prompts_config(yaml.safe_load(snippet)["prompts"])
    assert config.features["summaries"].transforms == (
        "drop_empty",
        "whitespace",
        "minify_json",
        "dedupe",
    )


def test_trimming_without_annotations_not_estimated(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, _traffic("support", "gpt-4o", 4))

    assert all(lever.lever != "prompt_trimming" for lever in plan.levers)
    advice = next(item for item in plan.advice if item.title == "Prompt trimming")
    assert advice.detail.startswith("not estimated for support: ")
    assert "`thrifty prompts analyze`" in advice.detail


def test_bench_scores_ignore_unmapped_grades(tmp_path: Path) -> None:
    mapped = _graded("support", "gpt-4o", 3, 4)
    unmapped = [
        replace(record, request_id=f"x-{i}", details={"bench": {"run": "b", "score": 1.0}})
        for i, record in enumerate(mapped)
    ]
    ungraded = [
        replace(
            record, request_id=f"u-{i}", details={"bench": {"feature": "support", "score": None}}
        )
        for i, record in enumerate(mapped)
    ]
    ledger = open_ledger(f"sqlite:///{tmp_path / 'scores.db'}")
    try:
        ledger.write(mapped + unmapped + ungraded)
        scores = load_bench_scores(ledger)
    finally:
        ledger.close()

    assert scores == {"support": {"gpt-4o": ModelScore("openai", "gpt-4o", 4, 3.0)}}
    assert scores["support"]["gpt-4o"].mean == 0.75


def test_wilson_lower_bound_of_all_passed() -> None:
    score = ModelScore("openai", "gpt-4o-mini", 40, 40.0)
    assert score.wilson_lower == pytest.approx(40 / (40 + 1.959964**2))


def _ledger_with(tmp_path: Path, records: list[RequestRecord]) -> Ledger:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'grades.db'}")
    ledger.write(records)
    return ledger


def test_annotate_grades_stores_feature(tmp_path: Path) -> None:
    ledger = _ledger_with(tmp_path, [_priced("answer-1", feature="bench")])
    result = BenchResult(
        item_id="q1",
        model="gpt-4o-mini",
        prompt="2 + 2?",
        answer="4",
        score=1.0,
        grade_detail="exact match",
        cost_usd=None,
        latency_ms=1.0,
        request_id="answer-1",
    )
    try:
        annotated = annotate_grades(ledger, [result], "bench_1", feature="support", timeout_s=0)
        scores = load_bench_scores(ledger)
    finally:
        ledger.close()

    assert annotated == 1
    assert scores == {"support": {"gpt-4o-mini": ModelScore("openai", "gpt-4o-mini", 1, 1.0)}}
