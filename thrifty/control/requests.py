"""Reading admin API request bodies into keys, budgets, rate limits and cutoffs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from thrifty.control.periods import check_period
from thrifty.control.scopes import Scope, parse_scope
from thrifty.errors import ControlError

KEY_FIELDS = frozenset(
    {
        "name",
        "team",
        "project",
        "user",
        "feature",
        "tags",
        "allowed_models",
        "allowed_providers",
        "allowed_tiers",
        "expires_at",
        "rpm",
        "tpm",
    }
)
TIERS = ("default", "flex", "priority", "batch")


def check_fields(body: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ControlError(
            f"unknown field '{unknown[0]}' in {where}; "
            f"valid fields are {', '.join(sorted(allowed))}"
        )


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise ControlError(
            f"'{name}' is {value!r}; give a non-empty string of at most 256 characters"
        )
    return value.strip()


def text_list(body: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ControlError(f"'{name}' is {value!r}; give a list of names, e.g. [\"gpt-4o-mini\"]")
    return tuple(value)


def tiers(body: Mapping[str, Any]) -> tuple[str, ...]:
    values = text_list(body, "allowed_tiers")
    for value in values:
        if value not in TIERS:
            raise ControlError(f"allowed tier {value!r} is unknown; use {', '.join(TIERS)}")
    return values


def tags(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("tags")
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ControlError(f"'tags' is {value!r}; give an object of string values")
    return dict(value)


def timestamp(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ControlError(
            f"'{name}' is {value!r}; give an ISO 8601 time such as 2026-01-31T00:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ControlError(
            f"'{name}' is {value!r}; give an ISO 8601 time such as 2026-01-31T00:00:00Z"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def limit(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ControlError(f"'{name}' is {value!r}; give a whole number above zero")
    return value


def money(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ControlError(f"'{name}' is {value!r}; give an amount in USD such as \"100.00\"")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ControlError(
            f"'{name}' is {value!r}; give an amount in USD such as \"100.00\""
        ) from exc
    if not amount.is_finite() or amount <= 0:
        raise ControlError(f"'{name}' is {value!r}; it must be above zero")
    return amount


def thresholds(value: object) -> tuple[Decimal, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ControlError(
            f"'thresholds' is {value!r}; give a list of fractions such as [0.5, 0.9]"
        )
    fractions = []
    for item in value:
        fraction = money(item, "thresholds")
        if fraction > 10:
            raise ControlError(f"threshold {item!r} is above 10; give fractions of the limit")
        fractions.append(fraction)
    return tuple(sorted(set(fractions)))


def scope(body: Mapping[str, Any]) -> Scope:
    value = body.get("scope")
    if not isinstance(value, str):
        raise ControlError(f"'scope' is {value!r}; give all or KIND:VALUE such as team:search")
    return parse_scope(value)


def period(body: Mapping[str, Any]) -> str:
    value = body.get("period", "monthly")
    if not isinstance(value, str):
        raise ControlError(
            f"'period' is {value!r}; give daily, weekly, monthly, quarterly, lifetime "
            "or rolling:24h"
        )
    return check_period(value)
