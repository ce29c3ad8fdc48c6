"""Price catalog and cost engine: Usage x price x tier x time -> Cost."""

from thrifty.pricing.catalog import CATALOG_SOURCE
from thrifty.pricing.config import Discount, Discounts, PricesConfig, parse_prices_config
from thrifty.pricing.custom import CUSTOM_SOURCE, CustomPrice
from thrifty.pricing.engine import CostEngine, ResolvedModel
from thrifty.pricing.model import TOKEN_CLASSES, Cost, ServiceTier
from thrifty.pricing.money import format_usd
from thrifty.pricing.tiers import SERVICE_TIERS, priced_tier

__all__ = [
    "CATALOG_SOURCE",
    "CUSTOM_SOURCE",
    "SERVICE_TIERS",
    "TOKEN_CLASSES",
    "Cost",
    "CostEngine",
    "CustomPrice",
    "Discount",
    "Discounts",
    "PricesConfig",
    "ResolvedModel",
    "ServiceTier",
    "format_usd",
    "parse_prices_config",
    "priced_tier",
]
