"""Usage and served model of a whole response body, chosen by the endpoint that returned it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from thrifty.errors import ThriftyError
from thrifty.usage.anthropic import usage_from_anthropic
from thrifty.usage.bedrock import usage_from_bedrock_converse
from thrifty.usage.counts import JsonObject
from thrifty.usage.gemini import usage_from_gemini
from thrifty.usage.model import Usage
from thrifty.usage.openai import (
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_images,
    usage_from_openai_responses,
)

_PARSERS: dict[str, Callable[[JsonObject], Usage]] = {
    "chat.completions": usage_from_openai_chat,
    "responses": usage_from_openai_responses,
    "embeddings": usage_from_openai_embeddings,
    "messages": usage_from_anthropic,
    "gemini": usage_from_gemini,
    "converse": usage_from_bedrock_converse,
    "images": usage_from_openai_images,
}

# Endpoint names: OpenAI chat completions, Responses and embeddings, Anthropic
# messages, Gemini generateContent, the Amazon Bedrock Converse API and the
# OpenAI Images API.
ENDPOINTS: tuple[str, ...] = tuple(_PARSERS)


@dataclass(frozen=True, slots=True)
class ServedInfo:
    """The model, service tier and speed mode a response reports serving.

    ``service_tier`` is the provider's own word (OpenAI ``"default"``,
    ``"flex"``, ``"priority"``; Anthropic ``"standard"``, ``"priority"``,
    ``"batch"``). ``speed`` is Anthropic's ``"standard"`` or ``"fast"``.
    """

    model: str | None = None
    service_tier: str | None = None
    speed: str | None = None


def usage_from_response(endpoint: str, body: JsonObject) -> Usage:
    """Map the JSON body returned by ``endpoint`` into ``Usage``."""
    return _parser_for(endpoint)(body)


def served_from_response(endpoint: str, body: JsonObject) -> ServedInfo:
    """Read the served model, service tier and speed from a response body."""
    _parser_for(endpoint)
    if not isinstance(body, Mapping):
        return ServedInfo()
    if endpoint == "gemini":
        return ServedInfo(model=_text(body.get("modelVersion")))
    if endpoint == "converse":
        # Converse responses do not name the model: it is in the request's URL.
        return ServedInfo(service_tier=_converse_tier(body))
    if endpoint == "messages":
        usage = body.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        return ServedInfo(
            model=_text(body.get("model")),
            service_tier=_text(usage.get("service_tier")),
            speed=_text(usage.get("speed")),
        )
    if endpoint == "responses" and "usage" not in body:
        wrapped = body.get("response")
        body = wrapped if isinstance(wrapped, Mapping) else body
    return ServedInfo(model=_text(body.get("model")), service_tier=_text(body.get("service_tier")))


def _parser_for(endpoint: str) -> Callable[[JsonObject], Usage]:
    parser = _PARSERS.get(endpoint)
    if parser is None:
        raise ThriftyError(
            f"unknown endpoint {endpoint!r}; expected one of: {', '.join(ENDPOINTS)}"
        )
    return parser


def _converse_tier(body: JsonObject) -> str | None:
    tier = body.get("serviceTier")
    return _text(tier.get("type")) if isinstance(tier, Mapping) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
