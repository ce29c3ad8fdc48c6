"""The savings plan: each lever's monthly saving as a range, ranked, with evidence.

The range comes from two simulations of the same traffic. The cautious one
moves only work that is clearly background to Batch and assumes half of the
Flex attempts fall back to the standard tier. It caches responses only at
temperature 0, for 10 minutes, and prompt prefixes for 5 minutes. The
generous one also moves features whose names suggest background work,
assumes no Flex fallback, and caches for a day and prefixes for an hour.
Routing and prompt trimming are estimated only from evidence in the ledger
(benchmark grades, the prompts step's annotations); each module docstring
of ``bench_evidence`` and ``prompt_evidence`` states its cautious and
generous rule.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

from thrifty.advisor.bench_evidence import (
    MIN_GRADED_ANSWERS,
    QUALITY_TOLERANCE,
    BenchScores,
    Routes,
    choose_routes,
    unbenchmarked_features,
)
from thrifty.advisor.prompt_evidence import removed_shares, trim_shares, unmeasured_features
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
    "routing": "Route features to a cheaper model that benchmarks as well",
    "prompt_trimming": "Remove the input the prompt transforms measured as removable",
}
# Maximum number of features a "not estimated" finding names.
_LISTED_FEATURES = 5


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
class FeatureSpend:
    """One feature's monthly spend now and after every lever, in each scenario."""

    feature: str
    before: Decimal
    after_cautious: Decimal
    after_generous: Decimal


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
    features: list[FeatureSpend] = field(default_factory=list)

    @property
    def saving_low(self) -> Decimal:
        return sum((lever.saving_low for lever in self.levers), Decimal(0))

    @property
    def saving_high(self) -> Decimal:
        return sum((lever.saving_high for lever in self.levers), Decimal(0))


def build_plan(
    traffic: Traffic,
    engine: CostEngine,
    *,
    background: Iterable[str] = (),
    bench: BenchScores | None = None,
) -> Plan:
    """Simulate both scenarios over the traffic and rank the levers by saving.

    ``bench`` contains the benchmark grades per feature and model (see
    ``load_bench_scores``); without it routing is listed as not estimated.
    """
    explicit = frozenset(background)
    nightly = nightly_features(traffic)
    named = frozenset(
        feature for feature in _features(traffic) if any(w in feature for w in BACKGROUND_WORDS)
    )
    successors = cheaper_successors(traffic, engine)
    scores = bench or {}
    shares = removed_shares(traffic)
    confident = explicit | nightly
    routes = choose_routes(traffic, engine, scores, cautious=False)
    cautious = replace(
        _cautious(confident, named - confident, successors),
        routes=choose_routes(traffic, engine, scores, cautious=True),
        benchmarked=frozenset(routes),
        trim_shares=trim_shares(shares, cautious=True),
    )
    generous = replace(
        _generous(explicit | nightly | named, successors),
        routes=routes,
        benchmarked=frozenset(routes),
        trim_shares=trim_shares(shares, cautious=False),
    )
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
            _lever_plan(name, low=low, high=high, alone=alone, factor=factor, scenario=generous)
        )
    levers = [lever for lever in levers if lever.saving_high > 0]
    levers.sort(key=lambda lever: lever.saving_high + lever.saving_low, reverse=True)
    unmeasured = _unmeasured_advice(
        unbenchmarked_features(traffic, scores), unmeasured_features(traffic, shares)
    )
    return Plan(
        monthly_spend=traffic.spend * factor,
        levers=levers,
        advice=output_cap_advice(traffic) + unmeasured,
        requests=len(traffic.records),
        unpriced_requests=traffic.unpriced_requests,
        failed_requests=traffic.failed_requests,
        period=traffic.period,
        notes=_notes(traffic) + _route_notes(generous.routes),
        features=feature_spend(traffic, low, high),
    )


def feature_spend(
    traffic: Traffic, cautious: SimulationResult, generous: SimulationResult
) -> list[FeatureSpend]:
    """Return each feature's monthly spend before and after the plan, highest spend first."""
    factor = traffic.monthly_factor
    before: dict[str, Decimal] = defaultdict(Decimal)
    for record in traffic.records:
        before[record.feature or "(none)"] += record.cost_usd or Decimal(0)
    rows = [
        FeatureSpend(
            feature=feature,
            before=spend * factor,
            after_cautious=(spend - _feature_saving(cautious, feature)) * factor,
            after_generous=(spend - _feature_saving(generous, feature)) * factor,
        )
        for feature, spend in before.items()
    ]
    rows.sort(key=lambda row: (-row.before, row.feature))
    return rows


def _feature_saving(result: SimulationResult, feature: str) -> Decimal:
    return sum(
        (tally.by_feature.get(feature, Decimal(0)) for tally in result.levers.values()), Decimal(0)
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
    scenario: Scenario,
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
        config=_config_snippet(name, features, scenario),
        assumptions=_assumptions(name),
    )


