"""The price catalog: genai-prices' bundled data, read without any network access.

Thrifty never calls genai-prices' auto-update: prices change only when the
installed genai-prices package changes. This module finds a model's entry and
turns the entry's prices on a date, at a tier, into a ``PriceTable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from thrifty.pricing.rates import PriceTable, Rate, TieredRate

CATALOG_SOURCE = f"genai-prices {genai_prices.__version__}"

# Provider names that genai-prices spells differently and does not match itself.
PROVIDER_ALIASES: Mapping[str, str] = {
    "gemini": "google",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
}

PriceValue = Decimal | TieredPrices


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One model of the catalog, as a provider prices it.

    ``own`` is false for a model the provider prices through a fallback
    provider (Azure's OpenAI models that Azure does not list itself).
    ``time_of_day`` contains the daily windows its prices depend on, and
    ``start_days`` every date on which one of its prices starts or ends.
    """

    provider_id: str
    model: ModelInfo
    own: bool
    time_of_day: tuple[TimeOfDateConstraint, ...]
    start_days: tuple[date, ...]


class Catalog:
    """Model lookup over the genai-prices providers loaded at construction."""

    def __init__(self, providers: list[Provider] | None = None) -> None:
        self._providers = providers or data_snapshot.get_snapshot().providers

    @property
    def providers(self) -> list[Provider]:
        return self._providers

    def provider(self, name: str) -> Provider | None:
        """Return the provider ``name`` stands for: its id, an alias, or a name it matches.

        genai-prices matches common spellings itself (``xai`` is ``x-ai``,
        ``bedrock`` is ``aws``, ``vertex_ai`` is ``google``).
        """
        key = name.strip().lower()
        return data_snapshot.find_provider_by_id(self._providers, PROVIDER_ALIASES.get(key, key))

    def find(self, provider: str, model: str) -> CatalogEntry | None:
        """Find the entry ``model`` resolves to under ``provider``, or None.

        Dated snapshot names match their model (``gpt-4o-2024-08-06`` is
        ``gpt-4o``) as genai-prices matches them. A ``vendor/model`` name is
        tried under the vendor when the vendor is a known provider, and a
        Gemini ``models/`` resource prefix is dropped.
        """
        catalog_provider = self.provider(provider)
        ref = model.strip().lower()
        if catalog_provider is not None:
            found = catalog_provider.find_model(ref, all_providers=self._providers)
            if found is not None:
                return catalog_entry(catalog_provider, found)
        if "/" not in ref:
            return None

        prefix, rest = ref.split("/", 1)
        if prefix == "models" and catalog_provider is not None:
            found = catalog_provider.find_model(rest, all_providers=self._providers)
            return catalog_entry(catalog_provider, found) if found else None
        vendor = self.provider(prefix)
        if vendor is None:
            return None
        found = vendor.find_model(rest, all_providers=self._providers)
        return catalog_entry(vendor, found) if found else None


def standard_prices(entry: CatalogEntry, when: datetime) -> dict[str, PriceValue]:
    """Return the standard price keys in force at ``when`` (the last active price wins)."""
    prices = entry.model.prices
    if isinstance(prices, ModelPrice):
        return _price_keys(prices)
    chosen = prices[0].prices
    for conditional in reversed(prices):
        if conditional.constraint is None or conditional.constraint.active(when):
            chosen = conditional.prices
            break
    return _price_keys(chosen)


def variant_prices(
    entry: CatalogEntry, when: datetime, context: Mapping[str, str]
) -> dict[str, PriceValue] | None:
    """Return the price keys the variants for ``context`` set at ``when``.

    Returns None when no variant matches, so a caller can tell "the catalog has
    no price for this tier" from "this tier costs the standard price". For a
    key set by several matching variants, the first one wins, as in
    genai-prices.
    """
    if not context:
        return None
    overrides: dict[str, PriceValue] | None = None
    for variant in entry.model.price_variants or ():
        if variant.constraint is not None and not variant.constraint.active(when):
            continue
        if any(context.get(key) != value for key, value in variant.when.items()):
            continue
        overrides = {} if overrides is None else overrides
        for key, value in _price_keys(variant.prices).items():
            overrides.setdefault(key, value)
    return overrides


def table_from_prices(prices: Mapping[str, PriceValue], source: str) -> PriceTable:
    """Build the per-class rates of a ``PriceTable`` from genai-prices price keys.

    A class without its own price falls back to the rate the provider bills
    it at. Cache reads and writes without a price cost the input price, and a
    1-hour write without its own price costs the generic write price.
    Reasoning without a price costs the output price, and audio and image
    tokens cost the text price of their direction.

    NOTE: price keys with no token class in Thrifty (video, cached audio and
    image reads, file search calls) are not priced. Those tokens cost the
    plain input or output price, and those calls cost nothing.
    """
    input_rate = _rate(prices, "input_mtok")
    output_rate = _rate(prices, "output_mtok")
    cache_write = _first(_rate(prices, "cache_write_mtok"), input_rate)
    rates = {
        "input": input_rate,
        "cache_read": _first(_rate(prices, "cache_read_mtok"), input_rate),
        "cache_write_5m": _first(_rate(prices, "cache_write_5m_mtok"), cache_write),
        "cache_write_1h": _first(_rate(prices, "cache_write_1h_mtok"), cache_write),
        "output": output_rate,
        "reasoning": _first(_rate(prices, "output_reasoning_mtok"), output_rate),
        "input_audio": _first(_rate(prices, "input_audio_mtok"), input_rate),
        "output_audio": _first(_rate(prices, "output_audio_mtok"), output_rate),
        "web_search": _rate(prices, "web_searches_kcount"),
        "input_image": _first(_rate(prices, "input_image_mtok"), input_rate),
        "output_image": _first(_rate(prices, "output_image_mtok"), output_rate),
        "request": _rate(prices, "requests_kcount"),
    }
    return PriceTable(
        {token_class: rate for token_class, rate in rates.items() if rate is not None}, source
    )


def catalog_entry(provider: Provider, model: ModelInfo, *, own: bool | None = None) -> CatalogEntry:
    """Describe ``model`` as ``provider`` prices it; ``own`` is computed unless given."""
    constraints: list[Any] = []
    if isinstance(model.prices, list):
        constraints.extend(conditional.constraint for conditional in model.prices)
    constraints.extend(variant.constraint for variant in model.price_variants or ())
    time_of_day = tuple(c for c in constraints if isinstance(c, TimeOfDateConstraint))
    start_days = sorted({c.start_date for c in constraints if isinstance(c, StartDateConstraint)})
    if own is None:
        own = any(listed is model for listed in provider.models)
    return CatalogEntry(provider.id, model, own, time_of_day, tuple(start_days))


def _price_keys(prices: ModelPrice | ConditionalPrice) -> dict[str, PriceValue]:
    model_price = prices.prices if isinstance(prices, ConditionalPrice) else prices
    return {
        key: value
        for key, value in vars(model_price).items()
        if not key.startswith("_") and isinstance(value, Decimal | TieredPrices)
    }


def _rate(prices: Mapping[str, PriceValue], key: str) -> Rate | None:
    value = prices.get(key)
    if value is None or isinstance(value, Decimal):
        return value
    tiers = tuple((tier.start, tier.price) for tier in sorted(value.tiers, key=lambda t: t.start))
    return TieredRate(value.base, tiers)


def _first(*rates: Rate | None) -> Rate | None:
    return next((rate for rate in rates if rate is not None), None)
