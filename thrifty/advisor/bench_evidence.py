"""Benchmark evidence for routing: which cheaper model a feature's traffic can move to.

``thrifty bench models --feature F --db URL`` stores each graded answer in
``details["bench"]`` of its ledger record, with the feature ``F`` the
evaluation set stands for. For a feature, a benchmarked model qualifies as a
replacement for the model its traffic uses when both have at least
``MIN_GRADED_ANSWERS`` graded answers on that feature and:

- cautious: the lower bound of the replacement's 95% Wilson score interval
  is at least the current model's mean score minus ``QUALITY_TOLERANCE``;
- generous: the replacement's mean score is at least the current model's
  minus ``QUALITY_TOLERANCE``.

Scores run from 0 to 1, so for graders that pass or fail an answer the mean
score is the pass rate. Of the qualifying models, the one that costs least
on the feature's own tokens is chosen, and only when it costs less.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from thrifty.advisor.traffic import Traffic, usage_of
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger
from thrifty.ledger.schema import requests
from thrifty.pricing.engine import CostEngine
from thrifty.routing.bench.ledger import DETAILS_KEY
from thrifty.routing.bench.runner import FEATURE as BENCH_FEATURE

QUALITY_TOLERANCE = 0.02
MIN_GRADED_ANSWERS = 20
# The normal quantile of a two-sided 95% interval.
WILSON_Z = 1.959964


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One model's graded benchmark answers on one feature."""

    provider: str
    model: str
    answers: int
    score_sum: float

    @property
    def mean(self) -> float:
        return self.score_sum / self.answers

    @property
    def wilson_lower(self) -> float:
        """The lower bound of the 95% Wilson score interval of the mean score."""
        n, p, z2 = self.answers, self.mean, WILSON_Z**2
        centre = p + z2 / (2 * n)
        spread = WILSON_Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
        return (centre - spread) / (1 + z2 / n)


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """The cheaper model for a feature's requests on one model, with both models' scores."""

    provider: str
    model: str
    current: ModelScore
    replacement: ModelScore


# Keyed by feature, then by model name as benchmarked (the requested model).
BenchScores = Mapping[str, Mapping[str, ModelScore]]
# Keyed by (feature, requested model) of the traffic.
Routes = Mapping[tuple[str, str], RouteTarget]


def load_bench_scores(ledger: Ledger) -> dict[str, dict[str, ModelScore]]:
    """Sum the graded benchmark answers stored in the ledger, per feature and model."""
    statement = sa.select(
        requests.c.provider, requests.c.model_requested, requests.c.details
    ).where(requests.c.details.like(f'%"{DETAILS_KEY}"%'))
    try:
        with ledger.engine.connect() as connection:
            rows = connection.execute(statement).all()
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"could not read benchmark grades from the ledger at {ledger.url}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return bench_scores(
        (provider, model, orjson.loads(details)) for provider, model, details in rows
    )


def bench_scores(
    rows: Iterable[tuple[str, str, dict[str, object]]],
) -> dict[str, dict[str, ModelScore]]:
    """Sum (provider, model, details) rows of graded answers that name a feature."""
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for provider, model, details in rows:
        note = details.get(DETAILS_KEY)
        if not isinstance(note, dict):
            continue
        feature, score = note.get("feature"), note.get("score")
        if not isinstance(feature, str) or not isinstance(score, int | float):
            continue  # an ungraded answer, or a run not mapped to a feature
        sums[(feature, provider, model)].append(float(score))
    scores: dict[str, dict[str, ModelScore]] = defaultdict(dict)
    for (feature, provider, model), values in sorted(sums.items()):
        scores[feature][model] = ModelScore(provider, model, len(values), math.fsum(values))
    return dict(scores)


def qualifies(current: ModelScore, replacement: ModelScore, *, cautious: bool) -> bool:
    """Apply the quality rule of the module docstring to one pair of models."""
    if min(current.answers, replacement.answers) < MIN_GRADED_ANSWERS:
        return False
    quality = replacement.wilson_lower if cautious else replacement.mean
    return quality >= current.mean - QUALITY_TOLERANCE


def choose_routes(
    traffic: Traffic, engine: CostEngine, scores: BenchScores, *, cautious: bool
) -> dict[tuple[str, str], RouteTarget]:
    """Pick, per feature and model of the traffic, the cheapest qualifying benchmarked model."""
    spend, candidates = _candidate_spend(traffic, engine, scores, cautious=cautious)
    routes: dict[tuple[str, str], RouteTarget] = {}
    for key, costs in candidates.items():
        feature, model = key
        complete = {name: cost for name, cost in costs.items() if cost[1] == spend[key][1]}
        if not complete:
            continue
        best = min(complete, key=lambda name: (complete[name][0], name))
        if complete[best][0] >= spend[key][0]:
            continue
        replacement = scores[feature][best]
        routes[key] = RouteTarget(replacement.provider, best, scores[feature][model], replacement)
    return routes


def _candidate_spend(
    traffic: Traffic, engine: CostEngine, scores: BenchScores, *, cautious: bool
) -> tuple[
    dict[tuple[str, str], tuple[Decimal, int]],
    dict[tuple[str, str], dict[str, tuple[Decimal, int]]],
]:
    """Sum each (feature, model)'s spend now and at each qualifying replacement.

    Each sum comes with the count of requests priced, so a replacement that
    left some requests unpriced is not compared on part of the traffic.
    """
    spend: dict[tuple[str, str], tuple[Decimal, int]] = {}
    candidates: dict[tuple[str, str], dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    for record in traffic.records:
        feature, model = record.feature or "", record.model_requested
        benchmarked = scores.get(feature, {})
        current = benchmarked.get(model)
        if current is None:
            continue
        key = (feature, model)
        total, count = spend.get(key, (Decimal(0), 0))
        spend[key] = (total + (record.cost_usd or Decimal(0)), count + 1)
        for name, replacement in benchmarked.items():
            if name == model or not qualifies(current, replacement, cautious=cautious):
                continue
            priced = engine.price(
                replacement.provider, name, usage_of(record), at=record.started_at
            ).cost_usd
            if priced is None:
                continue
            total, count = candidates[key].get(name, (Decimal(0), 0))
            candidates[key][name] = (total + priced, count + 1)
    return spend, dict(candidates)


def unbenchmarked_features(traffic: Traffic, scores: BenchScores) -> list[str]:
    """Return the traffic's features with no benchmark of their model, highest spend first."""
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for record in traffic.records:
        feature = record.feature or ""
        if feature in ("", BENCH_FEATURE) or DETAILS_KEY in record.details:
            continue
        if record.model_requested not in scores.get(feature, {}):
            spend[feature] += record.cost_usd or Decimal(0)
    return sorted(spend, key=lambda feature: (-spend[feature], feature))
