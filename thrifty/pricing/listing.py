"""The price catalog described for people: every rate, tier and variant, with its start date.

``list_models`` returns one summary per model. ``model_sheet`` returns every
price block of one model: its standard prices over time, each price variant
(Batch, Flex, Priority, fast mode, routes), and the tiers the engine derives
by a provider's rule where the catalog has no variant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from decimal import Decimal

from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    PriceVariant,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from thrifty.errors import PricingError, UnknownModelError
from thrifty.pricing.catalog import CATALOG_SOURCE, Catalog, CatalogEntry, catalog_entry
from thrifty.pricing.config import Discount, PricesConfig
from thrifty.pricing.custom import CUSTOM_SOURCE, CustomPrice
from thrifty.pricing.tables import HALF_RATE_TIERS

# Units of genai-prices price keys, by the suffix of the key.
_UNITS = (
    ("_mtok", "per 1M tokens"),
    ("_kcount", "per 1K"),
    ("_mchars", "per 1M characters"),
    ("_kpages", "per 1K pages"),
    ("_hours", "per hour"),
)

# Price variant contexts in the words of Thrifty's tiers.
_VARIANT_NAMES = {
    ("processing", "batch"): "batch",
    ("service_tier", "flex"): "flex",
    ("service_tier", "priority"): "priority",
    ("service_tier", "ultrafast"): "ultrafast",
    ("speed", "fast"): "fast mode",
}


@dataclass(frozen=True, slots=True)
class Rate:
    """One price key of a block: ``base`` USD per ``unit``, and long-context tiers.

    ``tiers`` contains ``(input_tokens, price)`` pairs: once a request's input
    exceeds ``input_tokens``, every unit of this key costs ``price``.
    """

    key: str
    label: str
    unit: str
    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class PriceBlock:
    """A set of rates that applies together.

    ``applies_to`` is ``standard``, a tier (``batch``, ``flex``...) or a
    variant context such as ``route=mistral/eu``. ``starts`` is the UTC date
    the block took effect, or None when it has applied from the start.
    ``daily`` is the daily UTC window it is limited to, if any. A variant's
    rates override only the standard keys it lists. ``in_force`` says
    whether the block applies at the time the sheet was made for. ``note``
    explains a derived block.
    """

    applies_to: str
    rates: tuple[Rate, ...]
    starts: date | None = None
    daily: str | None = None
    in_force: bool = True
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSheet:
    """Every price of one model, as ``thrifty prices show`` prints it."""

    provider: str
    provider_name: str
    model: str
    name: str | None
    context_window: int | None
    source: str
    blocks: tuple[PriceBlock, ...]
    discount: Discount | None = None
    deprecated: bool = False
    comments: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One row of ``thrifty prices list``: a model's standard prices in force now.

    Prices are USD per million tokens; ``tiered`` marks prices that rise with
    the input size (the base price is shown). ``variants`` names the tiers
    and modes with prices of their own, and ``since`` the date the standard
    prices took effect.
    """

    provider: str
    model: str
    name: str | None
    context_window: int | None
    input_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    output_mtok: Decimal | None
    tiered: bool
    variants: tuple[str, ...]
    since: date | None
    source: str


def list_models(
    catalog: Catalog,
    *,
    provider: str | None = None,
    at: datetime | None = None,
    config: PricesConfig | None = None,
) -> list[ModelSummary]:
    """Summarize every model of the catalog (of one provider) and of ``config``."""
    when = _utc(at)
    providers = catalog.providers
    if provider is not None:
        found = catalog.provider(provider)
        providers = [found] if found is not None else []
    summaries = [
        _summary(catalog_entry(item, model, own=True), when)
        for item in providers
        for model in item.models
    ]
    for key, custom in sorted((config or PricesConfig()).models.items()):
        custom_provider, _, model = key.rpartition("/")
        if provider is None or custom_provider == provider.strip().lower():
            summaries.append(_custom_summary(custom_provider or "*", model, custom))
    if provider is not None and not summaries:
        raise PricingError(
            f"unknown provider {provider!r}; run `thrifty prices list` to see every "
            "provider, or add the provider's models under `prices:` in thrifty.yaml"
        )
    return summaries


