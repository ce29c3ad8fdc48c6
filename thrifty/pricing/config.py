"""The ``prices:`` section of thrifty.yaml: negotiated discounts and custom model prices.

::

    prices:
      discounts:                  # percent off the catalog prices
        providers:
          openai: 10
        models:                   # a model discount wins over its provider's
          anthropic/claude-sonnet-4-5: 12.5
          gpt-4o: "5%"
      models:                     # USD per million tokens; wins over the catalog
        vllm/llama-3.3-70b:       # provider/model, or a model name for any provider
          input_mtok: 0.20
          output_mtok: 0.60
          cache_read_mtok: 0.02   # optional, default: the input price
          cache_write_mtok: 0.25  # optional, default: the input price
          cache_write_1h_mtok: 0.4  # optional, default: the cache write price

A discount lowers every catalog rate of the models it covers, per-request
fees such as web searches included. It does not apply to custom prices,
which are taken as what the provider charges. A YAML number is read as the
decimal it is written as, so ``0.1`` is exactly one tenth. Quote a price with
more than 15 significant digits, because YAML reads numbers as floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from thrifty.errors import ConfigError
from thrifty.pricing.custom import CustomPrice
from thrifty.pricing.money import format_usd
from thrifty.pricing.rates import EXACT

_SECTION_KEYS = ("discounts", "models")
_DISCOUNT_KEYS = ("providers", "models")
_PRICE_KEYS = tuple(item.name for item in fields(CustomPrice))
_REQUIRED_PRICE_KEYS = ("input_mtok", "output_mtok")
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Discount:
    """A negotiated discount: ``percent`` off, from the config key ``key``."""

    percent: Decimal
    key: str

    @property
    def factor(self) -> Decimal:
        """What the discounted price is as a fraction of the catalog price."""
        return EXACT.subtract(Decimal(1), EXACT.divide(self.percent, _HUNDRED))

    def describe(self) -> str:
        return f"{format_usd(self.percent)}% discount from {self.key}"


@dataclass(frozen=True, slots=True)
class Discounts:
    """Percentages off the catalog prices, by provider id and by model name.

    Keys are lowercase. A model key is a model name or ``provider/model``.
    """

    providers: Mapping[str, Decimal] = field(default_factory=dict)
    models: Mapping[str, Decimal] = field(default_factory=dict)

    def find(
        self,
        provider_names: Iterable[str],
        scoped_model_names: Iterable[str],
        model_names: Iterable[str],
    ) -> Discount | None:
        """Return the discount for the first name that has one, or None.

        ``provider/model`` keys are tried first, then bare model names, then
        the provider: the most specific discount wins, and discounts never
        add up.
        """
        for name in (*scoped_model_names, *model_names):
            if name in self.models:
                return Discount(self.models[name], f"prices.discounts.models.{name}")
        for name in provider_names:
            if name in self.providers:
                return Discount(self.providers[name], f"prices.discounts.providers.{name}")
        return None


@dataclass(frozen=True, slots=True)
class PricesConfig:
    """The parsed ``prices:`` section: custom prices by model key, and discounts."""

    models: Mapping[str, CustomPrice] = field(default_factory=dict)
    discounts: Discounts = field(default_factory=Discounts)


def parse_prices_config(raw: object) -> PricesConfig:
    """Validate the raw YAML value of ``prices:``; raise ConfigError naming the bad key."""
    if raw is None:
        return PricesConfig()
    section = _mapping(raw, "prices")
    _reject_unknown(section, _SECTION_KEYS, "prices")
    return PricesConfig(
        models=_custom_prices(section.get("models"), "prices.models"),
        discounts=_discounts(section.get("discounts"), "prices.discounts"),
    )


def _discounts(raw: object, where: str) -> Discounts:
    if raw is None:
        return Discounts()
    section = _mapping(raw, where)
    _reject_unknown(section, _DISCOUNT_KEYS, where)
    return Discounts(
        providers=_percentages(section.get("providers"), f"{where}.providers"),
        models=_percentages(section.get("models"), f"{where}.models"),
    )


def _percentages(raw: object, where: str) -> dict[str, Decimal]:
    if raw is None:
        return {}
    percentages: dict[str, Decimal] = {}
    for name, value in _mapping(raw, where).items():
        key = _name(name, where, percentages)
        percentages[key] = _percentage(value, f"{where}.{name}")
    return percentages


def _percentage(value: object, where: str) -> Decimal:
    text = value.strip().removesuffix("%") if isinstance(value, str) else value
    percent = _decimal(text)
    if percent is None or not 0 <= percent <= _HUNDRED:
        raise ConfigError(f"{where} is {value!r}; give a percentage from 0 to 100, such as 12.5")
    return percent


def _custom_prices(raw: object, where: str) -> dict[str, CustomPrice]:
    if raw is None:
        return {}
    prices: dict[str, CustomPrice] = {}
    for name, value in _mapping(raw, where).items():
        key = _name(name, where, prices)
        prices[key] = _custom_price(value, f"{where}.{name}")
    return prices


def _custom_price(raw: object, where: str) -> CustomPrice:
    entry = _mapping(raw, where)
    _reject_unknown(entry, _PRICE_KEYS, where)
    for key in _REQUIRED_PRICE_KEYS:
        if entry.get(key) is None:
            raise ConfigError(
                f"{where}.{key} is missing; give the model's {key} in USD per million tokens"
            )
    rates: dict[str, Decimal] = {}
    for key, value in entry.items():
        if value is None:
            continue
        rate = _decimal(value)
        if rate is None or rate < 0:
            raise ConfigError(
                f"{where}.{key} is {value!r}; give USD per million tokens as a number "
                "of at least 0, such as 2.5"
            )
        rates[key] = rate
    return CustomPrice(**rates)


def _decimal(value: object) -> Decimal | None:
    """Read a YAML number or decimal string exactly; None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # str() of a float is its shortest repr: 0.1 becomes Decimal("0.1").
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _name(name: str, where: str, seen: Mapping[str, object]) -> str:
    key = name.strip().lower()
    if not key:
        raise ConfigError(f"{where} has an empty name; name each entry")
    if key in seen:
        raise ConfigError(
            f"{where}.{name} repeats an earlier entry (names are not case-sensitive); "
            "keep one of them"
        )
    return key


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
    return {str(key): item for key, item in value.items()}


def _reject_unknown(entry: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys are {', '.join(sorted(allowed))}"
        )
