"""OpenAI usage objects (chat completions, Responses, embeddings) mapped into ``Usage``.

OpenAI counts are inclusive: ``prompt_tokens`` include the cached and the
cache-written tokens and the audio tokens of the prompt, and
``completion_tokens`` include the reasoning and audio tokens. That is already
Thrifty's shape, so the details map straight onto the subsets.

OpenAI reports cache writes (``cache_write_tokens``) for models that bill them.
Thrifty has a 5-minute and a 1-hour write class only, so all OpenAI writes go
into ``cache_write_tokens`` and are priced at the model's generic cache-write
rate, whatever their retention.
"""

from __future__ import annotations

from collections.abc import Mapping

from thrifty.usage.counts import (
    JsonObject,
    check_at_most,
    optional_object,
    read_count,
    require_object,
)
from thrifty.usage.model import Usage


def usage_from_openai_chat(body: JsonObject) -> Usage:
    """Map a chat completion (or its final stream chunk) into ``Usage``."""
    usage = require_object(body, "usage", "usage")
    input_tokens = read_count(usage, "prompt_tokens", "usage.prompt_tokens", required=True)
    output_tokens = read_count(usage, "completion_tokens", "usage.completion_tokens", required=True)

    prompt_path = "usage.prompt_tokens_details"
    prompt_details = optional_object(usage, "prompt_tokens_details", prompt_path)
    cache_read = read_count(prompt_details, "cached_tokens", f"{prompt_path}.cached_tokens")
    cache_write = read_count(
        prompt_details, "cache_write_tokens", f"{prompt_path}.cache_write_tokens"
    )
    input_audio = read_count(prompt_details, "audio_tokens", f"{prompt_path}.audio_tokens")

    completion_path = "usage.completion_tokens_details"
    completion_details = optional_object(usage, "completion_tokens_details", completion_path)
    reasoning = read_count(
        completion_details, "reasoning_tokens", f"{completion_path}.reasoning_tokens"
    )
    output_audio = read_count(completion_details, "audio_tokens", f"{completion_path}.audio_tokens")

    check_at_most(f"{prompt_path}.cached_tokens", cache_read, "usage.prompt_tokens", input_tokens)
    check_at_most(
        f"{prompt_path}.cache_write_tokens",
        cache_read + cache_write,
        "usage.prompt_tokens (with cached_tokens)",
        input_tokens,
    )
    check_at_most(f"{prompt_path}.audio_tokens", input_audio, "usage.prompt_tokens", input_tokens)
    check_at_most(
        f"{completion_path}.reasoning_tokens", reasoning, "usage.completion_tokens", output_tokens
    )
    check_at_most(
        f"{completion_path}.audio_tokens", output_audio, "usage.completion_tokens", output_tokens
    )
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        input_audio_tokens=input_audio,
        output_audio_tokens=output_audio,
    )


def usage_from_openai_responses(body: JsonObject) -> Usage:
    """Map a Responses API response object into ``Usage``.

    Also accepts a stream event that wraps the response, such as
    ``{"type": "response.completed", "response": {...}}``.
    """
    response = _unwrap_response(body)
    usage = require_object(response, "usage", "usage")
    input_tokens = read_count(usage, "input_tokens", "usage.input_tokens", required=True)
    output_tokens = read_count(usage, "output_tokens", "usage.output_tokens", required=True)

    input_path = "usage.input_tokens_details"
    input_details = optional_object(usage, "input_tokens_details", input_path)
    cache_read = read_count(input_details, "cached_tokens", f"{input_path}.cached_tokens")
    cache_write = read_count(
        input_details, "cache_write_tokens", f"{input_path}.cache_write_tokens"
    )

    output_path = "usage.output_tokens_details"
    output_details = optional_object(usage, "output_tokens_details", output_path)
    reasoning = read_count(output_details, "reasoning_tokens", f"{output_path}.reasoning_tokens")

    check_at_most(f"{input_path}.cached_tokens", cache_read, "usage.input_tokens", input_tokens)
    check_at_most(
        f"{input_path}.cache_write_tokens",
        cache_read + cache_write,
        "usage.input_tokens (with cached_tokens)",
        input_tokens,
    )
    check_at_most(
        f"{output_path}.reasoning_tokens", reasoning, "usage.output_tokens", output_tokens
    )
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def usage_from_openai_embeddings(body: JsonObject) -> Usage:
    """Map an embeddings response into ``Usage``; embeddings have no output tokens."""
    usage = require_object(body, "usage", "usage")
    input_tokens = read_count(usage, "prompt_tokens", "usage.prompt_tokens", required=True)
    return Usage(input_tokens=input_tokens)


def _unwrap_response(body: JsonObject) -> JsonObject:
    if isinstance(body, Mapping) and "usage" not in body:
        wrapped = body.get("response")
        if isinstance(wrapped, Mapping):
            return wrapped
    return body
