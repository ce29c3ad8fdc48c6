"""The control plane's records: virtual keys, budgets, rate limits and cutoffs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from thrifty.control.scopes import Scope


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A virtual key: its owner metadata, what it may call, and its state.

    ``key_hash`` is the SHA-256 of the secret, which is never stored.
    ``prefix`` is the start of the secret, for people to tell keys apart.
    ``team`` ... ``tags`` are attribution defaults for the key's requests.
    Each ``allowed_*`` tuple is empty when anything is allowed; models and
    providers may be shell-style patterns (``gpt-4o*``).
    """

    key_id: str
    key_hash: str
    prefix: str
    created_at: datetime
    name: str | None = None
    team: str | None = None
    project: str | None = None
    user: str | None = None
    feature: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    allowed_models: tuple[str, ...] = ()
    allowed_providers: tuple[str, ...] = ()
    allowed_tiers: tuple[str, ...] = ()
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows_model(self, model: str) -> bool:
        return _matches(self.allowed_models, model)

    def allows_provider(self, provider: str) -> bool:
        return _matches(self.allowed_providers, provider)

    def allows_tier(self, tier: str) -> bool:
        return not self.allowed_tiers or tier in self.allowed_tiers

    def public(self) -> dict[str, Any]:
        """Return the key as JSON-ready data, without its hash."""
        return {
            "key_id": self.key_id,
            "prefix": self.prefix,
            "name": self.name,
            "team": self.team,
            "project": self.project,
            "user": self.user,
            "feature": self.feature,
            "tags": dict(self.tags),
            "allowed_models": list(self.allowed_models),
            "allowed_providers": list(self.allowed_providers),
            "allowed_tiers": list(self.allowed_tiers),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit in USD on one scope over one period.

    ``thresholds`` are the fractions of the limit that raise alerts; None
    uses the configured ones.
    """

    budget_id: str
    scope: Scope
    limit_usd: Decimal
    period: str
    created_at: datetime
    thresholds: tuple[Decimal, ...] | None = None

    def public(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget_id,
            "scope": str(self.scope),
            "limit_usd": format(self.limit_usd, "f"),
            "period": self.period,
            "thresholds": None
            if self.thresholds is None
            else [format(value, "f") for value in self.thresholds],
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and tokens per minute allowed to one scope; None where unlimited."""

    scope: Scope
    rpm: int | None
    tpm: int | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "scope": str(self.scope),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Cutoff:
    """An emergency stop of every request in a scope."""

    scope: Scope
    created_at: datetime
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "scope": str(self.scope),
            "reason": self.reason,
            "created_at": _iso(self.created_at),
        }


def _matches(patterns: tuple[str, ...], value: str) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
