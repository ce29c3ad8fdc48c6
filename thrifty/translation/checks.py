"""Readers that reject a request part the target provider cannot receive.

Every rejection is a ``RequestError`` (HTTP 400) that names the parameter,
the reason it cannot be sent to the target API, and what the client can do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.errors import RequestError


def untranslatable(param: str, target: str, fix: str) -> RequestError:
    """Build the error for a parameter that has no equivalent in the ``target`` API."""
    return RequestError(
        400,
        f"'{param}' cannot be translated to the {target} API, which has no equivalent; {fix}",
        param=param,
    )


def invalid(param: str, problem: str, fix: str) -> RequestError:
    """Build the error for a request part that is malformed."""
    return RequestError(400, f"'{param}' {problem}; {fix}", param=param)


def reject_unknown(body: Mapping[str, Any], known: frozenset[str], target: str) -> None:
    """Raise for the first top-level parameter outside ``known``."""
    for key in body:
        if key not in known:
            raise untranslatable(
                key, target, "remove it, or call a model of the same provider as this endpoint"
            )


def as_list(value: object, param: str) -> list[Any]:
    """Return ``value`` as a JSON array; raise when it is something else."""
    if not isinstance(value, list):
        raise invalid(param, f"is {_kind(value)}, not an array", "send an array")
    return value


def as_object(value: object, param: str) -> Mapping[str, Any]:
    """Return ``value`` as a JSON object; raise when it is something else."""
    if not isinstance(value, Mapping):
        raise invalid(param, f"is {_kind(value)}, not an object", "send an object")
    return value


def as_text(value: object, param: str) -> str:
    """Return ``value`` as a string; raise when it is something else."""
    if not isinstance(value, str):
        raise invalid(param, f"is {_kind(value)}, not a string", "send a string")
    return value


def parse_arguments(arguments: object, param: str) -> dict[str, Any]:
    """Parse a tool call's JSON ``arguments`` string into the object Anthropic expects."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    text = as_text(arguments, param)
    if not text.strip():
        return {}
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise invalid(
            param, f"is not valid JSON ({exc})", "send the arguments as a JSON object"
        ) from exc
    if not isinstance(parsed, dict):
        raise invalid(param, f"is a JSON {_kind(parsed)}", "send the arguments as a JSON object")
    return parsed


def is_unset(value: object, neutral: object) -> bool:
    """Return whether a parameter is absent or has the value that changes nothing."""
    return value is None or value == neutral


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"
