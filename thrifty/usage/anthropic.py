"""Anthropic Messages API usage mapped into ``Usage``.

Anthropic's ``input_tokens`` exclude the tokens read from and written to the
prompt cache, so Thrifty's ``input_tokens`` is the sum of the three fields.
Cache writes are split by lifetime in ``cache_creation``; a response that
reports only ``cache_creation_input_tokens`` wrote 5-minute entries, the
default lifetime. ``output_tokens`` include thinking tokens, which newer
responses break out in ``output_tokens_details.thinking_tokens``.
"""

from __future__ import annotations

from thrifty.errors import UsageError
from thrifty.usage.counts import (
    JsonObject,
    check_at_most,
    has_count,
    optional_object,
    read_count,
    require_object,
)
from thrifty.usage.model import Usage


def usage_from_anthropic(body: JsonObject) -> Usage:
    """Map a Messages API response (or a merged stream usage) into ``Usage``."""
    usage = require_object(body, "usage", "usage")
    uncached_input = read_count(usage, "input_tokens", "usage.input_tokens", required=True)
    output_tokens = read_count(usage, "output_tokens", "usage.output_tokens", required=True)
    cache_read = read_count(usage, "cache_read_input_tokens", "usage.cache_read_input_tokens")
    cache_write, cache_write_1h = _cache_writes(usage)

    details_path = "usage.output_tokens_details"
    details = optional_object(usage, "output_tokens_details", details_path)
    reasoning = read_count(details, "thinking_tokens", f"{details_path}.thinking_tokens")
    check_at_most(
        f"{details_path}.thinking_tokens", reasoning, "usage.output_tokens", output_tokens
    )

    tools = optional_object(usage, "server_tool_use", "usage.server_tool_use")
    web_searches = read_count(
        tools, "web_search_requests", "usage.server_tool_use.web_search_requests"
    )
    return Usage(
        input_tokens=uncached_input + cache_read + cache_write,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
        reasoning_tokens=reasoning,
        web_search_requests=web_searches,
    )


def _cache_writes(usage: JsonObject) -> tuple[int, int]:
    """Return all cache writes and the 1-hour part of them."""
    total_path = "usage.cache_creation_input_tokens"
    total = read_count(usage, "cache_creation_input_tokens", total_path)
    split_path = "usage.cache_creation"
    split = optional_object(usage, "cache_creation", split_path)
    if split is None:
        return total, 0

    writes_5m = read_count(
        split, "ephemeral_5m_input_tokens", f"{split_path}.ephemeral_5m_input_tokens"
    )
    writes_1h = read_count(
        split, "ephemeral_1h_input_tokens", f"{split_path}.ephemeral_1h_input_tokens"
    )
    if not has_count(usage, "cache_creation_input_tokens"):
        return writes_5m + writes_1h, writes_1h
    if writes_5m + writes_1h != total:
        raise UsageError(
            split_path,
            f"ephemeral_5m_input_tokens {writes_5m} + ephemeral_1h_input_tokens {writes_1h} "
            f"differ from cache_creation_input_tokens {total}, which is their sum",
        )
    return total, writes_1h
