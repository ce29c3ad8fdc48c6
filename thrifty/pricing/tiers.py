"""Service tiers: the provider's words mapped onto the tiers Thrifty prices."""

from __future__ import annotations

from collections.abc import Mapping

from thrifty.errors import PricingError

# What a response (or a caller) may put in ``service_tier``, and the tier it is
# priced at. OpenAI returns "default", "flex", "priority" or "scale" (older
# Scale Tier contracts, billed at standard rates). Its API reference says a
# request for "fast" is served, and reported, as "priority", and "auto", the
# request default, means the project's default tier. Anthropic returns
# "standard", "priority" or "batch". "ultrafast" is OpenAI's access-controlled
# tier, which the catalog does not price.
SERVICE_TIERS: Mapping[str, str] = {
    "default": "default",
    "auto": "default",
    "scale": "default",
    "standard": "default",
    "flex": "flex",
    "priority": "priority",
    "fast": "priority",
    "batch": "batch",
    "ultrafast": "ultrafast",
}

# Price-variant context of each priced tier, in genai-prices' terms.
TIER_CONTEXTS: Mapping[str, Mapping[str, str]] = {
    "default": {},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
    "batch": {"processing": "batch"},
    "ultrafast": {"service_tier": "ultrafast"},
}

# Anthropic's ``usage.speed``: "fast" is fast mode, priced as its own variant.
SPEEDS = ("standard", "fast")


def priced_tier(service_tier: str | None, batch: bool) -> str:
    """Return the tier to price a request at: default, flex, priority, batch or ultrafast.

    Raises ``PricingError`` for a tier name no provider uses, and for a batch
    request that claims an interactive tier.
    """
    tier = "default"
    if service_tier is not None:
        key = service_tier.strip().lower()
        if key not in SERVICE_TIERS:
            raise PricingError(
                f"unknown service tier {service_tier!r}; "
                f"expected one of: {', '.join(SERVICE_TIERS)}"
            )
        tier = SERVICE_TIERS[key]
    if not batch:
        return tier
    if tier not in ("default", "batch"):
        raise PricingError(
            f"service tier {service_tier!r} cannot be priced as a batch request; "
            "batch results are served at the batch tier, so pass batch=True without "
            "an interactive tier"
        )
    return "batch"


def checked_speed(speed: str | None) -> str | None:
    """Return ``"fast"`` for fast mode and None otherwise; raise for an unknown speed."""
    if speed is None:
        return None
    key = speed.strip().lower()
    if key not in SPEEDS:
        raise PricingError(f"unknown speed {speed!r}; expected one of: {', '.join(SPEEDS)}")
    return "fast" if key == "fast" else None