def _config_snippet(name: str, features: list[str], scenario: Scenario) -> str:
    if name == "routing":
        return routing_snippet(features, scenario.routes)
    if name == "prompt_trimming":
        return trimming_snippet(features, scenario.trim_shares)
    return _tier_snippet(name, features, scenario.successors)


def _tier_snippet(name: str, features: list[str], successors: dict[str, str]) -> str:
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


def routing_snippet(features: list[str], routes: Routes) -> str:
    """Write a ``routing:`` section with one route per feature, to the benchmarked model.

    The app calls ``thrifty/<feature>`` as its model. A model of another
    provider than the feature's is written as ``provider/model``.
    """
    lines = ["routing:", "  routes:"]
    for (feature, model), target in sorted(routes.items()):
        if feature not in features:
            continue
        cheap = target.model
        if target.provider != target.current.provider:
            cheap = f"{target.provider}/{target.model}"
        lines += [
            f"    {feature}:",
            f"      models: [{cheap}, {model}]",
            "      policy: rules",
            f"      rules: [{{when: {{feature: [{feature}]}}, model: {cheap}}}]",
            f"      otherwise: {model}",
        ]
    return "\n".join(lines)


def trimming_snippet(features: list[str], shares: Mapping[str, Decimal]) -> str:
    """Write a ``prompts:`` section that runs the lossless transforms on each feature.

    Trimming and compression need settings (a token budget, a ratio) that the
    ledger does not record, so the generous figure's transforms are left to a comment.
    """
    lines = [
        "# for the generous figure, add the trim or compress settings the",
        "# optimized requests of these features ran with",
        "prompts:",
        "  features:",
    ]
    for feature in features:
        if feature in shares:
            lines.append(f"    {feature}: {{transforms: [lossless]}}")
    return "\n".join(lines)


def _assumptions(name: str) -> str:
    return {
        "batch": "results within 24 hours are acceptable; batch rates are 50% of standard",
        "flex": "cautious: half the attempts fall back to standard; generous: none do",
        "response_cache": "cautious: temperature 0 only, 10-minute TTL; generous: any, 1 day",
        "prompt_caching": (
            "cautious: 5-minute cache lifetime, the shortest prefix the fingerprints "
            "allow; generous: 1 hour, the longest; each cached prefix's first write is "
            "charged at the provider's cache-write rate (Anthropic: 1.25x input for 5 "
            "minutes, 2x for 1 hour)"
        ),
        "model_update": "the newer model serves the same tokens; check quality with a benchmark",
        "routing": (
            "the benchmarked model serves the same tokens; cautious: the lower bound of the "
            "95% Wilson interval of its mean score is at least the current model's mean score "
            f"minus {QUALITY_TOLERANCE} (scores run from 0 to 1); generous: its mean score "
            f"itself is; each model needs {MIN_GRADED_ANSWERS} graded answers on the feature; "
            "routed requests get no model update"
        ),
        "prompt_trimming": (
            "the share of input the prompts step removed on a feature's optimized requests "
            "applies to its other requests, taken from their uncached input and priced at "
            "the model's input rate; cautious: lossless transforms only; generous: every "
            "recorded transform, trimming and compression included"
        ),
    }[name]


def _unmeasured_advice(unbenchmarked: list[str], unmeasured: list[str]) -> list[Advice]:
    advice = []
    if unbenchmarked:
        advice.append(
            Advice(
                "Routing to cheaper models",
                f"needs a benchmark for {_listed(unbenchmarked)}: run `thrifty bench models "
                "EVAL.jsonl --models CHEAP,CURRENT --feature FEATURE --db LEDGER_URL` with an "
                "evaluation set of that feature's prompts to learn whether a cheaper model "
                "serves it well",
            )
        )
    if unmeasured:
        advice.append(
            Advice(
                "Prompt trimming",
                f"not estimated for {_listed(unmeasured)}: the ledger keeps no prompt text, "
                "so run `thrifty prompts analyze` on a sample of request bodies, or enable "
                "the prompts step for part of the feature's traffic to record what it removes",
            )
        )
    return advice


def _listed(features: list[str]) -> str:
    shown = ", ".join(features[:_LISTED_FEATURES])
    more = len(features) - _LISTED_FEATURES
    return f"{shown} and {more} more" if more > 0 else shown


def _route_notes(routes: Routes) -> list[str]:
    return [
        f"Routing evidence for {feature}: {model} scored {target.current.mean:.3f} on "
        f"{target.current.answers} graded answers, {target.model} {target.replacement.mean:.3f} "
        f"on {target.replacement.answers} (95% Wilson lower bound "
        f"{target.replacement.wilson_lower:.3f})."
        for (feature, model), target in sorted(routes.items())
    ]


def _notes(traffic: Traffic) -> list[str]:
    notes = [
        "Levers are applied in sequence per request (batch, flex, response cache, prompt "
        "caching, routing, model update, prompt trimming), so no dollar is counted twice "
        "and the savings add up. A request routed to a benchmarked model gets no model "
        "update.",
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
