"""A job's cost before it is submitted: at batch rates and at synchronous rates.

Input tokens are counted offline with the model's tokenizer (an estimate for
Anthropic models, whose tokenizer is not public). Output tokens are each
request's output limit (``max_tokens``, ``max_completion_tokens`` or
``max_output_tokens``), or a stated average per request. Requests with
neither are counted in ``output_unknown`` and add no output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from thrifty.batch.limits import ANTHROPIC_ENDPOINT
from thrifty.batch.validate import BatchRequest
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.rates import EXACT
from thrifty.tokens import count_chat_messages, count_text, message_text
from thrifty.usage import Usage

_OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_NO_OUTPUT_URLS = frozenset({"/v1/embeddings", "/v1/moderations"})


@dataclass(slots=True)
class ModelEstimate:
    """The estimated tokens and cost of one model's requests.

    A cost is None when the model has no price at that tier, and
    ``unpriced`` then gives the reason.
    """

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    output_unknown: int = 0
    batch_cost_usd: Decimal | None = Decimal(0)
    standard_cost_usd: Decimal | None = Decimal(0)
    unpriced: str | None = None

    @property
    def savings_usd(self) -> Decimal | None:
        if self.batch_cost_usd is None or self.standard_cost_usd is None:
            return None
        return EXACT.subtract(self.standard_cost_usd, self.batch_cost_usd)


@dataclass(slots=True)
class Estimate:
    """The estimate of a whole job, one entry per model."""

    provider: str
    average_output_tokens: int | None
    models: dict[str, ModelEstimate] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(model.requests for model in self.models.values())

    @property
    def batch_cost_usd(self) -> Decimal | None:
        return _total(model.batch_cost_usd for model in self.models.values())

    @property
    def standard_cost_usd(self) -> Decimal | None:
        return _total(model.standard_cost_usd for model in self.models.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "requests": self.requests,
            "average_output_tokens": self.average_output_tokens,
            "batch_cost_usd": _text(self.batch_cost_usd),
            "standard_cost_usd": _text(self.standard_cost_usd),
            "models": [
                {
                    "model": model.model,
                    "requests": model.requests,
                    "input_tokens": model.input_tokens,
                    "output_tokens": model.output_tokens,
                    "output_unknown": model.output_unknown,
                    "batch_cost_usd": _text(model.batch_cost_usd),
                    "standard_cost_usd": _text(model.standard_cost_usd),
                    "savings_usd": _text(model.savings_usd),
                    "unpriced": model.unpriced,
                }
                for model in self.models.values()
            ],
        }


class Estimator:
    """Add up the estimated usage and cost of requests as they are read."""

    def __init__(
        self, engine: CostEngine, price_provider: str, average_output_tokens: int | None
    ) -> None:
        self.engine = engine
        self.price_provider = price_provider
        self.estimate = Estimate(price_provider, average_output_tokens)

    def add(self, request: BatchRequest) -> None:
        entry = self.estimate.models.get(request.model)
        if entry is None:
            entry = self.estimate.models[request.model] = ModelEstimate(request.model)
        usage = Usage(
            input_tokens=input_tokens(request),
            output_tokens=self._output_tokens(request, entry),
            estimated=True,
        )
        entry.requests += 1
        entry.input_tokens += usage.input_tokens
        entry.output_tokens += usage.output_tokens
        # Each request is priced on its own: some rates depend on the input size.
        batch = self.engine.price(self.price_provider, request.model, usage, batch=True)
        standard = self.engine.price(self.price_provider, request.model, usage)
        entry.batch_cost_usd = _add(entry.batch_cost_usd, batch.cost_usd)
        entry.standard_cost_usd = _add(entry.standard_cost_usd, standard.cost_usd)
        entry.unpriced = entry.unpriced or batch.unpriced_reason or standard.unpriced_reason

    def _output_tokens(self, request: BatchRequest, entry: ModelEstimate) -> int:
        if request.endpoint in _NO_OUTPUT_URLS:
            return 0
        for name in _OUTPUT_LIMITS:
            limit = request.body.get(name)
            if isinstance(limit, int) and not isinstance(limit, bool):
                return limit
        average = self.estimate.average_output_tokens
        if average is None:
            entry.output_unknown += 1
            return 0
        return average


def input_tokens(request: BatchRequest) -> int:
    """Count a request's input offline with its model's encoding."""
    body, model = request.body, request.model
    if request.endpoint == ANTHROPIC_ENDPOINT:
        system = message_text(_system_text(body.get("system")))
        return count_chat_messages(_messages(body.get("messages")), model) + (
            count_text(system, model) if system else 0
        )
    if "messages" in body:
        return count_chat_messages(_messages(body.get("messages")), model)
    prompt = body.get("input", body.get("prompt"))
    if isinstance(prompt, str):
        return count_text(prompt, model)
    if isinstance(prompt, list):
        return sum(_item_tokens(item, model) for item in prompt)
    return 0


def _item_tokens(item: Any, model: str) -> int:
    if isinstance(item, str):
        return count_text(item, model)
    if isinstance(item, int):
        return 1
    if isinstance(item, list):
        return len(item)
    if isinstance(item, Mapping):
        return count_text(message_text(item.get("content")), model)
    return 0


def _messages(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _system_text(system: Any) -> Any:
    if isinstance(system, list):
        return [block for block in system if isinstance(block, Mapping)]
    return system


def _add(total: Decimal | None, amount: Decimal | None) -> Decimal | None:
    if total is None or amount is None:
        return None
    return EXACT.add(total, amount)


def _total(amounts: Any) -> Decimal | None:
    total: Decimal | None = Decimal(0)
    for amount in amounts:
        total = _add(total, amount)
    return total


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")
