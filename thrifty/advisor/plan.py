"""The savings plan: each lever's monthly saving as a range, ranked, with evidence.

The range comes from two simulations of the same traffic. The cautious one
moves only work that is clearly background to Batch and assumes half of the
Flex attempts fall back to the standard tier. It caches responses only at
temperature 0, for 10 minutes, and prompt prefixes for 5 minutes. The
generous one also moves features whose names suggest background work,
assumes no Flex fallback, and caches for a day and prefixes for an hour.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

from thrifty.advisor.simulation import LEVERS, Scenario, SimulationResult, Simulator
from thrifty.advisor.successors import SUCCESSORS
from thrifty.advisor.traffic import Traffic, usage_of
from thrifty.pricing.engine import CostEngine

# Words in a feature name that suggest no user waits for its responses.
BACKGROUND_WORDS = ("batch", "nightly", "offline", "backfill", "eval", "report", "etl", "cron")
# A feature with at least this share of its requests between 00:00 and 06:00
# UTC, and at least NIGHT_MIN_REQUESTS of them, runs on a nightly schedule.
NIGHT_SHARE = Decimal("0.8")
NIGHT_MIN_REQUESTS = 20
# A max_tokens this many times the 95th percentile of the output used
# inflates budget reservations for nothing.
OUTPUT_CAP_RATIO = 4

_TITLES = {
    "batch": "Move background work to the Batch API (50% off)",
    "flex": "Send requests that can wait to Flex processing",
    "response_cache": "Answer exact repeats from the response cache",
    "prompt_caching": "Let provider prompt caching reuse repeated prefixes",
    "model_update": "Move to newer, cheaper models of the same family",
}


@dataclass(frozen=True, slots=True)
class LeverPlan:
    """One lever of the plan: monthly saving range, what it applies to, evidence, config.

    ``saving_low`` and ``saving_high`` are its share of the plan with every
    lever on, so they add up across levers. ``alone_low`` and ``alone_high``
    are what it would save as the only change.
    """

    lever: str
    title: str
    saving_low: Decimal
    saving_high: Decimal
    alone_low: Decimal
    alone_high: Decimal
    applies_to: Decimal
    requests: int
    features: list[str]
    samples: list[str]
    config: str
    assumptions: str


@dataclass(frozen=True, slots=True)
class Advice:
    """A finding with no dollar figure: something to check or benchmark first."""

    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    monthly_spend: Decimal
    levers: list[LeverPlan]
    advice: list[Advice]
    requests: int
    unpriced_requests: int
    failed_requests: int
    period: timedelta
    notes: list[str] = field(default_factory=list)

    @property
    def saving_low(self) -> Decimal:
        return sum((lever.saving_low for lever in self.levers), Decimal(0))

    @property
    def saving_high(self) -> Decimal:
        return sum((lever.saving_high for lever in self.levers), Decimal(0))


def build_plan(traffic: Traffic, engine: CostEngine, *, background: Iterable[str] = ()) -> Plan:
    """Simulate both scenarios over the traffic and rank the levers by saving."""
    explicit = frozenset(background)
    nightly = nightly_features(traffic)
    named = frozenset(
        feature for feature in _features(traffic) if any(w in feature for w in BACKGROUND_WORDS)
    )
    successors = cheaper_successors(traffic, engine)
    confident = explicit | nightly
    cautious = _cautious(confident, named - confident, successors)
    generous = _generous(explicit | nightly | named, successors)
    low = Simulator(engine, cautious).run(traffic)
    high = Simulator(engine, generous).run(traffic)

    factor = traffic.monthly_factor
    levers = []
    for name in LEVERS:
        alone = (
            _alone(engine, cautious, name, traffic),
            _alone(engine, generous, name, traffic),
        )
        levers.append(
            _lever_plan(name, low=low, high=high, alone=alone, factor=factor, successors=successors)
        )
    levers = [lever for lever in levers if lever.saving_high > 0]
    levers.sort(key=lambda lever: lever.saving_high + lever.saving_low, reverse=True)
    return Plan(
        monthly_spend=traffic.spend * factor,
        levers=levers,
        advice=output_cap_advice(traffic) + _unmeasured_advice(),
        requests=len(traffic.records),
        unpriced_requests=traffic.unpriced_requests,
        failed_requests=traffic.failed_requests,
        period=traffic.period,
        notes=_notes(traffic),
    )


def nightly_features(traffic: Traffic) -> frozenset[str]:
    """Return features whose traffic mostly arrives between 00:00 and 06:00 UTC."""
    total: dict[str, int] = defaultdict(int)
    night: dict[str, int] = defaultdict(int)
    for record in traffic.records:
        feature = record.feature or ""
        total[feature] += 1
        if record.started_at.hour < 6:
            night[feature] += 1
    return frozenset(
        feature
        for feature, count in total.items()
        if feature
        and count >= NIGHT_MIN_REQUESTS
        and Decimal(night[feature]) / count >= NIGHT_SHARE
    )


def cheaper_successors(traffic: Traffic, engine: CostEngine) -> dict[str, str]:
    """Return, for each model used, a listed successor that costs less on the same tokens."""
    spend_now: dict[str, Decimal] = defaultdict(Decimal)
    spend_next: dict[str, Decimal] = defaultdict(Decimal)
    for record in traffic.records:
        model = record.model_served or record.model_requested
        successor = SUCCESSORS.get(model) or SUCCESSORS.get(record.model_priced or "")
        if successor is None:
            continue
        priced = engine.price(record.provider, successor, usage_of(record), at=record.started_at)
        if priced.cost_usd is None:
            continue
        spend_now[model] += record.cost_usd or Decimal(0)
        spend_next[model] += priced.cost_usd
    return {
        model: SUCCESSORS.get(model) or ""
        for model in spend_now
        if spend_next[model] < spend_now[model] and SUCCESSORS.get(model)
    }


def output_cap_advice(traffic: Traffic) -> list[Advice]:
    """Find features whose max_tokens is far above the output they use."""
    caps: dict[str, list[int]] = defaultdict(list)
    outputs: dict[str, list[int]] = defaultdict(list)
    for record in traffic.records:
        cap = (record.details.get("request") or {}).get("max_tokens")
        if isinstance(cap, int) and record.feature:
            caps[record.feature].append(cap)
            outputs[record.feature].append(record.output_tokens)
    advice = []
    for feature, feature_caps in sorted(caps.items()):
        used = outputs[feature]
        if len(used) < 10:
            continue
        p95 = statistics.quantiles(used, n=20, method="inclusive")[18]
        cap = statistics.median(feature_caps)
        if p95 > 0 and cap >= OUTPUT_CAP_RATIO * p95:
            advice.append(
                Advice(
                    f"Lower max_tokens for {feature}",
                    f"median max_tokens is {cap:g} but 95% of answers use at most {p95:g} "
                    f"tokens; budget reservations are sized by max_tokens, so a cap near "
                    f"{int(p95 * 1.5)} frees budget headroom without cutting answers",
                )
            )
    return advice


def _alone(engine: CostEngine, scenario: Scenario, lever: str, traffic: Traffic) -> Decimal:
    """Return what one lever saves over the period when it is the only change."""
    only = replace(scenario, levers=frozenset({lever}))
    return Simulator(engine, only).run(traffic).levers[lever].saving


def _lever_plan(
    name: str,
    *,
    low: SimulationResult,
    high: SimulationResult,
    alone: tuple[Decimal, Decimal],
    factor: Decimal,
    successors: dict[str, str],
) -> LeverPlan:
    cautious, generous = low.levers[name], high.levers[name]
    ranked = sorted(generous.by_feature.items(), key=lambda item: item[1], reverse=True)
    features = [feature for feature, _ in ranked[:5]]
    return LeverPlan(
        lever=name,
        title=_TITLES[name],
        saving_low=min(cautious.saving, generous.saving) * factor,
        saving_high=max(cautious.saving, generous.saving) * factor,
        alone_low=min(alone) * factor,
        alone_high=max(alone) * factor,
        applies_to=generous.applies_to * factor,
        requests=generous.requests,
        features=features,
        samples=generous.samples,
        config=_config_snippet(name, features, successors),
        assumptions=_assumptions(name),
    )


def _config_snippet(name: str, features: list[str], successors: dict[str, str]) -> str:
    listed = ", ".join(features) or "FEATURE"
    if name == "batch":
        return f"thrifty batch submit requests.jsonl --name nightly   # features: {listed}"
    if name == "flex":
        return "flex:\n  features:\n" + "".join(f"    {f}: {{policy: always}}\n" for f in features)
    if name == "response_cache":
        return "cache:\n  exact:\n    ttl_s: 3600\n  features: [" + listed + "]"
    if name == "prompt_caching":
        return (
            "Put the parts that repeat (system prompt, tools, documents) first and the "
            "parts that change last; for Anthropic, add a cache_control breakpoint after them"
        )
    moves = ", ".join(f"{old} -> {new}" for old, new in sorted(successors.items()))
    return f"Change the model in the app or a route: {moves}"


def _assumptions(name: str) -> str:
    return {
        "batch": "results within 24 hours are acceptable; batch rates are 50% of standard",
        "flex": "cautious: half the attempts fall back to standard; generous: none do",
        "response_cache": "cautious: temperature 0 only, 10-minute TTL; generous: any, 1 day",
        "prompt_caching": (
            "cautious: 5-minute cache lifetime, the shortest prefix the fingerprints "
            "allow; generous: 1 hour, the longest"
        ),
        "model_update": "the newer model serves the same tokens; check quality with a benchmark",
    }[name]


def _unmeasured_advice() -> list[Advice]:
    return [
        Advice(
            "Routing to cheaper models",
            "not estimated: run `thrifty bench models` or `thrifty route eval` on this "
            "traffic's features to learn which ones a cheaper model serves well",
        ),
        Advice(
            "Prompt trimming",
            "not estimated from the ledger, which keeps no prompt text: run "
            "`thrifty prompts analyze` on a sample of request bodies",
        ),
    ]


def _notes(traffic: Traffic) -> list[str]:
    notes = [
        "Levers are applied in sequence per request (batch, flex, response cache, prompt "
        "caching, model update), so no dollar is counted twice and the savings add up.",
        f"Monthly figures scale the {traffic.period} of traffic studied to "
        f"30.44 days (x{traffic.monthly_factor:.2f}).",
    ]
    if traffic.unpriced_requests:
        notes.append(
            f"{traffic.unpriced_requests} unpriced requests are left out: their spend is unknown."
        )
    return notes


def _features(traffic: Traffic) -> set[str]:
    return {record.feature for record in traffic.records if record.feature}


def _cautious(batch: frozenset[str], flex: frozenset[str], successors: dict[str, str]) -> Scenario:
    return Scenario(
        name="cautious",
        batch_features=batch,
        flex_features=flex,
        flex_fallback_share=Decimal("0.5"),
        cache_ttl=timedelta(minutes=10),
        cache_any_temperature=False,
        prompt_cache_window=timedelta(minutes=5),
        prefix_upper_bound=False,
        successors=successors,
    )


def _generous(batch: frozenset[str], successors: dict[str, str]) -> Scenario:
    return Scenario(
        name="generous",
        batch_features=batch,
        flex_features=None,
        flex_fallback_share=Decimal(0),
        cache_ttl=timedelta(days=1),
        cache_any_temperature=True,
        prompt_cache_window=timedelta(hours=1),
        prefix_upper_bound=True,
        successors=successors,
    )
