"""Benchmark results: per-answer rows, per-model summaries and the Pareto frontier.

A model is on the cost-quality Pareto frontier when no other priced model
has at least its quality at no more cost, and is strictly better in one of
the two. Models with an unpriced answer or no graded answer are left off.

``write_outcomes`` saves the graded answers in the plain outcome format
(``prompt``, ``model``, ``score``, ``cost``), which ``thrifty route train``
reads.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from thrifty.errors import RoutingError

_THOUSAND = Decimal(1000)
_MICRO_USD = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One model's answer to one evaluation item, with its grade, cost and latency."""

    item_id: str
    model: str
    prompt: str
    answer: str | None
    score: float | None
    grade_detail: str
    cost_usd: Decimal | None
    latency_ms: float | None
    request_id: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "model": self.model,
            "prompt": self.prompt,
            "answer": self.answer,
            "score": self.score,
            "grade_detail": self.grade_detail,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "request_id": self.request_id,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One model's figures over the evaluation set.

    ``quality`` is the mean score of its graded answers; ``cost_per_1000_usd``
    the mean cost of its successful requests times 1,000, None when any of
    them is unpriced; ``latency_p50_ms`` the median over successful requests.
    """

    model: str
    requests: int
    errors: int
    graded: int
    quality: float | None
    cost_per_1000_usd: Decimal | None
    unpriced: int
    latency_p50_ms: float | None
    on_frontier: bool = False

    def to_dict(self) -> dict[str, Any]:
        cost = self.cost_per_1000_usd
        return {
            "model": self.model,
            "requests": self.requests,
            "errors": self.errors,
            "graded": self.graded,
            "quality": None if self.quality is None else round(self.quality, 6),
            "cost_per_1000_usd": None if cost is None else str(cost),
            "unpriced": self.unpriced,
            "latency_p50_ms": None
            if self.latency_p50_ms is None
            else round(self.latency_p50_ms, 3),
            "on_frontier": self.on_frontier,
        }


def summarize(results: Sequence[BenchResult], models: Sequence[str]) -> list[ModelSummary]:
    """Summarize each model, in the order given, and mark the Pareto frontier."""
    summaries = [_summary(model, [r for r in results if r.model == model]) for model in models]
    frontier = pareto_frontier(summaries)
    return [replace(summary, on_frontier=summary.model in frontier) for summary in summaries]


def pareto_frontier(summaries: Sequence[ModelSummary]) -> set[str]:
    """Return the models no other priced, graded model dominates on cost and quality."""
    candidates = [s for s in summaries if s.quality is not None and s.cost_per_1000_usd is not None]
    return {s.model for s in candidates if not any(_dominates(o, s) for o in candidates)}


def write_outcomes(results: Sequence[BenchResult], path: Path) -> int:
    """Write graded answers as plain outcome JSONL for router training; return the lines."""
    lines = [
        json.dumps(
            {
                "prompt": r.prompt,
                "model": r.model,
                "score": r.score,
                "cost": None if r.cost_usd is None else str(r.cost_usd),
                "group": "bench",
            }
        )
        for r in results
        if r.error is None and r.score is not None
    ]
    try:
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"cannot write {path}: {exc.strerror}") from exc
    return len(lines)


def _summary(model: str, results: Sequence[BenchResult]) -> ModelSummary:
    succeeded = [r for r in results if r.error is None]
    scores = [r.score for r in succeeded if r.score is not None]
    costs = [r.cost_usd for r in succeeded if r.cost_usd is not None]
    latencies = [r.latency_ms for r in succeeded if r.latency_ms is not None]
    unpriced = len(succeeded) - len(costs)
    cost_per_1000 = None
    if succeeded and unpriced == 0:
        cost_per_1000 = (sum(costs, Decimal(0)) * _THOUSAND / len(costs)).quantize(_MICRO_USD)
    return ModelSummary(
        model=model,
        requests=len(results),
        errors=len(results) - len(succeeded),
        graded=len(scores),
        quality=statistics.fmean(scores) if scores else None,
        cost_per_1000_usd=cost_per_1000,
        unpriced=unpriced,
        latency_p50_ms=statistics.median(latencies) if latencies else None,
    )


def _dominates(other: ModelSummary, summary: ModelSummary) -> bool:
    assert other.quality is not None
    assert summary.quality is not None
    assert other.cost_per_1000_usd is not None
    assert summary.cost_per_1000_usd is not None
    no_worse = (
        other.quality >= summary.quality and other.cost_per_1000_usd <= summary.cost_per_1000_usd
    )
    better = other.quality > summary.quality or other.cost_per_1000_usd < summary.cost_per_1000_usd
    return no_worse and better
