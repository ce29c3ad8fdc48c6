"""Checks on request parameters, with the error messages OpenAI's API returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.sandbox.errors import ApiError

# Service tiers OpenAI accepts in requests; "fast" is served as "priority".
OPENAI_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")


def require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(400, "you must provide a model parameter", param="model")
    if not isinstance(model, str):
        raise ApiError(
            400,
            f"Invalid type for 'model': expected a string, but got {_json_type(model)} instead.",
            param="model",
            code="invalid_type",
        )
    return model


def require_present(body: Mapping[str, Any], name: str) -> Any:
    if name not in body or body[name] is None:
        raise ApiError(
            400,
            f"Missing required parameter: '{name}'.",
            param=name,
            code="missing_required_parameter",
        )
    return body[name]


def optional_integer(
    body: Mapping[str, Any], name: str, minimum: int, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            400,
            f"Invalid type for '{name}': expected an integer, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < minimum:
        raise ApiError(
            400,
            f"Invalid '{name}': integer below minimum value. "
            f"Expected a value >= {minimum}, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise ApiError(
            400,
            f"Invalid '{name}': integer above maximum value. "
            f"Expected a value <= {maximum}, but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def optional_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(
            400,
            f"Invalid type for '{name}': expected a boolean, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def served_service_tier(body: Mapping[str, Any]) -> str:
    """Return the tier OpenAI reports serving: the requested one, "default" for auto or none."""
    requested = body.get("service_tier")
    if requested is None or requested == "auto":
        return "default"
    if requested not in OPENAI_SERVICE_TIERS:
        raise ApiError(
            400,
            f"Invalid value for 'service_tier': {requested!r}. Supported values are: "
            + ", ".join(f"'{tier}'" for tier in OPENAI_SERVICE_TIERS)
            + ".",
            param="service_tier",
            code="invalid_value",
        )
    return "priority" if requested == "fast" else str(requested)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
