"""The cost engine: Usage x price x tier x time -> Cost, in exact Decimal USD.

The gateway prices every request, so the engine caches two things: which
catalog entry a (provider, model) pair resolves to, and the resolved rates per
(provider, model, tier, speed, date). A cache hit costs a few dictionary
lookups and one multiplication per token class.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Generic, TypeVar

from thrifty.errors import UnknownModelError
from thrifty.pricing.catalog import (
    CATALOG_SOURCE,
    PROVIDER_ALIASES,
    Catalog,
    CatalogEntry,
    standard_prices,
    table_from_prices,
    variant_prices,
)
from thrifty.pricing.custom import CUSTOM_SOURCE, CustomPrice
from thrifty.pricing.model import Cost
from thrifty.pricing.rates import EXACT, PriceTable
from thrifty.pricing.tiers import TIER_CONTEXTS, checked_speed, priced_tier
from thrifty.usage.model import Usage

logger = logging.getLogger(__name__)

# OpenAI and Anthropic bill every model they offer through their Batch APIs at
# 50% of the standard rates, and OpenAI bills Flex processing at Batch API
# rates. The engine applies these rules where the catalog has no price.
HALF_RATE_TIERS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"batch", "flex"}),
    "anthropic": frozenset({"batch"}),
}
_HALF = Decimal("0.5")

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A requested model matched to a price catalog entry or a custom price.

    ``model`` is the catalog's id for it (``gpt-4o`` for
    ``gpt-4o-2024-08-06``) and ``catalog_provider`` the genai-prices provider
    that lists it. ``source`` is ``CATALOG_SOURCE`` or ``CUSTOM_SOURCE``.
    """

    provider: str
    model_requested: str
    model: str
    catalog_provider: str
    name: str | None
    context_window: int | None
    source: str
    entry: CatalogEntry | CustomPrice = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _Unpriced:
    reason: str


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _BoundedCache(Generic[K, V]):
    """A dict that evicts its oldest entry once it has ``size`` entries.

    Model names come from clients, so an unbounded cache would grow with every
    misspelled model a client sends.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> V:
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = value
        return value


class CostEngine:
    """Price usage with the genai-prices catalog, overridden by custom prices.

    ``overrides`` maps a model name, or ``"provider/model"`` for one provider
    only, to its custom price; an override wins over the catalog.
    """

    def __init__(
        self,
        overrides: Mapping[str, CustomPrice] | None = None,
        *,
        catalog: Catalog | None = None,
    ) -> None:
        self._overrides = {name.strip().lower(): price for name, price in (overrides or {}).items()}
        self._catalog = catalog or Catalog()
        self._models: _BoundedCache[tuple[str, str], ResolvedModel | _Unpriced] = _BoundedCache(
            _CACHE_SIZE
        )
        self._tables: _BoundedCache[tuple[object, ...], PriceTable | _Unpriced] = _BoundedCache(
            _CACHE_SIZE
        )

    def resolve(self, provider: str, model: str) -> ResolvedModel | None:
        """Return what ``model`` of ``provider`` is priced as, or None if it has no price."""
        resolved = self._resolve(provider, model)
        return resolved if isinstance(resolved, ResolvedModel) else None

    def price(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        service_tier: str | None = None,
        batch: bool = False,
        at: datetime | None = None,
        speed: str | None = None,
    ) -> Cost:
        """Price ``usage`` at the tier the provider served, with the prices in force ``at``.

        ``service_tier`` is the tier the response reports (see
        ``thrifty.pricing.tiers.SERVICE_TIERS``), ``batch`` marks a Batch API
        result and ``speed`` is Anthropic's ``usage.speed``. ``at`` defaults to
        now; a naive datetime is taken as UTC.

        Never raises for a model without a price: the Cost then has
        ``cost_usd=None`` and the reason in ``unpriced_reason``. Raises
        ``PricingError`` for an unknown tier or speed, or a batch request with
        an interactive tier.
        """
        tier = priced_tier(service_tier, batch)
        fast = checked_speed(speed)
        when = _as_utc(at)
        resolved = self._resolve(provider, model)
        if isinstance(resolved, _Unpriced):
            return _unpriced_cost(provider, model, None, tier, resolved.reason)

        table = self._table(resolved, tier, fast, when)
        if isinstance(table, _Unpriced):
            return _unpriced_cost(provider, model, resolved.model, tier, table.reason)
        return _priced_cost(resolved, tier, table, usage)

    def _resolve(self, provider: str, model: str) -> ResolvedModel | _Unpriced:
        key = (provider, model)
        cached = self._models.get(key)
        if cached is not None:
            return cached
        resolved = self._find(provider, model)
        if resolved is None:
            # INFO, not WARNING: the Cost carries the reason and the ledger
            # flags the request unpriced, so this line only helps a debugging run.
            logger.info(
                "no price for model %r of provider %r; its cost is unpriced", model, provider
            )
            return self._models.put(key, _Unpriced(str(UnknownModelError(provider, model))))
        return self._models.put(key, resolved)

    def _find(self, provider: str, model: str) -> ResolvedModel | None:
        provider_id = provider.strip().lower()
        provider_id = PROVIDER_ALIASES.get(provider_id, provider_id)
        model_key = model.strip().lower()
        custom = self._overrides.get(f"{provider_id}/{model_key}") or self._overrides.get(model_key)
        if custom is not None:
            return ResolvedModel(
                provider_id, model, model, provider_id, None, None, CUSTOM_SOURCE, custom
            )

        entry = self._catalog.find(provider_id, model)
        if entry is None:
            return None
        info = entry.model
        return ResolvedModel(
            provider_id,
            model,
            info.id,
            entry.provider_id,
            info.name,
            info.context_window,
            CATALOG_SOURCE,
            entry,
        )

    def _table(
        self, resolved: ResolvedModel, tier: str, fast: str | None, when: datetime
    ) -> PriceTable | _Unpriced:
        entry = resolved.entry
        time_of_day: tuple[bool, ...] = ()
        if isinstance(entry, CatalogEntry) and entry.time_of_day:
            time_of_day = tuple(constraint.active(when) for constraint in entry.time_of_day)
        key = (resolved.provider, resolved.model_requested, tier, fast, when.date(), time_of_day)
        cached = self._tables.get(key)
        if cached is not None:
            return cached

        if isinstance(entry, CustomPrice):
            table = _custom_table(resolved, entry, tier, fast, when.date())
        else:
            table = _catalog_table(resolved, entry, tier, fast, when)
        return self._tables.put(key, table)


def _catalog_table(
    resolved: ResolvedModel, entry: CatalogEntry, tier: str, fast: str | None, when: datetime
) -> PriceTable | _Unpriced:
    prices = standard_prices(entry, when)
    if fast:
        fast_prices = variant_prices(entry, when, {"speed": "fast"})
        if fast_prices is None:
            return _Unpriced(_no_tier_price(resolved, "fast-mode", when.date()))
        prices |= fast_prices
    if tier == "default":
        return table_from_prices(prices, CATALOG_SOURCE)

    tier_prices = variant_prices(entry, when, TIER_CONTEXTS[tier])
    if tier_prices is not None:
        return table_from_prices(prices | tier_prices, CATALOG_SOURCE)

    if tier == "flex" and "flex" in HALF_RATE_TIERS.get(resolved.provider, ()):
        batch_prices = variant_prices(entry, when, TIER_CONTEXTS["batch"])
        if batch_prices is not None:
            source = f"{CATALOG_SOURCE}; flex priced at the batch rates"
            return table_from_prices(prices | batch_prices, source)
    return _half_rate_table(resolved, tier, table_from_prices(prices, CATALOG_SOURCE), when.date())


def _custom_table(
    resolved: ResolvedModel, custom: CustomPrice, tier: str, fast: str | None, on: date
) -> PriceTable | _Unpriced:
    if fast:
        return _Unpriced(_no_tier_price(resolved, "fast-mode", on))
    cache_write = custom.cache_write_mtok
    if cache_write is None:
        cache_write = custom.input_mtok
    rates = {
        "input": custom.input_mtok,
        "cache_read": custom.input_mtok
        if custom.cache_read_mtok is None
        else custom.cache_read_mtok,
        "cache_write_5m": cache_write,
        "cache_write_1h": cache_write,
        "output": custom.output_mtok,
        "reasoning": custom.output_mtok,
        "input_audio": custom.input_mtok,
        "output_audio": custom.output_mtok,
    }
    table = PriceTable(rates, CUSTOM_SOURCE)
    if tier == "default":
        return table
    return _half_rate_table(resolved, tier, table, on)


def _half_rate_table(
    resolved: ResolvedModel, tier: str, standard: PriceTable, on: date
) -> PriceTable | _Unpriced:
    """Derive ``tier`` rates as half the standard ones where the provider bills it so."""
    if tier not in HALF_RATE_TIERS.get(resolved.provider, ()):
        return _Unpriced(_no_tier_price(resolved, tier, on))
    source = (
        f"{standard.source}; {tier} rates taken as 50% of standard, the {resolved.provider} rule"
    )
    return standard.scaled(_HALF, source)


def _priced_cost(resolved: ResolvedModel, tier: str, table: PriceTable, usage: Usage) -> Cost:
    breakdown, missing = table.breakdown(usage)
    notes: list[str] = []
    if "web_search" in missing:
        missing.remove("web_search")
        notes.append(
            f"{usage.web_search_requests} web search requests are not priced: "
            f"the catalog has no web search price for {resolved.model}"
        )
    if missing:
        reason = (
            f"no {', '.join(missing)} price for model '{resolved.model_requested}' of provider "
            f"'{resolved.provider}' in {table.source}; add it under `prices:` in thrifty.yaml"
        )
        return _unpriced_cost(
            resolved.provider, resolved.model_requested, resolved.model, tier, reason
        )

    total = Decimal(0)
    for amount in breakdown.values():
        total = EXACT.add(total, amount)
    return Cost(
        provider=resolved.provider,
        model_requested=resolved.model_requested,
        model=resolved.model,
        service_tier=tier,
        batch=tier == "batch",
        cost_usd=total,
        breakdown=breakdown,
        price_source=table.source,
        notes=tuple(notes),
    )


def _unpriced_cost(
    provider: str, model: str, catalog_model: str | None, tier: str, reason: str
) -> Cost:
    return Cost(
        provider=provider,
        model_requested=model,
        model=catalog_model,
        service_tier=tier,
        batch=tier == "batch",
        cost_usd=None,
        unpriced_reason=reason,
    )


def _no_tier_price(resolved: ResolvedModel, tier: str, on: date) -> str:
    return (
        f"no {tier} price for model '{resolved.model_requested}' of provider "
        f"'{resolved.provider}' on {on.isoformat()}; add it under `prices:` in thrifty.yaml"
    )


def _as_utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)
