"""Evaluation figures, costs at list prices, and bootstrap intervals."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from thrifty.pricing import CustomPrice
from thrifty.routing.costs import ModelPrice, PairCosts, estimate_costs, guess_provider
from thrifty.routing.evaluation import evaluate
from thrifty.routing.outcomes import Outcome, OutcomeSet, PairedOutcomes
from thrifty.tokens import count_text

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def paired_with_costs() -> PairedOutcomes:
    """Four prompts with recorded costs: strong $0.010 each, weak $0.001 each."""
    rows = [
        ("p0", 1.0, 0.0),
        ("p1", 1.0, 0.0),
        ("p2", 1.0, 1.0),
        ("p3", 0.0, 1.0),
    ]
    outcomes = tuple(
        Outcome(
            prompt=prompt,
            group="g",
            scores={"big": strong, "small": weak},
            costs={"big": Decimal("0.010"), "small": Decimal("0.001")},
        )
        for prompt, strong, weak in rows
    )
    return OutcomeSet(outcomes, ("big", "small"), ("toy",)).pair("big", "small")


def test_recorded_costs_at_each_share() -> None:
    paired = paired_with_costs()
    costs = estimate_costs(paired, ModelPrice("big"), ModelPrice("small"))
    assert costs.strong == (Decimal("0.010"),) * 4
    assert costs.notes == (
        "big: costs as recorded in the outcome files",
        "small: costs as recorded in the outcome files",
    )
    evaluation = evaluate(paired, np.array([0.1, 0.2, 0.8, 0.9]), costs=costs, bootstrap=0)
    assert evaluation.total_cost("big") == Decimal("0.040")
    assert evaluation.total_cost("small") == Decimal("0.004")

    random = evaluation.method("random")
    # Random: 0.004 + share * 0.036, exactly.
    assert [p.cost_usd for p in random.points] == [
        Decimal("0.004") + Decimal("0.0036") * step for step in range(11)
    ]
    oracle = evaluation.method("oracle")
    # The oracle makes at most two strong calls (p0, p1), so its cost stops at 0.022.
    assert oracle.points[5].cost_usd == Decimal("0.022000000")
    assert oracle.points[10].cost_usd == Decimal("0.022000000")
    assert oracle.points[1].cost_usd == Decimal("0.007600000")


def test_router_figures_exact_on_toy() -> None:
    paired = paired_with_costs()
    evaluation = evaluate(paired, np.array([0.1, 0.2, 0.8, 0.9]), bootstrap=0)
    router = evaluation.method("router")
    # Perfect ranking: p0, p1 first gain 0.25 each; p2 adds nothing; p3 loses 0.25.
    assert router.curve.qualities.tolist() == [0.5, 0.75, 1.0, 1.0, 0.75]
    assert router.apgr == pytest.approx(1.375)
    assert router.calls_to_recover[0.5] == 0.125
    assert evaluation.strong_quality == 0.75
    assert evaluation.weak_quality == 0.5


def test_bootstrap_reproducible_with_seed() -> None:
    rng = np.random.default_rng(3)
    outcomes = tuple(
        Outcome(
            f"p{i}", "g", {"big": float(rng.random() < 0.8), "small": float(rng.random() < 0.6)}
        )
        for i in range(300)
    )
    paired = OutcomeSet(outcomes, ("big", "small"), ("toy",)).pair("big", "small")
    scores = rng.random(300)
    first = evaluate(paired, scores, bootstrap=200, seed=7)
    second = evaluate(paired, scores, bootstrap=200, seed=7)
    assert first.method("router").apgr_interval == second.method("router").apgr_interval
    interval = first.method("router").apgr_interval
    assert interval is not None
    assert interval.low < first.method("router").apgr < interval.high
    other = evaluate(paired, scores, bootstrap=200, seed=8)
    assert other.method("router").apgr_interval != interval


def test_catalog_list_prices_for_routellm_pair() -> None:
    prompt = "What is the capital of France?\nA. Paris\nB. Rome\nAnswer:"
    outcome = Outcome(prompt, "g", {STRONG: 1.0, WEAK: 0.0})
    paired = OutcomeSet((outcome,), (STRONG, WEAK), ("toy",)).pair(STRONG, WEAK)
    costs = estimate_costs(paired, ModelPrice(STRONG), ModelPrice(WEAK), output_tokens=100)
    assert costs.priced
    assert costs.strong is not None
    assert costs.weak is not None
    strong_tokens = count_text(prompt, STRONG)
    weak_tokens = count_text(prompt, WEAK)
    # gpt-4-1106-preview is priced as gpt-4-turbo: $10 in and $30 out per million.
    assert costs.strong[0] == (Decimal(strong_tokens) * 10 + 100 * 30) / 1_000_000
    # Mixtral 8x7B at Mistral's list price: $0.70 in and out per million.
    assert costs.weak[0] == (Decimal(weak_tokens) * Decimal("0.7") + 100 * Decimal("0.7")) / (
        1_000_000
    )
    assert costs.notes[0].startswith(f"{STRONG}: list price of openai/gpt-4-turbo")
    assert costs.notes[1].startswith(f"{WEAK}: list price of mistral/mixtral-8x7b")


def test_custom_price_and_recorded_answers() -> None:
    outcome = Outcome("hi", "g", {"a": 1.0, "b": 0.0}, answers={"a": "hello there"})
    paired = OutcomeSet((outcome,), ("a", "b"), ("toy",)).pair("a", "b")
    price = CustomPrice(input_mtok=Decimal(2), output_mtok=Decimal(4))
    costs = estimate_costs(paired, ModelPrice("a", custom=price), ModelPrice("b", custom=price))
    assert costs.strong is not None
    expected = (
        Decimal(count_text("hi", "a")) * 2 + Decimal(count_text("hello there", "a")) * 4
    ) / (1_000_000)
    assert costs.strong[0] == expected
    assert "output tokens from the recorded answers" in costs.notes[0]


def test_unpriced_model_never_zero() -> None:
    outcome = Outcome("hi", "g", {"mystery-model-x": 1.0, "gpt-4o-mini": 0.0})
    paired = OutcomeSet((outcome,), ("gpt-4o-mini", "mystery-model-x"), ("t",)).pair(
        "mystery-model-x", "gpt-4o-mini"
    )
    costs = estimate_costs(paired, ModelPrice("mystery-model-x"), ModelPrice("gpt-4o-mini"))
    assert costs.strong is None
    assert not costs.priced
    assert costs.notes[0].startswith("mystery-model-x: unpriced:")
    evaluation = evaluate(paired, np.array([0.5]), costs=costs, bootstrap=0)
    assert all(point.cost_usd is None for point in evaluation.method("router").points)
    assert evaluation.to_dict()["cost_usd"]["all_strong"] is None


def test_guess_provider() -> None:
    assert guess_provider("gpt-4-1106-preview") == "openai"
    assert guess_provider("mistralai/Mixtral-8x7B-Instruct-v0.1") == "mistral"
    assert guess_provider("claude-sonnet-4-5") == "anthropic"
    assert guess_provider("llama-3") is None


def test_to_dict_shape() -> None:
    paired = paired_with_costs()
    costs = PairCosts(strong=(Decimal("0.01"),) * 4, weak=(Decimal("0.001"),) * 4)
    document = evaluate(paired, np.zeros(4), costs=costs, bootstrap=10).to_dict()
    assert set(document["methods"]) == {"router", "random", "oracle"}
    random = document["methods"]["random"]
    assert random["apgr"] == 0.5
    assert random["cpt"] == {"50%": 0.5, "80%": 0.8, "95%": 0.95}
    assert random["points"][0] == {
        "strong_share": 0.0,
        "quality": 0.5,
        "gap_recovered": 0.0,
        "cost_usd": "0.004000000",
    }
    assert document["cost_usd"]["all_strong"] == "0.04"
    assert document["bootstrap"]["resamples"] == 10


def test_no_bootstrap_no_intervals() -> None:
    evaluation = evaluate(paired_with_costs(), np.zeros(4), bootstrap=0)
    router = evaluation.method("router")
    assert router.apgr_interval is None
    assert router.calls_intervals == {0.5: None, 0.8: None, 0.95: None}
    assert router.to_dict()["apgr_ci"] is None
