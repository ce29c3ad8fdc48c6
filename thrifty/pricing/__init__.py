"""Price catalog and cost engine: Usage x price x tier x time -> Cost."""

from thrifty.pricing.model import TOKEN_CLASSES, Cost, ServiceTier

__all__ = ["TOKEN_CLASSES", "Cost", "ServiceTier"]
