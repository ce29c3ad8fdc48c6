"""The rates of one model at one service tier, speed and date, by the providers' rules.

A catalog entry's standard prices are overridden by its price variants for
the tier served (``processing: batch``, ``service_tier: flex`` or
``priority``) and for Anthropic's fast mode. Where the catalog has no
variant for a tier, the provider's billing rule fills in, or the tier is
unpriced: never the standard price by default.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from thrifty.pricing.catalog import (
    CATALOG_SOURCE,
    CatalogEntry,
    PriceValue,
    standard_prices,
    table_from_prices,
    variant_prices,
)
from thrifty.pricing.compiled import Unpriced
from thrifty.pricing.custom import CUSTOM_SOURCE, CustomPrice
from thrifty.pricing.rates import PriceTable
from thrifty.pricing.tiers import TIER_CONTEXTS

# OpenAI and Anthropic bill every model they offer through their Batch APIs at
# 50% of the standard rates, and OpenAI bills Flex processing at Batch API
# rates. These rules apply where the catalog has no price for the tier.
HALF_RATE_TIERS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"batch", "flex"}),
    "anthropic": frozenset({"batch"}),
}
_HALF = Decimal("0.5")


def catalog_table(
    entry: CatalogEntry, tier: str, fast: bool, when: datetime
) -> PriceTable | Unpriced:
    """Return the rates of a catalog model at ``tier`` and speed, in force at ``when``."""
    fast_prices: dict[str, PriceValue] = {}
    if fast:
        found = _variants(entry, when, {"speed": "fast"})
        if found is None:
            return no_tier_price("fast-mode")
        fast_prices = found
    if tier == "default":
        return table_from_prices(standard_prices(entry, when) | fast_prices, CATALOG_SOURCE)

    tier_prices = _variants(entry, when, TIER_CONTEXTS[tier])
    if tier_prices is not None:
        prices = standard_prices(entry, when) | fast_prices | tier_prices
        return table_from_prices(prices, CATALOG_SOURCE)

    rule = HALF_RATE_TIERS.get(entry.provider_id, frozenset())
    if tier not in rule:
        return no_tier_price(tier)
    if tier == "flex":
        batch_prices = _variants(entry, when, TIER_CONTEXTS["batch"])
        if batch_prices is not None:
            prices = standard_prices(entry, when) | fast_prices | batch_prices
            return table_from_prices(prices, f"{CATALOG_SOURCE}; flex priced at the batch rates")
    standard = table_from_prices(standard_prices(entry, when) | fast_prices, CATALOG_SOURCE)
    return half_rate_table(entry.provider_id, tier, standard)


def custom_table(
    custom: CustomPrice, provider: str, tier: str, fast: bool
) -> PriceTable | Unpriced:
    """Return the rates of a model priced in thrifty.yaml, at ``tier`` and speed."""
    if fast:
        return no_tier_price("fast-mode")
    cache_write = custom.cache_write_mtok
    if cache_write is None:
        cache_write = custom.input_mtok
    cache_write_1h = custom.cache_write_1h_mtok
    if cache_write_1h is None:
        cache_write_1h = cache_write
    cache_read = custom.cache_read_mtok
    if cache_read is None:
        cache_read = custom.input_mtok
    rates = {
        "input": custom.input_mtok,
        "cache_read": cache_read,
        "cache_write_5m": cache_write,
        "cache_write_1h": cache_write_1h,
        "output": custom.output_mtok,
        "reasoning": custom.output_mtok,
        "input_audio": custom.input_mtok,
        "output_audio": custom.output_mtok,
        "input_image": custom.input_mtok,
        "output_image": custom.output_mtok,
    }
    table = PriceTable(rates, CUSTOM_SOURCE)
    if tier == "default":
        return table
    return half_rate_table(provider, tier, table)


def half_rate_table(provider: str, tier: str, standard: PriceTable) -> PriceTable | Unpriced:
    """Derive ``tier`` rates as half the standard ones where ``provider`` bills it so."""
    if tier not in HALF_RATE_TIERS.get(provider, ()):
        return no_tier_price(tier)
    source = f"{standard.source}; {tier} rates taken as 50% of standard, the {provider} rule"
    return standard.scaled(_HALF, source)


@functools.cache
def no_tier_price(tier: str) -> Unpriced:
    """Return the reason a model has no price at ``tier`` (or in fast mode)."""
    return Unpriced(
        f"no {tier} price for model '{{model}}' of provider '{{provider}}' on {{date}}; "
        "add it under `prices:` in thrifty.yaml"
    )


def _variants(
    entry: CatalogEntry, when: datetime, context: Mapping[str, str]
) -> dict[str, PriceValue] | None:
    # genai-prices applies price variants only to a provider's own models, not
    # to the models it prices through a fallback provider (Azure's OpenAI models).
    if not entry.own:
        return None
    return variant_prices(entry, when, context)
