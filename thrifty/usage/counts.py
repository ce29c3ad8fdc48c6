"""Strict readers for the token counts in a provider's JSON usage object.

Each reader names the provider's own field (``usage.prompt_tokens``) in the
``UsageError`` it raises, so a bad response points at the value to look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.errors import UsageError

JsonObject = Mapping[str, Any]


def require_object(parent: object, key: str, path: str) -> JsonObject:
    """Return ``parent[key]`` as a JSON object; raise when it is missing or null."""
    if not isinstance(parent, Mapping):
        raise UsageError(path, f"the response body is {_kind(parent)}, not a JSON object")
    value = parent.get(key)
    if value is None:
        raise UsageError(path, "missing from the response; the provider reported no usage")
    if not isinstance(value, Mapping):
        raise UsageError(path, f"expected a JSON object, got {_kind(value)}")
    return value


def optional_object(parent: JsonObject | None, key: str, path: str) -> JsonObject | None:
    """Return ``parent[key]`` as a JSON object, or None when it is missing or null."""
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise UsageError(path, f"expected a JSON object, got {_kind(value)}")
    return value


def read_count(parent: JsonObject | None, key: str, path: str, *, required: bool = False) -> int:
    """Return the token count ``parent[key]``; a missing optional count is 0.

    A count must be a JSON integer of at least 0: floats (even ``3.0``),
    strings and booleans are rejected.
    """
    value = None if parent is None else parent.get(key)
    if value is None:
        if required:
            raise UsageError(path, "missing from the response; the provider must report it")
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(path, f"{value!r} is not an integer token count")
    if value < 0:
        raise UsageError(path, f"{value} is negative; token counts start at 0")
    return value


def has_count(parent: JsonObject | None, key: str) -> bool:
    """Return whether ``parent`` reports ``key`` with a non-null value."""
    return parent is not None and parent.get(key) is not None


def check_at_most(part_path: str, part: int, whole_path: str, whole: int) -> None:
    """Raise unless the count at ``part_path`` fits inside the one at ``whole_path``."""
    if part > whole:
        raise UsageError(part_path, f"{part} is above {whole_path} {whole}, which must include it")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"
