"""A normalized ``Usage`` written back in each provider's own usage shape.

The native usage is first parsed by ``thrifty.usage`` (the one place that
implements each provider's counting rules) and then written in the client's
shape, so the client reads the same counts the ledger records. OpenAI's
``prompt_tokens`` include cached tokens; Anthropic's ``input_tokens``
exclude cache reads and writes, which have their own fields.
"""

from __future__ import annotations

from typing import Any

from thrifty.usage import Usage


def openai_chat_usage(usage: Usage) -> dict[str, Any]:
    """Return the ``usage`` object of a chat completion."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Return the ``usage`` object of an Anthropic message."""
    return {
        "input_tokens": usage.uncached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.output_tokens,
    }
