"""Offline analysis: where a request set's input tokens go and what each transform would save.

For every request the analyzer counts its input tokens by part (system,
tools, history, retrieved context, user turn) and runs each configured
transform alone to measure its own saving. Then it runs them all in order
as the gateway would. That combined saving is the prediction the gateway's
records can be checked against. Savings are priced at each request's input
rate; a model without a price is counted as unpriced, never as $0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import orjson

from thrifty.pricing.engine import CostEngine
from thrifty.prompts.counting import Breakdown, TokenCounter, breakdown
from thrifty.prompts.dialect import Dialect, dialect_for
from thrifty.prompts.files import ENDPOINT_PATHS, RequestLine
from thrifty.prompts.pipeline import Optimization, optimize
from thrifty.prompts.reuse import DEFAULT_SIMILARITY, SystemPromptIndex
from thrifty.prompts.settings import Settings
from thrifty.usage import Usage

# Picks a request's settings from its feature, endpoint path and model.
SettingsResolver = Callable[[str | None, str, str], Settings]


@dataclass(slots=True)
class TransformTotals:
    """One transform's saving when run alone, over a set of requests."""

    saved_tokens: int = 0
    requests_with_saving: int = 0


@dataclass(slots=True)
class Totals:
    """Token counts and savings over a set of requests (a feature, or all of them).

    ``prefix_tokens_before`` and ``_after`` add up, over requests, the tokens
    each one's prompt shares from its start with the previous request of the
    same feature: an estimate of what a provider prompt cache could reuse.
    """

    requests: int = 0
    input_tokens: int = 0
    input_tokens_after: int = 0
    breakdown: Breakdown = field(default_factory=Breakdown)
    transforms: dict[str, TransformTotals] = field(default_factory=dict)
    saved_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0
    prefix_tokens_before: int = 0
    prefix_tokens_after: int = 0

    @property
    def saved_tokens(self) -> int:
        return self.input_tokens - self.input_tokens_after

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "input_tokens_after": self.input_tokens_after,
            "saved_tokens": self.saved_tokens,
            "saved_usd": str(self.saved_usd),
            "unpriced_requests": self.unpriced_requests,
            "breakdown": self.breakdown.as_dict(),
            "transforms": {
                name: {
                    "saved_tokens": t.saved_tokens,
                    "requests_with_saving": t.requests_with_saving,
                }
                for name, t in self.transforms.items()
            },
            "prefix_tokens_before": self.prefix_tokens_before,
            "prefix_tokens_after": self.prefix_tokens_after,
        }


@dataclass(frozen=True, slots=True)
class RequestAnalysis:
    """One request's analysis: its breakdown, each transform alone, and all of them."""

    line: RequestLine
    breakdown: Breakdown
    isolated: dict[str, int]
    combined: Optimization
    saved_usd: Decimal | None
    system_text: str
    system_tokens: int
    system_cost_usd: Decimal | None


