"""What each outcome would cost with each model, at list prices.

An outcome file that records costs (the plain JSONL format's ``cost``) is
used as is. Otherwise a call is priced with ``CostEngine`` from token counts:
input tokens counted offline from the prompt text with the model's tiktoken
encoding (exact for OpenAI models, an estimate for others), and output tokens
counted from the recorded answer where the file has one, else an assumed
number per call. Each estimate is listed in ``PairCosts.notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from thrifty.pricing import CostEngine, CustomPrice
from thrifty.routing.outcomes import Outcome, PairedOutcomes
from thrifty.tokens import count_text
from thrifty.usage import Usage

DEFAULT_OUTPUT_TOKENS = 256

# Model name prefixes and the provider whose list price the catalog holds.
_PROVIDER_PREFIXES = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("mistralai/", "mistral"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("open-mixtral", "mistral"),
)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """How to price one model: a catalog provider, or a custom price per million tokens."""

    model: str
    provider: str | None = None
    custom: CustomPrice | None = None


@dataclass(frozen=True, slots=True)
class PairCosts:
    """Each outcome's cost with the strong and with the weak model; None if unpriced."""

    strong: tuple[Decimal, ...] | None
    weak: tuple[Decimal, ...] | None
    notes: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        return self.strong is not None and self.weak is not None


def guess_provider(model: str) -> str | None:
    """Return the provider that lists ``model`` by its name, or None if unknown."""
    name = model.lower()
    for prefix, provider in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            return provider
    return None


def estimate_costs(
    paired: PairedOutcomes,
    strong: ModelPrice,
    weak: ModelPrice,
    *,
    engine: CostEngine | None = None,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
) -> PairCosts:
    """Price every outcome with both models."""
    notes: list[str] = []
    strong_costs = _model_costs(paired.outcomes, strong, engine, output_tokens, notes)
    weak_costs = _model_costs(paired.outcomes, weak, engine, output_tokens, notes)
    return PairCosts(strong=strong_costs, weak=weak_costs, notes=tuple(notes))


def _model_costs(
    outcomes: Sequence[Outcome],
    price: ModelPrice,
    engine: CostEngine | None,
    output_tokens: int,
    notes: list[str],
) -> tuple[Decimal, ...] | None:
    if all(price.model in outcome.costs for outcome in outcomes):
        notes.append(f"{price.model}: costs as recorded in the outcome files")
        return tuple(outcome.costs[price.model] for outcome in outcomes)

    provider = price.provider or guess_provider(price.model) or "custom"
    priced_by = _engine_for(price, engine)
    answered = sum(1 for outcome in outcomes if price.model in outcome.answers)
    costs: list[Decimal] = []
    priced_as = price.model
    for outcome in outcomes:
        usage = _usage(outcome, price.model, output_tokens)
        cost = priced_by.price(provider, price.model, usage)
        if cost.cost_usd is None:
            notes.append(f"{price.model}: unpriced: {cost.unpriced_reason}")
            return None
        costs.append(cost.cost_usd)
        priced_as = cost.model or price.model
    source = "custom price" if price.custom else f"list price of {provider}/{priced_as}"
    notes.append(
        f"{price.model}: {source}; input tokens counted offline, output tokens "
        + (
            "from the recorded answers"
            if answered == len(outcomes)
            else f"assumed {output_tokens} per call where no answer is recorded"
        )
    )
    return tuple(costs)


def _engine_for(price: ModelPrice, engine: CostEngine | None) -> CostEngine:
    if price.custom is not None:
        return CostEngine({price.model: price.custom})
    return engine or CostEngine()


def _usage(outcome: Outcome, model: str, output_tokens: int) -> Usage:
    input_tokens = count_text(outcome.input_text, model)
    answer = outcome.answers.get(model)
    output = count_text(answer, model) if answer else output_tokens * outcome.calls
    return Usage(input_tokens=input_tokens, output_tokens=output)
