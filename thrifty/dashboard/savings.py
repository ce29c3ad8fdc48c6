"""What each cost lever saved, per feature, against the same tokens at standard prices.

The levers:

- ``response_cache``: hits served from Thrifty's response cache. Each hit
  notes what the original call cost (``details.cache.saved_usd``), and that
  amount is what the hit saved, exactly.
- ``prompt_caching``: the provider's prompt cache. The saving is the cost of
  the requests with their cached tokens priced as plain input, minus their
  cost at the cache-read and cache-write rates, both at standard tier. Cache
  writes cost more than plain input, so a feature that writes more than it
  reads shows a negative saving.
- ``batch`` and ``flex``: requests served at the Batch or Flex tier. The
  saving is their cost at the standard tier minus what they cost.

The last three are estimates. The ledger is grouped by day, feature,
provider, model, tier and cache status, and each group is priced as its
number of requests times one request of the group's mean size. That is
exact for prices linear in tokens. For a model whose rates change with the
size of the input (long-context tiers), every request of the group is
priced at the rate of the mean request. A group with unpriced requests is
left out and counted in ``unestimated_requests``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from thrifty.dashboard.view import View
from thrifty.errors import PricingError
from thrifty.ledger import Ledger, ReportGroup, Totals
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.rates import EXACT
from thrifty.pricing.tiers import SERVICE_TIERS
from thrifty.usage.model import Usage

LEVERS = ("response_cache", "prompt_caching", "batch", "flex")
CACHE_HIT_STATUSES = frozenset({"hit", "semantic-hit"})
GROUPING = ("feature", "provider", "model_priced", "service_tier", "cache_status", "day")
# Estimates are rounded to whole nano-dollars; they are not exact anyway.
_NANO = Decimal("0.000000001")

# Maps a ledger provider name (a configured provider) to its price catalog provider.
PriceProvider = Callable[[str], str]


@dataclass(slots=True)
class FeatureSavings:
    """One feature's spend and what each lever saved it, in USD."""

    feature: str | None
    cost_usd: Decimal = Decimal(0)
    standard_usd: Decimal = Decimal(0)
    saved: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(LEVERS, Decimal(0)))
    requests: int = 0
    unestimated_requests: int = 0

    def public(self) -> dict[str, Any]:
        total = _sum(self.saved.values())
        return {
            "feature": self.feature,
            "requests": self.requests,
            "cost_usd": format(self.cost_usd, "f"),
            "standard_usd": _rounded(self.standard_usd),
            **{f"{lever}_usd": _rounded(self.saved[lever]) for lever in LEVERS},
            "saved_usd": _rounded(total),
            "unestimated_requests": self.unestimated_requests,
        }


def savings(
    ledger: Ledger, view: View, engine: CostEngine, price_provider: PriceProvider = str
) -> dict[str, Any]:
    """Return per-feature savings for a view, features with the largest saving first."""
    report = ledger.report(view.query(GROUPING))
    features: dict[str | None, FeatureSavings] = {}
    total = FeatureSavings(feature=None)
    for group in report.groups:
        feature = group.values["feature"]
        entry = features.setdefault(feature, FeatureSavings(feature=feature))
        for target in (entry, total):
            _add_group(target, group, engine, price_provider)

    rows = sorted(
        features.values(),
        key=lambda item: (-_sum(item.saved.values()), item.feature or ""),
    )
    return {
        "view": view.public(),
        "levers": list(LEVERS),
        "totals": total.public(),
        "features": [row.public() for row in rows],
    }


def _add_group(
    target: FeatureSavings, group: ReportGroup, engine: CostEngine, price_provider: PriceProvider
) -> None:
    totals = group.totals
    values = group.values
    target.requests += totals.requests
    target.cost_usd = EXACT.add(target.cost_usd, totals.cost_usd)

    if values["cache_status"] in CACHE_HIT_STATUSES:
        _save(target, "response_cache", totals.cache_saved_usd)
        target.standard_usd = EXACT.add(target.standard_usd, totals.cache_saved_usd)
        return

    model = values["model_priced"]
    if model is None or totals.unpriced_requests or totals.requests == 0:
        target.unestimated_requests += totals.requests
        return
    at = datetime.fromisoformat(values["day"] or "1970-01-01").replace(tzinfo=UTC)
    estimate = _standard_costs(
        engine, price_provider(values["provider"] or ""), model, totals, at + timedelta(hours=12)
    )
    if estimate is None:
        target.unestimated_requests += totals.requests
        return

    uncached, cached = estimate
    target.standard_usd = EXACT.add(target.standard_usd, uncached)
    _save(target, "prompt_caching", EXACT.subtract(uncached, cached))
    tier = SERVICE_TIERS.get((values["service_tier"] or "default").lower(), "default")
    if tier in ("batch", "flex"):
        _save(target, tier, EXACT.subtract(cached, totals.cost_usd))


def _save(target: FeatureSavings, lever: str, amount: Decimal) -> None:
    target.saved[lever] = EXACT.add(target.saved[lever], amount)


def _standard_costs(
    engine: CostEngine, provider: str, model: str, totals: Totals, at: datetime
) -> tuple[Decimal, Decimal] | None:
    """Return a group's standard-tier cost without and with its prompt-cache discounts."""
    count = totals.requests
    mean = Usage(
        input_tokens=totals.input_tokens // count,
        output_tokens=totals.output_tokens // count,
        cache_read_tokens=totals.cache_read_tokens // count,
        cache_write_tokens=totals.cache_write_tokens // count,
        cache_write_1h_tokens=totals.cache_write_1h_tokens // count,
        reasoning_tokens=totals.reasoning_tokens // count,
    )
    plain = Usage(
        input_tokens=mean.input_tokens,
        output_tokens=mean.output_tokens,
        reasoning_tokens=mean.reasoning_tokens,
    )
    try:
        cached = engine.price(provider, model, mean, at=at)
        uncached = engine.price(provider, model, plain, at=at)
    except PricingError:
        return None
    if cached.cost_usd is None or uncached.cost_usd is None:
        return None
    scale = Decimal(count)
    return EXACT.multiply(uncached.cost_usd, scale), EXACT.multiply(cached.cost_usd, scale)


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for amount in amounts:
        total = EXACT.add(total, amount)
    return total


def _rounded(amount: Decimal) -> str:
    return format(amount.quantize(_NANO), "f")