def model_sheet(
    catalog: Catalog,
    model: str,
    *,
    provider: str | None = None,
    at: datetime | None = None,
    config: PricesConfig | None = None,
) -> ModelSheet:
    """Describe every price of ``model``; raise UnknownModelError when nothing prices it."""
    when = _utc(at)
    prices = config or PricesConfig()
    custom = _custom_price(prices, provider, model)
    if custom is not None:
        name, price = custom
        return _custom_sheet(name, price)

    entry = _find(catalog, model, provider)
    if entry is None and provider is not None:
        raise UnknownModelError(provider, model)
    if entry is None:
        raise PricingError(
            f"unknown model {model!r}: no provider in the price catalog lists it; "
            "pass --provider, or add it under `prices:` in thrifty.yaml"
        )
    found = catalog.provider(entry.provider_id)
    provider_name = found.name if found is not None else entry.provider_id
    info = entry.model
    discount = prices.discounts.find(
        (entry.provider_id,),
        (f"{entry.provider_id}/{model.strip().lower()}", f"{entry.provider_id}/{info.id}"),
        (model.strip().lower(), info.id),
    )
    return ModelSheet(
        provider=entry.provider_id,
        provider_name=provider_name,
        model=info.id,
        name=info.name,
        context_window=info.context_window,
        source=CATALOG_SOURCE,
        blocks=tuple(_blocks(entry, when)),
        discount=discount,
        deprecated=bool(info.deprecated),
        comments=info.price_comments,
    )


def _find(catalog: Catalog, model: str, provider: str | None) -> CatalogEntry | None:
    """Find ``model`` under ``provider``, or under the provider its name points to.

    Without a provider, genai-prices' own rule picks it: the first provider
    whose model-name pattern accepts the name (``gpt-`` is OpenAI's,
    ``claude-`` Anthropic's). Failing that, the first provider that lists a
    model of that id, then the first that matches the name at all.
    """
    if provider is not None:
        return catalog.find(provider, model)
    ref = model.strip().lower()
    for item in catalog.providers:
        if item.model_match is not None and item.model_match.is_match(ref):
            entry = catalog.find(item.id, model)
            if entry is not None:
                return entry
    for item in catalog.providers:
        for info in item.models:
            if info.id.lower() == ref:
                return catalog_entry(item, info, own=True)
    for item in catalog.providers:
        entry = catalog.find(item.id, model)
        if entry is not None:
            return entry
    return None


def _blocks(entry: CatalogEntry, when: datetime) -> list[PriceBlock]:
    blocks = _standard_blocks(entry.model, when)
    variants = list(entry.model.price_variants or ()) if entry.own else []
    blocks.extend(_variant_block(variant, when) for variant in variants)
    blocks.extend(_rule_blocks(entry.provider_id, variants, when))
    return blocks


def _standard_blocks(model: ModelInfo, when: datetime) -> list[PriceBlock]:
    if isinstance(model.prices, ModelPrice):
        return [PriceBlock("standard", _rates(model.prices))]
    active = _active_standard(model.prices, when)
    return [
        PriceBlock(
            "standard",
            _rates(conditional.prices),
            starts=_start(conditional.constraint),
            daily=_daily(conditional.constraint),
            in_force=conditional is active,
        )
        for conditional in model.prices
    ]


def _active_standard(prices: list[ConditionalPrice], when: datetime) -> ConditionalPrice:
    """Return the conditional price in force at ``when``: the last active one, else the first."""
    for conditional in reversed(prices):
        if conditional.constraint is None or conditional.constraint.active(when):
            return conditional
    return prices[0]


def _variant_block(variant: PriceVariant, when: datetime) -> PriceBlock:
    constraint = variant.constraint
    return PriceBlock(
        _variant_name(variant.when),
        _rates(variant.prices),
        starts=_start(constraint),
        daily=_daily(constraint),
        in_force=constraint is None or constraint.active(when),
    )


