"""The `thrifty cost` command: price one usage or response and print the cost as JSON.

The output is a stable contract that scripts rely on: one JSON object with
``cost_usd`` and a per-class ``breakdown`` as decimal strings, the catalog
``model``, the ``service_tier`` priced, ``batch``, and the normalized
``usage`` counts. With ``--config``, the ``prices:`` section of thrifty.yaml
(custom prices and discounts) applies, and a provider configured with a
``pricing_provider`` is priced as that provider.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from thrifty.pricing import Cost, CostEngine
    from thrifty.usage import ServedInfo, Usage

# The endpoint whose usage shape a provider's responses have, where the body
# alone leaves it open; any other body is read by its shape. Claude on
# Bedrock (InvokeModel) and on Vertex AI returns Anthropic's shape, which the
# body's own fields identify.
_PROVIDER_ENDPOINTS = {
    "anthropic": "messages",
    "aws": "messages",
    "bedrock": "messages",
    "google": "gemini",
    "gemini": "gemini",
    "vertex_ai": "gemini",
}

# Usage fields that only Anthropic's Messages shape has.
_ANTHROPIC_ONLY_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation")


def register(app: typer.Typer) -> None:
    """Add the `cost` command to the app."""
    app.command("cost")(cost)


def cost(
    *,
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help="Provider id: openai, anthropic, google (or gemini), or any genai-prices id.",
        ),
    ],
    usage: Annotated[
        str | None,
        typer.Option(
            "--usage",
            help="Usage object in the provider's own shape: a JSON literal, @path, or - for stdin.",
        ),
    ] = None,
    response: Annotated[
        str | None,
        typer.Option(
            "--response",
            help="Whole response body: a JSON literal, @path, or - for stdin. "
            "Model and service tier come from it unless given.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model to price; required with --usage.")
    ] = None,
    service_tier: Annotated[
        str | None,
        typer.Option("--service-tier", help="Tier the provider served: default, flex, priority."),
    ] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Price at Batch API rates.")] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Request time, ISO-8601 (UTC unless it has an offset); default now."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="thrifty.yaml whose prices: section (custom prices, discounts) applies.",
        ),
    ] = None,
) -> None:
    """Price one request and print its cost as a JSON object."""
    from thrifty.errors import PricingError, UnknownModelError

    request_time = _parse_time(at)
    body, option = _read_body(usage, response)
    endpoint = _endpoint_for(provider, body)
    usage_counts, served = _usage_and_served(endpoint, body)
    model_name = model or served.model
    if not model_name:
        raise typer.BadParameter("give the model to price with --model", param_hint=f"'{option}'")

    engine, price_provider = _engine_for(config, provider)
    priced = engine.price(
        price_provider,
        model_name,
        usage_counts,
        service_tier=service_tier or served.service_tier,
        batch=batch,
        at=request_time,
        speed=served.speed,
    )
    if priced.cost_usd is None:
        if priced.model is None:
            raise UnknownModelError(price_provider, model_name)
        raise PricingError(priced.unpriced_reason or f"no price for model '{model_name}'")
    typer.echo(json.dumps(_cost_json(priced, usage_counts), indent=2))


def _engine_for(config_path: Path | None, provider: str) -> tuple[CostEngine, str]:
    """Build the engine from the config's prices, and return the provider id to price as."""
    from thrifty.config import load_config
    from thrifty.pricing import CostEngine

    # The command reports an unpriced model as its error, so the engine's
    # warning about it would only repeat that line.
    if config_path is None:
        return CostEngine(warn_unpriced=False), provider
    settings = load_config(config_path)
    engine = CostEngine.from_config(settings.sections.get("prices"), warn_unpriced=False)
    configured = settings.providers.get(provider)
    return engine, configured.price_provider if configured is not None else provider


def _read_body(usage: str | None, response: str | None) -> tuple[Mapping[str, Any], str]:
    """Return the JSON body to price and the option it came from."""
    if usage is None and response is not None:
        return _read_json(response, "--response"), "--response"
    if usage is None or response is not None:
        raise typer.BadParameter("give exactly one of --usage and --response")

    usage_object = _read_json(usage, "--usage")
    # A usage object alone is wrapped as the response that would carry it.
    if any(key.endswith("TokenCount") for key in usage_object):
        return {"usageMetadata": usage_object}, "--usage"
    return {"usage": usage_object}, "--usage"


def _read_json(argument: str, option: str) -> Mapping[str, Any]:
    hint = f"'{option}'"
    if argument == "-":
        text = sys.stdin.read()
    elif argument.startswith("@"):
        path = Path(argument[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {path}: {exc.strerror or exc}", param_hint=hint
            ) from exc
    else:
        text = argument
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", param_hint=hint
        ) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter("expected a JSON object", param_hint=hint)
    return value


def _endpoint_for(provider: str, body: Mapping[str, Any]) -> str:
    """Choose the endpoint whose usage shape ``body`` has."""
    if "usageMetadata" in body:
        return "gemini"
    if body.get("object") == "response" or isinstance(body.get("response"), Mapping):
        return "responses"
    usage = body.get("usage")
    if (
        isinstance(body.get("data"), list)
        and isinstance(usage, Mapping)
        and "input_tokens" in usage
    ):
        return "images"
    provider_endpoint = _PROVIDER_ENDPOINTS.get(provider.strip().lower())
    shape_endpoint = _endpoint_by_usage(usage, body) if isinstance(usage, Mapping) else None
    if shape_endpoint == "responses" and provider_endpoint == "messages":
        return "messages"
    return shape_endpoint or provider_endpoint or "chat.completions"


def _endpoint_by_usage(usage: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    if "prompt_tokens" in usage:
        return "chat.completions" if "completion_tokens" in usage else "embeddings"
    if "inputTokens" in usage:
        return "converse"
    if "input_tokens" not in usage:
        return None
    anthropic_shape = body.get("type") == "message" or any(
        key in usage for key in _ANTHROPIC_ONLY_KEYS
    )
    return "messages" if anthropic_shape else "responses"


def _usage_and_served(endpoint: str, body: Mapping[str, Any]) -> tuple[Usage, ServedInfo]:
    from thrifty.usage import served_from_response, usage_from_response

    return usage_from_response(endpoint, body), served_from_response(endpoint, body)


def _parse_time(at: str | None) -> datetime | None:
    if at is None:
        return None
    try:
        return datetime.fromisoformat(at)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{at!r} is not an ISO-8601 time such as 2026-10-01T12:00:00Z", param_hint="'--at'"
        ) from exc


def _cost_json(priced: Cost, usage: Usage) -> dict[str, Any]:
    from thrifty.pricing import TOKEN_CLASSES, format_usd

    breakdown = {
        token_class: format_usd(priced.breakdown.get(token_class, Decimal(0)))
        for token_class in TOKEN_CLASSES
    }
    counts = {item.name: getattr(usage, item.name) for item in fields(usage)}
    return {
        "provider": priced.provider,
        "model_requested": priced.model_requested,
        "model": priced.model,
        "service_tier": priced.service_tier,
        "batch": priced.batch,
        "cost_usd": format_usd(priced.cost_usd or Decimal(0)),
        "breakdown": breakdown,
        "usage": counts,
        "price_source": priced.price_source,
        "notes": list(priced.notes),
    }
