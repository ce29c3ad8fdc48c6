"""The cost engine: Usage x price x tier x time -> Cost, in exact Decimal USD.

The gateway prices every request, so the engine does its work up front. The
catalog is compiled into per-token lookup tables when the first engine of a
process starts (see ``thrifty.pricing.lookup``). Each engine then remembers,
per distinct ``price()`` call shape (provider, model, tier, batch, speed),
the schedule of compiled tables it resolves to. A call after the first is a
dictionary lookup, a check that the request time falls in the same price
period as the last call's (a bisection when it does not, none for prices
that never changed) and, for a text-only usage, integer arithmetic with one
Decimal operation at the end (see ``thrifty.pricing.scaled``). The Cost's
breakdown is built when it is first read.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from thrifty.errors import UnknownModelError
from thrifty.pricing.catalog import CATALOG_SOURCE, PROVIDER_ALIASES, Catalog, CatalogEntry
from thrifty.pricing.compiled import (
    AnySchedule,
    CompiledTable,
    Period,
    RateRow,
    Schedule,
    Unpriced,
    compile_table,
    price_usage,
    usage_breakdown,
)
from thrifty.pricing.config import Discount, Discounts, PricesConfig
from thrifty.pricing.custom import CUSTOM_SOURCE, CustomPrice
from thrifty.pricing.lookup import CompiledModel, compile_custom, compiled_catalog
from thrifty.pricing.model import Cost
from thrifty.pricing.tiers import checked_speed, priced_tier
from thrifty.pricing.unpriced import UnpricedLog
from thrifty.usage.model import Usage

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A requested model matched to a price catalog entry or a custom price.

    ``provider`` is the catalog's id for the requested provider (``x-ai`` for
    ``xai``), or the name as given for a provider the catalog lacks.
    ``model`` is the catalog's id for the model (``gpt-4o`` for
    ``gpt-4o-2024-08-06``) and ``catalog_provider`` the genai-prices
    provider it is priced under (Azure for the OpenAI models Azure prices
    through its fallback to OpenAI's list). ``source`` is ``CATALOG_SOURCE`` or
    ``CUSTOM_SOURCE``. ``discount`` is the negotiated discount from
    thrifty.yaml that applies to it, if any.
    """

    provider: str
    model_requested: str
    model: str
    catalog_provider: str
    name: str | None
    context_window: int | None
    source: str
    entry: CatalogEntry | CustomPrice = field(repr=False, compare=False)
    discount: Discount | None = None


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _BoundedCache(dict[K, V], Generic[K, V]):
    """A dict that evicts its oldest entry once it has ``size`` entries.

    Model names come from clients, so an unbounded cache would grow with every
    misspelled model a client sends. Reads are plain ``dict.get`` calls; add
    entries with ``put`` only.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def put(self, key: K, value: V) -> V:
        if len(self) >= self._size:
            self.pop(next(iter(self)))
        self[key] = value
        return value


@dataclass(slots=True)
class _Resolution:
    """A resolved model with its compiled prices, discounted when a discount applies."""

    resolved: ResolvedModel
    compiled: CompiledModel
    schedules: dict[tuple[str, bool], AnySchedule] = field(default_factory=dict)

    def schedule(self, tier: str, fast: bool) -> AnySchedule:
        schedule = self.schedules.get((tier, fast))
        if schedule is None:
            schedule = self.compiled.schedule(tier, fast)
            discount = self.resolved.discount
            if discount is not None:
                schedule = schedule.mapped(lambda table: _discounted(table, discount))
            self.schedules[(tier, fast)] = schedule
        return schedule


@dataclass(slots=True)
class _Plan:
    """The resolved form of one call shape of ``price()``.

    ``schedule`` is None for an unknown model, and ``unknown_reason`` then says why.
    """

    provider: str
    model_requested: str
    model: str | None
    tier: str
    batch: bool
    schedule: AnySchedule | None
    unknown_reason: str | None = None
    # The schedule's one table when its prices never change: no time to look up.
    table: CompiledTable | None = None
    # The priced span of the schedule the last call fell in, tried first.
    span: _PricedSpan | None = None


@dataclass(frozen=True, slots=True)
class _PricedSpan:
    """A ``Span`` whose period is priced: ``table`` is in force from ``start`` to ``end``."""

    start: datetime
    end: datetime
    table: CompiledTable


class CostEngine:
    """Price usage with the genai-prices catalog, overridden by custom prices and discounts.

    ``overrides`` maps a model name, or ``"provider/model"`` for one provider
    only, to its custom price; an override wins over the catalog.
    ``discounts`` lowers catalog prices by a percentage per provider or per
    model. ``warn_unpriced`` logs a warning the first time each model is
    left unpriced on a UTC day, and ``today`` is the clock it reads.
    """

    def __init__(
        self,
        overrides: Mapping[str, CustomPrice] | None = None,
        *,
        discounts: Discounts | None = None,
        catalog: Catalog | None = None,
        warn_unpriced: bool = True,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._overrides = {name.strip().lower(): price for name, price in (overrides or {}).items()}
        self._discounts = discounts or Discounts()
        self._catalog = catalog or Catalog()
        self._compiled = compiled_catalog(self._catalog)
        self._custom_compiled: dict[tuple[str, str], CompiledModel] = {}
        self._unpriced_log = UnpricedLog(today=today) if warn_unpriced else None
        self._resolutions: _BoundedCache[tuple[str, str], _Resolution | None] = _BoundedCache(
            _CACHE_SIZE
        )
        self._plans: _BoundedCache[tuple[object, ...], _Plan] = _BoundedCache(_CACHE_SIZE)

    @classmethod
    def from_config(
        cls,
        config: PricesConfig | None,
        *,
        catalog: Catalog | None = None,
        warn_unpriced: bool = True,
        today: Callable[[], date] | None = None,
    ) -> CostEngine:
        """Build an engine with the custom prices and discounts of a ``prices:`` section."""
        config = config or PricesConfig()
        return cls(
            config.models,
            discounts=config.discounts,
            catalog=catalog,
            warn_unpriced=warn_unpriced,
            today=today,
        )

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def resolve(self, provider: str, model: str) -> ResolvedModel | None:
        """Return what ``model`` of ``provider`` is priced as, or None if it has no price."""
        resolution = self._resolution(provider, model)
        return None if resolution is None else resolution.resolved

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
        # The common case is written out here, _new_cost's steps included,
        # because each Python function call adds about 5% to a price() call
        # (callgrind, CPython 3.11).
        plan = self._plans.get((provider, model, service_tier, batch, speed))
        if plan is None:
            key = (provider, model, service_tier, batch, speed)
            plan = self._plans.put(key, self._plan(provider, model, service_tier, batch, speed))

        table = plan.table
        if table is None:
            if at is None:
                when = datetime.now(UTC)
            elif at.tzinfo is None:
                when = at.replace(tzinfo=UTC)
            else:
                when = at
            span = plan.span
            if span is not None and span.start <= when < span.end:
                table = span.table
            else:
                period = self._period(plan, when)
                if isinstance(period, Cost):
                    return period
                table = period

        row = table.only_row
        if row is None:
            row = table.rows[bisect_left(table.thresholds, usage.input_tokens)]
        # Two steps: row.price_text(usage) would look the slot up as a method, which is slower.
        price_text = row.price_text
        total = price_text(usage)
        if total is None:
            return self._price_by_class(plan, table, row, usage)

        # The breakdown is built when it is first read (see model.DeferredBreakdown).
        fresh: Any = _CostFields()
        fresh.provider = plan.provider
        fresh.model_requested = plan.model_requested
        fresh.model = plan.model
        fresh.service_tier = plan.tier
        fresh.batch = plan.batch
        fresh.cost_usd = total
        fresh.breakdown = (usage_breakdown, row, usage)
        fresh.unpriced_reason = None
        fresh.price_source = table.source
        fresh.notes = ()
        fresh.__class__ = Cost
        cost: Cost = fresh
        return cost

    def _price_by_class(
        self, plan: _Plan, table: CompiledTable, row: RateRow, usage: Usage
    ) -> Cost:
        """Price a usage that ``RateRow.price_text`` does not, class by class in Decimal."""
        breakdown, total, missing = price_usage(row, usage)
        if missing:
            return self._partly_priced(plan, table, usage, (breakdown, total, missing))
        return _new_cost(plan, total, breakdown, table.source)

    def _period(self, plan: _Plan, when: datetime) -> CompiledTable | Cost:
        """Return the table in force ``when``, or the unpriced Cost when there is none."""
        schedule = plan.schedule
        if schedule is None:
            return self._unpriced(plan, plan.unknown_reason or "")
        span = schedule.span(when)
        period = span.period
        if isinstance(period, Unpriced):
            return self._unpriced(plan, period.message(plan.provider, plan.model_requested, when))
        plan.span = _PricedSpan(span.start, span.end, period)
        return period

    def _plan(
        self,
        provider: str,
        model: str,
        service_tier: str | None,
        batch: bool,
        speed: str | None,
    ) -> _Plan:
        tier = priced_tier(service_tier, batch)
        fast = checked_speed(speed) is not None
        resolution = self._resolution(provider, model)
        if resolution is None:
            reason = str(UnknownModelError(provider, model))
            return _Plan(provider, model, None, tier, tier == "batch", None, reason)
        resolved = resolution.resolved
        schedule = resolution.schedule(tier, fast)
        table = schedule.only_table if isinstance(schedule, Schedule) else None
        return _Plan(
            resolved.provider, model, resolved.model, tier, tier == "batch", schedule, table=table
        )

    def _resolution(self, provider: str, model: str) -> _Resolution | None:
        key = (provider, model)
        cached = self._resolutions.get(key)
        if cached is not None:
            return cached
        resolution = self._find(provider, model)
        if resolution is None:
            # Unknown names are not cached: a client could fill the cache with them.
            return None
        return self._resolutions.put(key, resolution)

    def _find(self, provider: str, model: str) -> _Resolution | None:
        given = provider.strip().lower()
        known = self._catalog.provider(given)
        provider_id = known.id if known is not None else PROVIDER_ALIASES.get(given, given)
        model_key = model.strip().lower()

        custom_name = _first_key(
            self._overrides, f"{given}/{model_key}", f"{provider_id}/{model_key}", model_key
        )
        if custom_name is not None:
            return self._custom_resolution(provider_id, model, custom_name)

        entry = self._catalog.find(provider_id, model)
        if entry is None:
            return None
        info = entry.model
        discount = self._discounts.find(
            (given, provider_id),
            (f"{given}/{model_key}", f"{provider_id}/{model_key}", f"{provider_id}/{info.id}"),
            (model_key, info.id),
        )
        resolved = ResolvedModel(
            provider_id,
            model,
            info.id,
            entry.provider_id,
            info.name,
            info.context_window,
            CATALOG_SOURCE,
            entry,
            discount,
        )
        return _Resolution(resolved, self._compiled.model(entry))

    def _custom_resolution(self, provider_id: str, model: str, name: str) -> _Resolution:
        custom = self._overrides[name]
        compiled = self._custom_compiled.get((provider_id, name))
        if compiled is None:
            compiled = self._custom_compiled[(provider_id, name)] = compile_custom(
                custom, provider_id
            )
        resolved = ResolvedModel(
            provider_id, model, model, provider_id, None, None, CUSTOM_SOURCE, custom
        )
        return _Resolution(resolved, compiled)

    def _partly_priced(
        self,
        plan: _Plan,
        period: CompiledTable,
        usage: Usage,
        priced: tuple[dict[str, Decimal], Decimal, list[str]],
    ) -> Cost:
        """Price a usage with classes the table has no rate for (``price_usage``'s result).

        Web searches without a price are left out with a note, because the
        tokens are still priced right. Any other class makes the whole cost
        unpriced: a partial figure would read as the full one.
        """
        breakdown, total, missing = priced
        notes: list[str] = []
        if "web_search" in missing:
            missing.remove("web_search")
            where = "the catalog" if period.source.startswith(CATALOG_SOURCE) else CUSTOM_SOURCE
            notes.append(
                f"{usage.web_search_requests} web search requests are not priced: "
                f"{where} has no web search price for {plan.model}"
            )
        if missing:
            reason = (
                f"no {', '.join(missing)} price for model '{plan.model_requested}' of provider "
                f"'{plan.provider}' in {period.source}; add it under `prices:` in thrifty.yaml"
            )
            return self._unpriced(plan, reason)
        return _new_cost(plan, total, breakdown, period.source, notes=tuple(notes))

    def _unpriced(self, plan: _Plan, reason: str) -> Cost:
        if self._unpriced_log is not None:
            self._unpriced_log.record(plan.provider, plan.model_requested, reason)
        return _new_cost(plan, None, {}, None, unpriced_reason=reason)


# Cost is a frozen dataclass: its generated __init__ sets every field through
# object.__setattr__, which takes longer than the rest of a price() call. The
# engine instead creates an instance of a plain slotted twin of Cost (same
# fields, same slot layout), fills its slots and then makes it a Cost by
# assigning its class. The result is an ordinary, immutable Cost, equal to
# Cost(...) with the same values; a test checks both.
class _CostFields:
    __slots__ = tuple(item.name for item in fields(Cost))


def _new_cost(
    plan: _Plan,
    cost_usd: Decimal | None,
    breakdown: dict[str, Decimal],
    price_source: str | None,
    *,
    notes: tuple[str, ...] = (),
    unpriced_reason: str | None = None,
) -> Cost:
    fresh: Any = _CostFields()
    fresh.provider = plan.provider
    fresh.model_requested = plan.model_requested
    fresh.model = plan.model
    fresh.service_tier = plan.tier
    fresh.batch = plan.batch
    fresh.cost_usd = cost_usd
    fresh.breakdown = breakdown
    fresh.unpriced_reason = unpriced_reason
    fresh.price_source = price_source
    fresh.notes = notes
    fresh.__class__ = Cost
    cost: Cost = fresh
    return cost


def _discounted(table: CompiledTable, discount: Discount) -> Period:
    source = f"{table.source}; {discount.describe()}"
    return compile_table(table.table.scaled(discount.factor, source, fees=True))


def _first_key(mapping: Mapping[str, object], *keys: str) -> str | None:
    return next((key for key in keys if key in mapping), None)