def _rule_blocks(
    provider: str, variants: Iterable[PriceVariant], when: datetime
) -> list[PriceBlock]:
    """Describe the tiers the engine derives by the provider's rule, where no variant prices them.

    A tier whose variant starts on a date is derived by the rule before it.
    OpenAI's flex is priced at the batch variant while one is in force.
    """
    starts: dict[str, date | None] = {}
    for variant in variants:
        name = _variant_name(variant.when)
        start = _start(variant.constraint)
        earlier = starts.get(name, start)
        starts[name] = None if start is None or earlier is None else min(start, earlier)
    blocks: list[PriceBlock] = []
    for tier in sorted(HALF_RATE_TIERS.get(provider, ())):
        if tier in starts and starts[tier] is None:
            continue
        until = starts.get(tier)
        then = ""
        if tier == "flex" and "flex" not in starts and "batch" in starts:
            until, then = starts["batch"], ", then the batch rates"
        if until is None and then:
            note = f"the batch rates (the {provider} rule)"
        elif until is None:
            note = f"50% of the standard rates (the {provider} rule)"
        else:
            note = (
                f"50% of the standard rates until {until.isoformat()}{then} (the {provider} rule)"
            )
        in_force = bool(then) or until is None or when < _midnight(until)
        blocks.append(PriceBlock(tier, (), in_force=in_force, note=note))
    return blocks


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _rates(prices: ModelPrice) -> tuple[Rate, ...]:
    rates: list[Rate] = []
    for key, value in vars(prices).items():
        if key.startswith("_") or value is None:
            continue
        label, unit = _label(key)
        if isinstance(value, TieredPrices):
            tiers = tuple((tier.start, tier.price) for tier in value.tiers)
            rates.append(Rate(key, label, unit, value.base, tiers))
        elif isinstance(value, Decimal):
            rates.append(Rate(key, label, unit, value))
    return tuple(rates)


def _label(key: str) -> tuple[str, str]:
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            return key.removesuffix(suffix).replace("_", " "), unit
    return key.replace("_", " "), ""


def _variant_name(when: Mapping[str, str]) -> str:
    names = [_VARIANT_NAMES.get(pair, f"{pair[0]}={pair[1]}") for pair in sorted(when.items())]
    return ", ".join(names)


def _start(constraint: object) -> date | None:
    return constraint.start_date if isinstance(constraint, StartDateConstraint) else None


def _daily(constraint: object) -> str | None:
    if not isinstance(constraint, TimeOfDateConstraint):
        return None
    return f"{_clock(constraint.start_time)}-{_clock(constraint.end_time)} UTC"


def _clock(moment: time) -> str:
    if moment.tzinfo is not None:
        moment = datetime.combine(date(1970, 1, 1), moment).astimezone(UTC).time()
    return moment.strftime("%H:%M")


def _summary(entry: CatalogEntry, when: datetime) -> ModelSummary:
    info = entry.model
    if isinstance(info.prices, ModelPrice):
        standard, since = info.prices, None
    else:
        active = _active_standard(info.prices, when)
        standard, since = active.prices, _start(active.constraint)
    values = vars(standard)
    variants = sorted({_variant_name(variant.when) for variant in info.price_variants or ()})
    return ModelSummary(
        provider=entry.provider_id,
        model=info.id,
        name=info.name,
        context_window=info.context_window,
        input_mtok=_base(values.get("input_mtok")),
        cache_read_mtok=_base(values.get("cache_read_mtok")),
        output_mtok=_base(values.get("output_mtok")),
        tiered=any(isinstance(value, TieredPrices) for value in values.values()),
        variants=tuple(variants),
        since=since,
        source=CATALOG_SOURCE,
    )


def _base(value: object) -> Decimal | None:
    if isinstance(value, TieredPrices):
        return value.base
    return value if isinstance(value, Decimal) else None


def _custom_price(
    config: PricesConfig, provider: str | None, model: str
) -> tuple[str, CustomPrice] | None:
    model_key = model.strip().lower()
    keys = [model_key]
    if provider is not None:
        keys.insert(0, f"{provider.strip().lower()}/{model_key}")
    for key in keys:
        if key in config.models:
            return key, config.models[key]
    return None


def _custom_summary(provider: str, model: str, custom: CustomPrice) -> ModelSummary:
    return ModelSummary(
        provider=provider,
        model=model,
        name=None,
        context_window=None,
        input_mtok=custom.input_mtok,
        cache_read_mtok=custom.cache_read_mtok,
        output_mtok=custom.output_mtok,
        tiered=False,
        variants=(),
        since=None,
        source=CUSTOM_SOURCE,
    )


def _custom_sheet(key: str, custom: CustomPrice) -> ModelSheet:
    provider, _, model = key.rpartition("/")
    rates = []
    for item in fields(custom):
        value = getattr(custom, item.name)
        if value is not None:
            label, unit = _label(item.name)
            rates.append(Rate(item.name, label, unit, value))
    blocks = [PriceBlock("standard", tuple(rates))]
    blocks.extend(_rule_blocks(provider, (), datetime.now(UTC)))
    return ModelSheet(
        provider=provider or "*",
        provider_name=provider or "any provider",
        model=model,
        name=None,
        context_window=None,
        source=CUSTOM_SOURCE,
        blocks=tuple(blocks),
    )


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
