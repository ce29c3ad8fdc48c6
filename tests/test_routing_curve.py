"""Routing curves, APGR and CPT, and the exact random and oracle baselines."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.services import require_shared_data
from thrifty.errors import RoutingError
from thrifty.routing.curve import Ranking, oracle_curve, random_curve
from thrifty.routing.evaluation import evaluate
from thrifty.routing.readers import read_outcomes

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"

# Four prompts: the strong model alone is right on 0 and 1, the weak model
# alone on 3, both on 2. Strong quality 3/4, weak quality 2/4.
STRONG_SCORES = np.array([1.0, 1.0, 1.0, 0.0])
WEAK_SCORES = np.array([0.0, 0.0, 1.0, 1.0])


def test_random_curve_is_straight_line() -> None:
    curve = random_curve(STRONG_SCORES, WEAK_SCORES)
    assert curve.shares.tolist() == [0.0, 1.0]
    assert curve.qualities.tolist() == [0.5, 0.75]
    assert curve.apgr() == 0.5
    assert curve.calls_to_recover(0.5) == 0.5
    assert curve.calls_to_recover(0.8) == 0.8
    assert curve.quality_at(0.4) == pytest.approx(0.6, abs=1e-15)


def test_oracle_curve_rises_then_stays_flat() -> None:
    curve = oracle_curve(STRONG_SCORES, WEAK_SCORES)
    assert curve.shares.tolist() == [0.0, 0.25, 0.5, 1.0]
    assert curve.qualities.tolist() == [0.5, 0.75, 1.0, 1.0]
    # Gap recovered: 0, 1, 2, 2 at those shares.
    assert curve.recovered().tolist() == [0.0, 1.0, 2.0, 2.0]
    assert curve.apgr() == pytest.approx(0.125 + 0.375 + 1.0)
    assert curve.calls_to_recover(0.5) == 0.125
    assert curve.calls_to_recover(1.0) == 0.25


def test_router_curve_orders_by_priority() -> None:
    # The router sends prompt 3 (weak-only right) first, then 0, then 1 and 2 tied.
    ranking = Ranking.by_priority(np.array([0.5, 0.2, 0.2, 0.9]))
    assert ranking.order.tolist() == [3, 0, 1, 2]
    assert ranking.group_ends.tolist() == [1, 2, 4]
    curve = ranking.curve(STRONG_SCORES, WEAK_SCORES)
    assert curve.shares.tolist() == [0.0, 0.25, 0.5, 1.0]
    assert curve.qualities.tolist() == [0.5, 0.25, 0.5, 0.75]
    # Recovered: 0, -1, 0, 1; trapezoids 0.25*(-0.5) + 0.25*(-0.5) + 0.5*0.5.
    assert curve.apgr() == pytest.approx(0.0)
    assert curve.calls_to_recover(0.5) == 0.75


def test_weighted_curve_counts_prompts_twice() -> None:
    weights = np.array([2.0, 0.0, 1.0, 1.0])
    curve = random_curve(STRONG_SCORES, WEAK_SCORES, weights)
    assert curve.weak_quality == 0.5
    assert curve.strong_quality == 0.75


def test_curve_rejects_strong_not_better() -> None:
    with pytest.raises(RoutingError, match="not above the weak"):
        random_curve(WEAK_SCORES * 0, WEAK_SCORES)


def test_calls_to_recover_unreachable_target() -> None:
    curve = random_curve(STRONG_SCORES, WEAK_SCORES)
    assert curve.calls_to_recover(1.5) is None


@pytest.mark.parametrize(
    ("folder", "counts"),
    [
        # prompts, strong right, weak right, strong alone right, weak alone right
        ("mmlu", (7655, 6364, 5383, 1315, 334)),
        ("gsm8k", (889, 756, 573, 249, 66)),
    ],
)
def test_baselines_exact_on_outcome_files(folder: str, counts: tuple[int, ...]) -> None:
    prompts, strong_right, weak_right, strong_only, weak_only = counts
    outcomes = read_outcomes([require_shared_data(f"routing/{folder}")])
    paired = outcomes.pair(STRONG, WEAK)
    assert len(paired) == prompts
    assert paired.strong_scores.sum() == strong_right
    assert paired.weak_scores.sum() == weak_right
    assert int((paired.strong_scores > paired.weak_scores).sum()) == strong_only
    assert int((paired.strong_scores < paired.weak_scores).sum()) == weak_only

    evaluation = evaluate(paired, np.zeros(prompts), bootstrap=20)
    gap = strong_only - weak_only
    assert evaluation.strong_quality == strong_right / prompts
    assert evaluation.weak_quality == weak_right / prompts

    random = evaluation.method("random")
    assert random.apgr == 0.5
    assert random.calls_to_recover == {0.5: 0.5, 0.8: 0.8, 0.95: 0.95}
    assert random.apgr_interval is not None
    assert random.apgr_interval.low == 0.5
    assert random.apgr_interval.high == 0.5

    # The oracle adds one right answer per strong call until the strong-only
    # prompts run out: quality(x) = (weak_right + min(x n, strong_only)) / n.
    oracle = evaluation.method("oracle")
    exact_apgr = (strong_only - Fraction(strong_only**2, 2 * prompts)) / gap
    assert oracle.apgr == pytest.approx(float(exact_apgr), rel=1e-12)
    for target in (0.5, 0.8, 0.95):
        expected_share = target * gap / prompts
        assert oracle.calls_to_recover[target] == pytest.approx(expected_share, rel=1e-12)
    for point in oracle.points:
        reachable = min(point.strong_share * prompts, strong_only)
        assert point.quality == pytest.approx((weak_right + reachable) / prompts, rel=1e-12)


def test_mt_bench_oracle_uses_score_differences() -> None:
    outcomes = read_outcomes([require_shared_data("routing/mt_bench")])
    paired = outcomes.pair(STRONG, WEAK)
    assert len(paired) == 72
    assert outcomes.dropped_contaminated == 8
    difference = paired.strong_scores - paired.weak_scores
    assert difference[difference > 0].sum() == 74.5
    curve = oracle_curve(paired.strong_scores, paired.weak_scores)
    assert curve.qualities[-1] == pytest.approx((596.25 + 74.5) / 72, rel=1e-12)
    assert curve.shares[-2] == 37 / 72
