"""Amazon Bedrock Converse API usage (``TokenUsage``) mapped into ``Usage``.

Like Anthropic's, Bedrock's ``inputTokens`` exclude the tokens read from and
written to the prompt cache (``cacheReadInputTokens`` and
``cacheWriteInputTokens``), so Thrifty's ``input_tokens`` is the sum of the
three. ``cacheDetails`` splits the writes by lifetime (``ttl`` of ``5m`` or
``1h``). A response without it wrote 5-minute entries, the default lifetime.
``outputTokens`` include any reasoning tokens, which Converse does not break
out. Claude on Bedrock through InvokeModel returns Anthropic's own shape,
which ``thrifty.usage.anthropic`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping

from thrifty.errors import UsageError
from thrifty.usage.counts import JsonObject, has_count, read_count, require_object
from thrifty.usage.model import Usage


def usage_from_bedrock_converse(body: JsonObject) -> Usage:
    """Map a Converse response (or a ConverseStream ``metadata`` event) into ``Usage``."""
    usage = require_object(body, "usage", "usage")
    uncached_input = read_count(usage, "inputTokens", "usage.inputTokens", required=True)
    output_tokens = read_count(usage, "outputTokens", "usage.outputTokens", required=True)
    cache_read = read_count(usage, "cacheReadInputTokens", "usage.cacheReadInputTokens")
    cache_write, cache_write_1h = _cache_writes(usage)
    return Usage(
        input_tokens=uncached_input + cache_read + cache_write,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
    )


def _cache_writes(usage: JsonObject) -> tuple[int, int]:
    """Return all cache writes and the 1-hour part of them."""
    total = read_count(usage, "cacheWriteInputTokens", "usage.cacheWriteInputTokens")
    details = usage.get("cacheDetails")
    if details is None:
        return total, 0
    if not isinstance(details, list):
        raise UsageError("usage.cacheDetails", f"expected an array, got {details!r}")

    by_ttl = {"5m": 0, "1h": 0}
    for index, detail in enumerate(details):
        path = f"usage.cacheDetails[{index}]"
        if not isinstance(detail, Mapping):
            raise UsageError(path, f"expected an object, got {detail!r}")
        ttl = detail.get("ttl")
        if ttl not in by_ttl:
            raise UsageError(f"{path}.ttl", f"{ttl!r} is not a cache lifetime; expected 5m or 1h")
        by_ttl[ttl] += read_count(detail, "inputTokens", f"{path}.inputTokens", required=True)

    split_total = by_ttl["5m"] + by_ttl["1h"]
    if not has_count(usage, "cacheWriteInputTokens"):
        return split_total, by_ttl["1h"]
    if split_total != total:
        raise UsageError(
            "usage.cacheDetails",
            f"the inputTokens of its entries sum to {split_total}, not to "
            f"cacheWriteInputTokens {total}, which is their total",
        )
    return total, by_ttl["1h"]
