"""The estimated maximum cost of a request, reserved against budgets before it is sent.

Input is counted offline with the model's tokenizer (``thrifty.tokens``);
output is the request's cap (``max_tokens``, ``max_completion_tokens`` or
``max_output_tokens``, times ``n`` for chat) or else the model's output limit,
or else the configured default. The price is the cost engine's at the tier
the request asks for.

In fail-closed mode the estimate must be an upper bound, so it changes:
input is the larger of the count and the body's size in bytes (a byte-level
BPE tokenizer, as OpenAI's and Anthropic's are, never makes more tokens than
a text has bytes), Anthropic input is priced as if all of it were written
to the 1-hour cache (its highest input rate), a Flex or ``auto`` request is
also priced at the default and priority tiers it may be served at, and a
request the bound cannot cover is marked unbounded: images, audio and files
are billed by what they contain rather than by their bytes, and server-side
tools (web search, code execution) bill per use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from thrifty.control.config import BudgetMode
from thrifty.errors import PricingError
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import count_chat_messages, count_text, message_text
from thrifty.usage import Usage

# Maximum output tokens per request, by model name prefix (longest prefix
# first), from the providers' model pages: OpenAI's model reference and
# Anthropic's models overview.
MODEL_OUTPUT_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-5", 128_000),
    ("gpt-4.1", 32_768),
    ("gpt-4o", 16_384),
    ("gpt-4-turbo", 4_096),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 4_096),
    ("o1", 100_000),
    ("o3", 100_000),
    ("o4-mini", 100_000),
    ("claude-opus-4-6", 128_000),
    ("claude-sonnet-4-6", 128_000),
    ("claude-opus-4-5", 64_000),
    ("claude-sonnet-4-5", 64_000),
    ("claude-haiku-4-5", 64_000),
    ("claude-sonnet-4", 64_000),
    ("claude-opus-4", 32_000),
    ("claude-3-7-sonnet", 64_000),
    ("claude-3-5-haiku", 8_192),
    ("claude-3-haiku", 4_096),
)

# Tokens allowed in fail-closed mode for the system prompt Anthropic adds
# when a request defines tools; that prompt is not in the request body.
# NOTE: an allowance chosen above the few hundred tokens Anthropic bills for
# it, not a figure Anthropic guarantees.
ANTHROPIC_TOOL_PROMPT_ALLOWANCE = 1_000

_UNBOUNDED_PARTS = frozenset(
    {"image_url", "image", "input_image", "input_audio", "audio", "file", "input_file", "document"}
)
_CLIENT_TOOL_TYPES = frozenset({"function", "custom"})


@dataclass(frozen=True, slots=True)
class Estimate:
    """A request's estimated maximum usage and cost.

    ``cost_usd`` is None when the model has no price (``unpriced_reason``
    says why). ``unbounded_reason`` is set, in fail-closed mode only, when
    no upper bound on the cost exists.
    """

    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    unpriced_reason: str | None = None
    unbounded_reason: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def output_limit(model: str) -> int | None:
    """Return a model's maximum output tokens per request, or None if unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    for prefix, limit in MODEL_OUTPUT_LIMITS:
        if name.startswith(prefix):
            return limit
    return None


def estimate_request(
    engine: CostEngine,
    *,
    endpoint: str,
    body: Mapping[str, Any],
    price_provider: str,
    kind: str,
    model: str,
    tier: str | None,
    mode: BudgetMode,
    default_output_tokens: int,
    at: datetime,
) -> Estimate:
    """Estimate the maximum cost of one request to a metered endpoint."""
    strict = mode == "fail_closed"
    counted = count_input(endpoint, body, model)
    input_tokens = counted
    unbounded = unbounded_part(body) if strict else None
    if strict:
        input_tokens = max(counted, len(orjson.dumps(body)))
        if kind == "anthropic" and body.get("tools"):
            input_tokens += ANTHROPIC_TOOL_PROMPT_ALLOWANCE

    output_tokens, output_known = requested_output(endpoint, body, model, default_output_tokens)
    if strict and not output_known:
        unbounded = unbounded or (
            f"model '{model}' has no known output limit and the request sets no max_tokens; "
            "set max_tokens"
        )

    usage = _usage(input_tokens, output_tokens, anthropic=strict and kind == "anthropic")
    tiers = _tiers(tier, strict)
    cost, reason = _max_price(engine, price_provider, model, usage, tiers=tiers, at=at)
    return Estimate(input_tokens, output_tokens, cost, reason, unbounded)