class Analyzer:
    """Accumulates request analyses into totals, per feature and in all."""

    def __init__(
        self,
        resolve: SettingsResolver,
        engine: CostEngine,
        *,
        similarity: float = DEFAULT_SIMILARITY,
    ) -> None:
        self.resolve = resolve
        self.engine = engine
        self.total = Totals()
        self.features: dict[str, Totals] = {}
        self.system_prompts = SystemPromptIndex(similarity)
        self.skipped: dict[str, int] = {}
        self._last_prompt: dict[str | None, tuple[str, str]] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, line: RequestLine) -> RequestAnalysis:
        analysis = analyze_request(line, self.resolve, self.engine)
        feature_totals = self.features.setdefault(line.feature or "", Totals())
        prefixes = self._prefix_tokens(line, analysis)
        for totals in (self.total, feature_totals):
            _accumulate(totals, analysis, prefixes)
        self.system_prompts.add(
            analysis.system_text,
            analysis.system_tokens,
            feature=line.feature,
            key=line.key,
            cost_usd=analysis.system_cost_usd,
        )
        return analysis

    def _prefix_tokens(self, line: RequestLine, analysis: RequestAnalysis) -> tuple[int, int]:
        dialect = dialect_for(line.api)
        before = render_prompt(line.body, dialect)
        after = render_prompt(analysis.combined.body, dialect)
        previous = self._last_prompt.get(line.feature)
        self._last_prompt[line.feature] = (before, after)
        if previous is None:
            return 0, 0
        counter = TokenCounter(dialect, str(line.body.get("model") or ""))
        return (
            counter.text(common_prefix(previous[0], before)),
            counter.text(common_prefix(previous[1], after)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.total.as_dict(),
            "skipped": dict(sorted(self.skipped.items())),
            "features": [
                {"feature": name or None, **totals.as_dict()}
                for name, totals in sorted(self.features.items())
            ],
            "system_prompts": [group.as_dict() for group in self.system_prompts.groups()],
        }


def analyze_request(
    line: RequestLine, resolve: SettingsResolver, engine: CostEngine
) -> RequestAnalysis:
    """Analyze one request under the settings its feature and route resolve to."""
    model = str(line.body.get("model") or "")
    settings = resolve(line.feature, ENDPOINT_PATHS[line.api], model)
    dialect = dialect_for(line.api)
    counter = TokenCounter(dialect, model)
    isolated = {
        name: optimize(line.body, replace(settings, transforms=(name,)), api=line.api).saved_tokens
        for name in settings.ordered_transforms()
    }
    combined = optimize(line.body, settings, api=line.api)
    system_text = "\n\n".join(
        slot.text for slot in dialect.slots(line.body) if slot.role == "system"
    )
    system_tokens = counter.text(system_text)
    return RequestAnalysis(
        line=line,
        breakdown=breakdown(line.body, counter),
        isolated=isolated,
        combined=combined,
        saved_usd=input_cost(engine, dialect, model, combined.saved_tokens),
        system_text=system_text,
        system_tokens=system_tokens,
        system_cost_usd=input_cost(engine, dialect, model, system_tokens),
    )


def input_cost(engine: CostEngine, dialect: Dialect, model: str, tokens: int) -> Decimal | None:
    """Price ``tokens`` input tokens (negative for a loss) at the model's standard input rate."""
    if tokens == 0:
        return Decimal(0)
    cost = engine.price(dialect.provider, model, Usage(input_tokens=abs(tokens))).cost_usd
    if cost is None:
        return None
    return cost if tokens > 0 else -cost


def render_prompt(body: dict[str, Any], dialect: Dialect) -> str:
    """Return a request's prompt as one string in the order a provider reads it.

    Only what a prefix comparison needs: the tool definitions' JSON, then
    every text slot, separated by a control character no prompt contains.
    """
    pieces = [orjson.dumps(dialect.tools(body)).decode()]
    pieces += [slot.text for slot in dialect.slots(body)]
    return "\x1e".join(pieces)


def common_prefix(left: str, right: str) -> str:
    """Return the longest string both texts start with."""
    length = min(len(left), len(right))
    if left[:length] == right[:length]:
        return left[:length]
    low, high = 0, length
    # Binary search on the prefix length; slices compare in C, a loop per
    # character would be slow on long prompts.
    while low < high:
        middle = (low + high + 1) // 2
        if left[:middle] == right[:middle]:
            low = middle
        else:
            high = middle - 1
    return left[:low]


def _accumulate(totals: Totals, analysis: RequestAnalysis, prefixes: tuple[int, int]) -> None:
    combined = analysis.combined
    totals.requests += 1
    totals.input_tokens += combined.input_tokens_before
    totals.input_tokens_after += combined.input_tokens_after
    totals.breakdown = totals.breakdown + analysis.breakdown
    for name, saved in analysis.isolated.items():
        transform = totals.transforms.setdefault(name, TransformTotals())
        transform.saved_tokens += saved
        transform.requests_with_saving += int(saved != 0)
    if analysis.saved_usd is None:
        totals.unpriced_requests += 1
    else:
        totals.saved_usd += analysis.saved_usd
    totals.prefix_tokens_before += prefixes[0]
    totals.prefix_tokens_after += prefixes[1]


def analyze_lines(
    lines: Iterable[RequestLine], resolve: SettingsResolver, engine: CostEngine
) -> Analyzer:
    """Analyze every request of an iterable of lines."""
    analyzer = Analyzer(resolve, engine)
    for line in lines:
        analyzer.add(line)
    return analyzer
