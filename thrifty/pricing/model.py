"""The priced result of one request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

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


# A breakdown built when it is first read. The cost engine stores a tuple
# ``(build, row, usage)`` in the breakdown slot in place of the dict, because
# building the breakdown's Decimals takes about as long as the rest of a
# price() call (callgrind, CPython 3.11). Many callers, such as what-if
# estimates and the advisor's simulations, read only ``cost_usd``.
DeferredBreakdown = tuple[Callable[[Any, Any], dict[str, Decimal]], Any, Any]

# The slot descriptor that dataclass(slots=True) made for the breakdown field.
_breakdown_slot: Any = Cost.__dict__["breakdown"]
_read_slot = _breakdown_slot.__get__
_write_slot = _breakdown_slot.__set__


def _breakdown(cost: Cost) -> dict[str, Decimal]:
    """Return the breakdown in ``cost``'s slot, first building a ``DeferredBreakdown`` there.

    The built dict replaces the deferred one in the slot, so later reads
    return the same dict.
    """
    value: dict[str, Decimal] | DeferredBreakdown = _read_slot(cost)
    if not isinstance(value, tuple):
        return value
    # NOTE: two threads that read a new cost at once may each build the dict,
    # so they get different but equal dicts. The slot keeps the last one.
    build, row, usage = value
    built = build(row, usage)
    _write_slot(cost, built)
    return built


# Cost.breakdown reads the field's slot through _breakdown. The dataclass
# machinery (__init__, __eq__, __repr__, replace, pickling) reads and writes
# fields by attribute, so it gets the built dict like any caller.
setattr(Cost, "breakdown", property(_breakdown, _write_slot, _breakdown_slot.__delete__))  # noqa: B010
