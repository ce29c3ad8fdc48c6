"""The price catalog compiled into lookup tables once per process, at start-up.

Compiling walks every provider's own models and builds, for each service tier
and speed, the model's schedule of compiled tables. Pricing a request then
never reads the genai-prices data structures: it bisects a schedule by time,
picks the input-size bracket and multiplies.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from thrifty.pricing.catalog import Catalog, CatalogEntry, catalog_entry
from thrifty.pricing.compiled import (
    FAR_PAST,
    AnySchedule,
    DailySchedule,
    DailyWindow,
    Period,
    Schedule,
    Unpriced,
    compile_table,
    start_instant,
)
from thrifty.pricing.custom import CustomPrice
from thrifty.pricing.tables import HALF_RATE_TIERS, catalog_table, custom_table, no_tier_price
from thrifty.pricing.tiers import TIER_CONTEXTS

logger = logging.getLogger(__name__)

# The tiers Thrifty prices (see thrifty.pricing.tiers.priced_tier), each at
# standard speed and in Anthropic's fast mode.
PRICED_TIERS = ("default", "flex", "priority", "batch", "ultrafast")
TIER_KEYS: tuple[tuple[str, bool], ...] = tuple(
    (tier, fast) for tier in PRICED_TIERS for fast in (False, True)
)


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """The schedules of one priced model, by ``(tier, fast)``."""

    entry: CatalogEntry | CustomPrice
    schedules: dict[tuple[str, bool], AnySchedule]

    def schedule(self, tier: str, fast: bool) -> AnySchedule:
        return self.schedules[(tier, fast)]


def compile_entry(entry: CatalogEntry) -> CompiledModel:
    """Compile a catalog model's prices at every tier and speed, over all its periods."""
    starts = tuple(start_instant(day) for day in entry.start_days)
    # FAR_PAST stands for every instant before the model's first price change.
    instants = (FAR_PAST, *starts)
    contexts = _variant_contexts(entry)
    schedules: dict[tuple[str, bool], AnySchedule] = {}
    for tier, fast in TIER_KEYS:
        never = _never_priced(entry, tier, fast, contexts)
        if never is not None:
            schedules[(tier, fast)] = Schedule((), (never,))
            continue
        build = partial(_catalog_period, entry, tier, fast)
        if entry.time_of_day:
            windows = tuple(DailyWindow.of(constraint) for constraint in entry.time_of_day)
            schedules[(tier, fast)] = DailySchedule.of(starts, windows, build)
        else:
            periods = tuple(build(at) for at in instants)
            schedules[(tier, fast)] = Schedule.merged(starts, periods)
    return CompiledModel(entry, schedules)


def compile_custom(custom: CustomPrice, provider: str) -> CompiledModel:
    """Compile a thrifty.yaml price at every tier and speed; it has one period."""
    schedules: dict[tuple[str, bool], AnySchedule] = {}
    for tier, fast in TIER_KEYS:
        table = custom_table(custom, provider, tier, fast)
        period = table if isinstance(table, Unpriced) else compile_table(table)
        schedules[(tier, fast)] = Schedule((), (period,))
    return CompiledModel(custom, schedules)


class CompiledCatalog:
    """Every catalog model, compiled; built once per catalog (see ``compiled_catalog``)."""

    def __init__(self, catalog: Catalog) -> None:
        started = time.perf_counter()
        self.catalog = catalog
        self._models: dict[tuple[str, int], CompiledModel] = {}
        for provider in catalog.providers:
            for model in provider.models:
                compiled = compile_entry(catalog_entry(provider, model, own=True))
                self._models[(provider.id, id(model))] = compiled
        logger.debug(
            "compiled %d catalog models in %.0f ms",
            len(self._models),
            (time.perf_counter() - started) * 1000,
        )

    def __len__(self) -> int:
        return len(self._models)

    def model(self, entry: CatalogEntry) -> CompiledModel:
        """Return the compiled prices of ``entry``.

        A model a provider prices through a fallback provider is compiled on
        first use, because its prices differ from the fallback's own entry.
        """
        # The provider id keeps a fallback model apart from its own provider's entry.
        key = (entry.provider_id, id(entry.model))
        compiled = self._models.get(key)
        if compiled is None:
            compiled = self._models[key] = compile_entry(entry)
        return compiled


_COMPILED: dict[int, tuple[Catalog, CompiledCatalog]] = {}


def compiled_catalog(catalog: Catalog) -> CompiledCatalog:
    """Return the compiled form of ``catalog``'s providers, compiling them on the first call.

    Engines over the same provider list (the bundled genai-prices data, by
    default) share one compiled catalog, so only the first engine of a
    process pays for compiling.
    """
    key = id(catalog.providers)
    cached = _COMPILED.get(key)
    if cached is not None and cached[0].providers is catalog.providers:
        return cached[1]
    compiled = CompiledCatalog(catalog)
    _COMPILED[key] = (catalog, compiled)
    return compiled


def _variant_contexts(entry: CatalogEntry) -> frozenset[tuple[str, str]]:
    """Return every (key, value) pair a price variant of ``entry`` is selected by."""
    if not entry.own:
        return frozenset()
    return frozenset(
        pair for variant in entry.model.price_variants or () for pair in variant.when.items()
    )


def _never_priced(
    entry: CatalogEntry, tier: str, fast: bool, contexts: frozenset[tuple[str, str]]
) -> Unpriced | None:
    """Return why ``entry`` has no price at ``tier`` and speed on any date, or None.

    This only saves work, because ``catalog_table`` returns the same result for each date.
    """
    if fast and ("speed", "fast") not in contexts:
        return no_tier_price("fast-mode")
    if tier == "default":
        return None
    if any(pair in contexts for pair in TIER_CONTEXTS[tier].items()):
        return None
    if tier in HALF_RATE_TIERS.get(entry.provider_id, ()):
        return None
    return no_tier_price(tier)


def _catalog_period(entry: CatalogEntry, tier: str, fast: bool, when: datetime) -> Period:
    table = catalog_table(entry, tier, fast, when)
    return table if isinstance(table, Unpriced) else compile_table(table)