def count_input(endpoint: str, body: Mapping[str, Any], model: str) -> int:
    """Count a request's input tokens offline: messages, system, instructions and tools."""
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        total += count_chat_messages([m for m in messages if isinstance(m, Mapping)], model)
    for name in ("system", "instructions"):
        value = body.get(name)
        if value:
            total += count_text(message_text(value), model)
    if endpoint not in ("chat.completions", "messages"):
        total += _count_input_field(body.get("input"), model)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += count_text(orjson.dumps(tools).decode(), model)
    return total


def requested_output(
    endpoint: str, body: Mapping[str, Any], model: str, default: int
) -> tuple[int, bool]:
    """Return the output cap of a request and whether it is known rather than defaulted."""
    if endpoint == "embeddings":
        return 0, True
    names = {
        "chat.completions": ("max_completion_tokens", "max_tokens"),
        "responses": ("max_output_tokens",),
        "messages": ("max_tokens",),
    }.get(endpoint, ("max_tokens",))
    cap: int | None = None
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            cap = value
            break
    known = cap is not None
    if cap is None:
        limit = output_limit(model)
        known = limit is not None
        cap = limit if limit is not None else default
    choices = body.get("n") if endpoint == "chat.completions" else None
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        cap *= choices
    return cap, known


def unbounded_part(body: Mapping[str, Any]) -> str | None:
    """Return why a request's cost has no upper bound from its body, or None."""
    if body.get("web_search_options") is not None:
        return "web search is billed per search"
    for name in ("messages", "input", "system"):
        for part in _dicts(body.get(name)):
            kind = part.get("type")
            if isinstance(kind, str) and kind in _UNBOUNDED_PARTS:
                return f"a '{kind}' content part is billed by its contents, not its size"
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if isinstance(kind, str) and kind not in _CLIENT_TOOL_TYPES:
                return f"the server-side tool '{kind}' is billed per use"
    return None


def _count_input_field(value: Any, model: str) -> int:
    if isinstance(value, str):
        return count_text(value, model)
    if not isinstance(value, list):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count_text(item, model)
        elif isinstance(item, int):
            total += 1
        elif isinstance(item, list):
            total += len(item)
        elif isinstance(item, Mapping):
            total += count_text(message_text(item.get("content")), model)
    return total


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def _usage(input_tokens: int, output_tokens: int, *, anthropic: bool) -> Usage:
    if anthropic:
        return Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_write_tokens=input_tokens,
            cache_write_1h_tokens=input_tokens,
        )
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _tiers(tier: str | None, strict: bool) -> list[str | None]:
    requested = tier.strip().lower() if isinstance(tier, str) and tier.strip() else None
    if requested in (None, "auto", "default", "standard", "standard_only"):
        requested = None
    if not strict:
        return [requested]
    tiers: list[str | None] = [requested, None]
    if tier in ("auto", "priority"):
        tiers.append("priority")
    return tiers


def _max_price(
    engine: CostEngine,
    provider: str,
    model: str,
    usage: Usage,
    *,
    tiers: list[str | None],
    at: datetime,
) -> tuple[Decimal | None, str | None]:
    best: Decimal | None = None
    reason: str | None = None
    for tier in dict.fromkeys(tiers):
        try:
            cost = engine.price(provider, model, usage, service_tier=tier, at=at)
        except PricingError as exc:
            reason = str(exc)
            continue
        if cost.cost_usd is None:
            reason = reason or cost.unpriced_reason
            continue
        best = cost.cost_usd if best is None else max(best, cost.cost_usd)
    return best, None if best is not None else reason
