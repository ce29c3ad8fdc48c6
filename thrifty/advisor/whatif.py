"""What-if: re-price the same traffic under a different policy.

A policy file lists changes, each for one feature (or ``"*"`` for all)::

    changes:
      - feature: nightly-report
        batch: true                 # Batch API rates
      - feature: support-bot
        flex: {fallback_share: 0.2} # Flex rates; a share falls back to standard
      - feature: search-summaries
        model: gpt-4.1-nano         # serve the same tokens on another model
      - feature: chat
        max_input_tokens: 8000      # trim history to this many input tokens
      - feature: "*"
        cache: {ttl_s: 3600}        # exact response cache (temperature 0 only)

The first change that names a feature applies to it, then any ``"*"`` change
fills in what that one leaves unset.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from thrifty.advisor.traffic import Traffic, usage_of
from thrifty.errors import ConfigError
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

_CHANGE_KEYS = {"feature", "batch", "flex", "model", "max_input_tokens", "cache"}


@dataclass(frozen=True, slots=True)
class Change:
    """One feature's changes; None leaves that part as it was."""

    feature: str
    batch: bool | None = None
    flex_fallback_share: Decimal | None = None
    model: str | None = None
    max_input_tokens: int | None = None
    cache_ttl: timedelta | None = None

    def merged(self, fallback: Change) -> Change:
        return Change(
            feature=self.feature,
            batch=self.batch if self.batch is not None else fallback.batch,
            flex_fallback_share=_first(self.flex_fallback_share, fallback.flex_fallback_share),
            model=self.model or fallback.model,
            max_input_tokens=self.max_input_tokens or fallback.max_input_tokens,
            cache_ttl=self.cache_ttl or fallback.cache_ttl,
        )


@dataclass(slots=True)
class FeatureOutcome:
    """Before and after totals of one feature."""

    requests: int = 0
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)
    unpriced_after: int = 0


@dataclass(frozen=True, slots=True)
class WhatIf:
    features: dict[str, FeatureOutcome]
    assumptions: list[str] = field(default_factory=list)

    @property
    def before(self) -> Decimal:
        return sum((outcome.before for outcome in self.features.values()), Decimal(0))

    @property
    def after(self) -> Decimal:
        return sum((outcome.after for outcome in self.features.values()), Decimal(0))


