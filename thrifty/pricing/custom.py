"""Prices that thrifty.yaml adds for models the catalog lacks or prices wrongly."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from thrifty.errors import ConfigError

CUSTOM_SOURCE = "thrifty.yaml"


@dataclass(frozen=True, slots=True)
class CustomPrice:
    """USD per million tokens for one model, at standard (default-tier) rates.

    Without ``cache_read_mtok`` cached tokens cost the input price, and without
    ``cache_write_mtok`` cache writes do too. 1-hour cache writes cost
    ``cache_write_1h_mtok``, or the generic write price without it. Reasoning
    tokens cost the output price. Batch and Flex rates follow from these by
    the provider's rules.
    """

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ConfigError(
                    f"invalid custom price {item.name}={value!r}; "
                    "give a finite Decimal of at least 0 (USD per million tokens)"
                )
