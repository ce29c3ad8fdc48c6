"""Evaluating a router against random and oracle routing, with bootstrap intervals.

``evaluate`` takes each prompt's router score (the probability that the weak
model is good enough; the lowest scores go to the strong model first) and
reports for the router, random routing and the oracle (see
``thrifty.routing.curve``): quality and cost at each share of strong calls,
the share of strong calls that recovers 50%, 80% and 95% of the quality gap
(CPT), and the average gap recovered (APGR). Confidence intervals come from a
percentile bootstrap over prompts: each resample draws as many prompts as
there are, with replacement, and recomputes every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from thrifty.errors import RoutingError
from thrifty.routing.costs import PairCosts
from thrifty.routing.curve import FloatArray, Ranking, RoutingCurve
from thrifty.routing.outcomes import PairedOutcomes

SHARES = tuple(step / 10 for step in range(11))
RECOVERY_TARGETS = (0.5, 0.8, 0.95)
METHODS = ("router", "random", "oracle")
DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
_NANO_USD = Decimal("0.000000001")


@dataclass(frozen=True, slots=True)
class Interval:
    """A bootstrap percentile confidence interval."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_list(self) -> list[float]:
        return [round(self.low, 6), round(self.high, 6)]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One row of the evaluation table: a share of strong calls and what it gives."""

    strong_share: float
    quality: float
    gap_recovered: float
    cost_usd: Decimal | None


@dataclass(frozen=True)
class MethodResult:
    """The figures of one routing method."""

    name: str
    curve: RoutingCurve
    apgr: float
    apgr_interval: Interval | None
    calls_to_recover: dict[float, float | None]
    calls_intervals: dict[float, Interval | None]
    points: tuple[CurvePoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "apgr": round(self.apgr, 6),
            "apgr_ci": self.apgr_interval.to_list() if self.apgr_interval else None,
            "cpt": {
                _percent(target): _rounded(share) for target, share in self.calls_to_recover.items()
            },
            "cpt_ci": {
                _percent(target): interval.to_list() if interval else None
                for target, interval in self.calls_intervals.items()
            },
            "points": [
                {
                    "strong_share": point.strong_share,
                    "quality": round(point.quality, 6),
                    "gap_recovered": round(point.gap_recovered, 6),
                    "cost_usd": None if point.cost_usd is None else str(point.cost_usd),
                }
                for point in self.points
            ],
            "curve": {
                "strong_share": [round(float(x), 6) for x in self.curve.shares],
                "quality": [round(float(y), 6) for y in self.curve.qualities],
            },
        }


@dataclass(frozen=True)
class Evaluation:
    """Router, random and oracle figures on one set of held-out outcomes."""

    strong: str
    weak: str
    prompts: int
    groups: tuple[str, ...]
    strong_quality: float
    weak_quality: float
    methods: tuple[MethodResult, ...]
    costs: PairCosts | None
    bootstrap: int
    confidence: float
    seed: int
    skipped_resamples: int
    protocol: dict[str, Any] = field(default_factory=dict)

    def method(self, name: str) -> MethodResult:
        for result in self.methods:
            if result.name == name:
                return result
        raise KeyError(name)

    def total_cost(self, model: str) -> Decimal | None:
        """Return the cost of sending every prompt to ``model`` (strong or weak)."""
        if self.costs is None or not self.costs.priced:
            return None
        values = self.costs.strong if model == self.strong else self.costs.weak
        assert values is not None
        return sum(values, Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        strong_cost, weak_cost = self.total_cost(self.strong), self.total_cost(self.weak)
        return {
            "strong": self.strong,
            "weak": self.weak,
            "prompts": self.prompts,
            "groups": list(self.groups),
            "strong_quality": round(self.strong_quality, 6),
            "weak_quality": round(self.weak_quality, 6),
            "cost_usd": {
                "all_strong": None if strong_cost is None else str(strong_cost),
                "all_weak": None if weak_cost is None else str(weak_cost),
                "notes": list(self.costs.notes) if self.costs else [],
            },
            "bootstrap": {
                "resamples": self.bootstrap,
                "confidence": self.confidence,
                "seed": self.seed,
                "skipped_resamples": self.skipped_resamples,
            },
            "protocol": self.protocol,
            "methods": {result.name: result.to_dict() for result in self.methods},
        }


def evaluate(
    paired: PairedOutcomes,
    weak_ok: FloatArray,
    *,
    costs: PairCosts | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    protocol: dict[str, Any] | None = None,
) -> Evaluation:
    """Evaluate router scores ``weak_ok`` (one per outcome) against random and oracle."""
    if len(weak_ok) != len(paired):
        raise RoutingError(f"{len(weak_ok)} router scores for {len(paired)} outcomes")
    if not 0 < confidence < 1:
        raise RoutingError(f"confidence is {confidence!r}; give a fraction such as 0.95")
    strong, weak = paired.strong_scores, paired.weak_scores
    rankings = {
        "router": Ranking.by_priority(-np.asarray(weak_ok, dtype=np.float64)),
        "random": Ranking.by_priority(np.zeros(len(paired))),
        "oracle": Ranking.oracle(strong, weak),
    }
    curves = {name: ranking.curve(strong, weak) for name, ranking in rankings.items()}
    resampled, skipped = _bootstrap(rankings, strong, weak, bootstrap, seed)

    methods = tuple(
        _method_result(
            name,
            curve=curves[name],
            ranking=rankings[name],
            resampled=resampled[name],
            costs=costs,
            confidence=confidence,
        )
        for name in METHODS
    )
    return Evaluation(
        strong=paired.strong,
        weak=paired.weak,
        prompts=len(paired),
        groups=tuple(sorted(set(paired.groups))),
        strong_quality=curves["random"].strong_quality,
        weak_quality=curves["random"].weak_quality,
        methods=methods,
        costs=costs,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        skipped_resamples=skipped,
        protocol=protocol or {},
    )


def _bootstrap(
    rankings: dict[str, Ranking], strong: FloatArray, weak: FloatArray, resamples: int, seed: int
) -> tuple[dict[str, list[RoutingCurve]], int]:
    rng = np.random.default_rng(seed)
    count = len(strong)
    curves: dict[str, list[RoutingCurve]] = {name: [] for name in rankings}
    skipped = 0
    for _ in range(resamples):
        weights = np.bincount(rng.integers(0, count, count), minlength=count).astype(np.float64)
        try:
            drawn = {
                name: ranking.curve(strong, weak, weights) for name, ranking in rankings.items()
            }
        except RoutingError:
            # A resample where the strong model is not better has no gap to recover.
            skipped += 1
            continue
        for name, curve in drawn.items():
            curves[name].append(curve)
    return curves, skipped


def _method_result(
    name: str,
    *,
    curve: RoutingCurve,
    ranking: Ranking,
    resampled: Sequence[RoutingCurve],
    costs: PairCosts | None,
    confidence: float,
) -> MethodResult:
    cost_points = _costs_at(ranking, costs, SHARES)
    points = tuple(
        CurvePoint(share, curve.quality_at(share), curve.recovered_at(share), cost)
        for share, cost in zip(SHARES, cost_points, strict=True)
    )
    return MethodResult(
        name=name,
        curve=curve,
        apgr=curve.apgr(),
        apgr_interval=_optional_interval([c.apgr() for c in resampled], confidence),
        calls_to_recover={t: curve.calls_to_recover(t) for t in RECOVERY_TARGETS},
        calls_intervals={
            t: _optional_interval([c.calls_to_recover(t) for c in resampled], confidence)
            for t in RECOVERY_TARGETS
        },
        points=points,
    )


def _interval(values: Sequence[float], confidence: float) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.array(values), [tail, 100 - tail])
    return Interval(float(low), float(high))


def _optional_interval(values: Sequence[float | None], confidence: float) -> Interval | None:
    present = [value for value in values if value is not None]
    return _interval(present, confidence) if present else None


def _costs_at(
    ranking: Ranking, costs: PairCosts | None, shares: Sequence[float]
) -> list[Decimal | None]:
    """Return the cost of each share of strong calls, interpolated within tie groups."""
    if costs is None or costs.strong is None or costs.weak is None:
        return [None] * len(shares)
    strong, weak = costs.strong, costs.weak
    count = len(strong)
    base = sum(weak, Decimal(0))
    ends = [0]
    extra = [Decimal(0)]
    running = Decimal(0)
    position = 0
    for end in ranking.group_ends.tolist():
        for index in ranking.order[position:end].tolist():
            running += strong[index] - weak[index]
        position = end
        ends.append(end)
        extra.append(running)
    return [
        (_interpolate(ends, extra, Decimal(str(share)) * count) + base).quantize(_NANO_USD)
        for share in shares
    ]


def _interpolate(ends: Sequence[int], extra: Sequence[Decimal], calls: Decimal) -> Decimal:
    for j in range(1, len(ends)):
        if calls <= ends[j]:
            fraction = (calls - ends[j - 1]) / (ends[j] - ends[j - 1])
            value = extra[j - 1] + fraction * (extra[j] - extra[j - 1])
            return value.quantize(_NANO_USD)
    return extra[-1].quantize(_NANO_USD)


def _percent(target: float) -> str:
    return f"{round(target * 100)}%"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
