"""The priced result of one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

ServiceTier = Literal["default", "flex", "priority", "batch"]

# Token classes of a cost breakdown, in report order. Each input token falls in
# exactly one of the first four, each output token in one of the next two.
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
)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request cost, or why it could not be priced.

    ``cost_usd`` is ``None`` for an unpriced request, never ``Decimal(0)``:
    ``unpriced_reason`` then says why. ``model`` is the catalog model the
    request was priced as (``gpt-4o`` for ``gpt-4o-2024-08-06``).
    ``breakdown`` maps each token class of ``TOKEN_CLASSES`` that had tokens
    to its cost in USD.
    """

    provider: str
    model_requested: str
    model: str | None
    service_tier: str
    batch: bool
    cost_usd: Decimal | None
    breakdown: dict[str, Decimal] = field(default_factory=dict)
    unpriced_reason: str | None = None

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None