def load_policy(path: Path) -> list[Change]:
    """Read and validate a policy file; errors name the change and the key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("changes"), list):
        raise ConfigError(f"policy file {path} needs a `changes:` list")
    return [_change(item, f"changes[{index}]") for index, item in enumerate(raw["changes"])]


def run_whatif(traffic: Traffic, engine: CostEngine, changes: list[Change]) -> WhatIf:
    """Price every request as it was and as the policy would have served it."""
    outcomes: dict[str, FeatureOutcome] = defaultdict(FeatureOutcome)
    seen: dict[tuple[str, str], datetime] = {}
    for record in traffic.records:
        feature = record.feature or "(none)"
        outcome = outcomes[feature]
        outcome.requests += 1
        outcome.before += record.cost_usd or Decimal(0)
        change = _change_for(record.feature or "", changes)
        after = _price_after(record, change, engine, seen)
        if after is None:
            outcome.unpriced_after += 1
        else:
            outcome.after += after
    return WhatIf(dict(outcomes), _assumptions(changes))


def _price_after(
    record: RequestRecord,
    change: Change | None,
    engine: CostEngine,
    seen: dict[tuple[str, str], datetime],
) -> Decimal | None:
    if change is None:
        return record.cost_usd
    if change.cache_ttl is not None and _is_repeat(record, change.cache_ttl, seen):
        return Decimal(0)
    model = change.model or record.model_served or record.model_requested
    usage = _trimmed(usage_of(record), change.max_input_tokens)
    if change.batch:
        return engine.price(
            record.provider, model, usage, batch=True, at=record.started_at
        ).cost_usd
    tier = "flex" if change.flex_fallback_share is not None else record.service_tier_served
    priced = engine.price(record.provider, model, usage, service_tier=tier, at=record.started_at)
    if priced.cost_usd is None or change.flex_fallback_share is None:
        return priced.cost_usd
    standard = engine.price(record.provider, model, usage, at=record.started_at).cost_usd
    if standard is None:
        return None
    share = change.flex_fallback_share
    return standard * share + priced.cost_usd * (1 - share)


def _is_repeat(
    record: RequestRecord, ttl: timedelta, seen: dict[tuple[str, str], datetime]
) -> bool:
    facts = record.details.get("request") or {}
    fingerprint = facts.get("fingerprint")
    if not fingerprint or facts.get("temperature") not in (0, 0.0):
        return False
    key = (record.feature or "", str(fingerprint))
    earlier = seen.get(key)
    seen[key] = record.started_at
    return earlier is not None and record.started_at - earlier <= ttl


def _trimmed(usage: Usage, limit: int | None) -> Usage:
    """Cut input to ``limit`` tokens, dropping uncached tokens first."""
    if limit is None or usage.input_tokens <= limit:
        return usage
    cache_read = min(usage.cache_read_tokens, limit)
    cache_write = min(usage.cache_write_tokens, limit - cache_read)
    return replace(
        usage,
        input_tokens=limit,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(usage.cache_write_1h_tokens, cache_write),
        input_audio_tokens=min(usage.input_audio_tokens, limit),
    )


def _change_for(feature: str, changes: list[Change]) -> Change | None:
    named = next((change for change in changes if change.feature == feature), None)
    anyone = next((change for change in changes if change.feature == "*"), None)
    if named is None:
        return anyone
    return named.merged(anyone) if anyone is not None else named


def _change(item: Any, where: str) -> Change:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with a `feature:` key")
    unknown = sorted(set(item) - _CHANGE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys are {', '.join(sorted(_CHANGE_KEYS))}"
        )
    feature = item.get("feature")
    if not isinstance(feature, str) or not feature:
        raise ConfigError(f"{where}.feature is {feature!r}; name a feature or '*'")
    return Change(
        feature=feature,
        batch=_optional_bool(item.get("batch"), f"{where}.batch"),
        flex_fallback_share=_flex(item.get("flex"), f"{where}.flex"),
        model=_optional_text(item.get("model"), f"{where}.model"),
        max_input_tokens=_optional_count(item.get("max_input_tokens"), f"{where}.max_input_tokens"),
        cache_ttl=_cache(item.get("cache"), f"{where}.cache"),
    )


def _flex(value: Any, where: str) -> Decimal | None:
    if value is None or value is False:
        return None
    if value is True:
        return Decimal(0)
    share = value.get("fallback_share", 0) if isinstance(value, dict) else None
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{where} is {value!r}; use true or {{fallback_share: 0.2}}")
    return Decimal(str(share))


def _cache(value: Any, where: str) -> timedelta | None:
    if value is None:
        return None
    seconds = value.get("ttl_s") if isinstance(value, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ConfigError(f"{where} is {value!r}; use {{ttl_s: SECONDS}} with SECONDS above 0")
    return timedelta(seconds=seconds)


def _optional_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{where} is {value!r}; use true or false")


def _optional_text(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigError(f"{where} is {value!r}; name a model")


def _optional_count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} is {value!r}; use a whole number of tokens above 0")
    return value


def _first(*values: Decimal | None) -> Decimal | None:
    return next((value for value in values if value is not None), None)


def _assumptions(changes: list[Change]) -> list[str]:
    notes = ["token counts are those recorded; a new model may tokenize differently"]
    if any(change.max_input_tokens for change in changes):
        notes.append("trimming drops uncached input first and leaves output unchanged")
    if any(change.cache_ttl for change in changes):
        notes.append("the response cache answers exact repeats at temperature 0 only")
    return notes
