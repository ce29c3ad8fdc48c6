"""The priced result of one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

ServiceTier = Literal["default", "flex", "priority", "batch"]

# Token classes of a cost breakdown, in report order. Each input token falls in
# exactly one of input, cache_read, cache_write_5m, cache_write_1h,
# input_audio and input_image. Each output token falls in exactly one of
# output, reasoning, output_audio and output_image. web_search counts web
# search calls, and request is a provider's flat fee per request (such as
# Perplexity's), charged once for a request with any tokens.
TOKEN_CLASSES: tuple[str, ...] = (
    "input",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
    "input_audio",
    "output_audio",
    "web_search",
    "input_image",
    "output_image",
    "request",
)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request cost, or why it could not be priced.

    ``cost_usd`` is ``None`` for an unpriced request, never ``Decimal(0)``:
    ``unpriced_reason`` then says why. ``model`` is the catalog model the
    request was priced as (``gpt-4o`` for ``gpt-4o-2024-08-06``).
    ``breakdown`` maps each token class of ``TOKEN_CLASSES`` that had tokens
    to its cost in USD. ``price_source`` names where the rates came from and
    how they were derived (``"genai-prices 0.2.3"``, or with a note such as
    batch rates taken as 50% of standard). ``notes`` lists what the price
    leaves out, such as web searches of a model without a search price.
    """

    provider: str
    model_requested: str
    model: str | None
    service_tier: str
    batch: bool
    cost_usd: Decimal | None
    breakdown: dict[str, Decimal] = field(default_factory=dict)
    unpriced_reason: str | None = None
    price_source: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None
