"""OpenAI usage objects (chat completions, Responses, embeddings) mapped into ``Usage``.

OpenAI counts are inclusive: ``prompt_tokens`` include the cached and the
cache-written tokens and the audio tokens of the prompt, and
``completion_tokens`` include the reasoning and audio tokens. That is already
Thrifty's shape, so the details map straight onto the subsets.

OpenAI reports cache writes (``cache_write_tokens``) for models that bill them.
Thrifty has a 5-minute and a 1-hour write class only, so all OpenAI writes go
into ``cache_write_tokens`` and are priced at the model's generic cache-write
rate, whatever their retention.

OpenAI-compatible providers bend this shape in two known ways, both read here.
DeepSeek reports cache hits as ``prompt_cache_hit_tokens`` (with
``prompt_cache_miss_tokens``, the two summing to ``prompt_tokens``), and only
some of its responses also carry ``prompt_tokens_details.cached_tokens``. xAI
counts reasoning tokens outside ``completion_tokens`` on chat completions: its
``total_tokens`` is then prompt + completion + reasoning, and the parser uses
that sum to detect which convention a response follows. Fields other providers add, such
as ``prompt_tokens_details.text_tokens`` (which include the cached tokens),
are not counted again.
"""

from __future__ import annotations

from collections.abc import Mapping

from thrifty.usage.counts import (
    JsonObject,
    check_at_most,
    has_count,
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
    cache_read = _chat_cache_read(usage, prompt_details, prompt_path)
    cache_write = read_count(
        prompt_details, "cache_write_tokens", f"{prompt_path}.cache_write_tokens"
    )
    input_audio = read_count(prompt_details, "audio_tokens", f"{prompt_path}.audio_tokens")
    input_image = read_count(prompt_details, "image_tokens", f"{prompt_path}.image_tokens")

    completion_path = "usage.completion_tokens_details"
    completion_details = optional_object(usage, "completion_tokens_details", completion_path)
    reasoning = read_count(
        completion_details, "reasoning_tokens", f"{completion_path}.reasoning_tokens"
    )
    output_audio = read_count(completion_details, "audio_tokens", f"{completion_path}.audio_tokens")
    output_image = read_count(completion_details, "image_tokens", f"{completion_path}.image_tokens")
    if _reasoning_outside_completion(usage, input_tokens, output_tokens, reasoning):
        output_tokens += reasoning

    check_at_most(f"{prompt_path}.cached_tokens", cache_read, "usage.prompt_tokens", input_tokens)
    check_at_most(
        f"{prompt_path}.cache_write_tokens",
        cache_read + cache_write,
        "usage.prompt_tokens (with cached_tokens)",
        input_tokens,
    )
    check_at_most(f"{prompt_path}.audio_tokens", input_audio, "usage.prompt_tokens", input_tokens)
    check_at_most(f"{prompt_path}.image_tokens", input_image, "usage.prompt_tokens", input_tokens)
    check_at_most(
        f"{completion_path}.reasoning_tokens", reasoning, "usage.completion_tokens", output_tokens
    )
    check_at_most(
        f"{completion_path}.audio_tokens", output_audio, "usage.completion_tokens", output_tokens
    )
    check_at_most(
        f"{completion_path}.image_tokens", output_image, "usage.completion_tokens", output_tokens
    )
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        input_audio_tokens=input_audio,
        output_audio_tokens=output_audio,
        input_image_tokens=input_image,
        output_image_tokens=output_image,
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


def usage_from_openai_images(body: JsonObject) -> Usage:
    """Map an Images API response (generations, edits) into ``Usage``.

    ``input_tokens_details`` splits the prompt into text and image tokens.
    The output is the generated images: all of ``output_tokens`` unless
    ``output_tokens_details`` splits it into text and image tokens.
    """
    usage = require_object(body, "usage", "usage")
    input_tokens = read_count(usage, "input_tokens", "usage.input_tokens", required=True)
    output_tokens = read_count(usage, "output_tokens", "usage.output_tokens", required=True)

    input_path = "usage.input_tokens_details"
    input_details = optional_object(usage, "input_tokens_details", input_path)
    input_image = read_count(input_details, "image_tokens", f"{input_path}.image_tokens")

    output_path = "usage.output_tokens_details"
    output_details = optional_object(usage, "output_tokens_details", output_path)
    output_image = output_tokens
    if has_count(output_details, "image_tokens"):
        output_image = read_count(output_details, "image_tokens", f"{output_path}.image_tokens")

    check_at_most(f"{input_path}.image_tokens", input_image, "usage.input_tokens", input_tokens)
    check_at_most(f"{output_path}.image_tokens", output_image, "usage.output_tokens", output_tokens)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_image_tokens=input_image,
        output_image_tokens=output_image,
    )


def usage_from_openai_embeddings(body: JsonObject) -> Usage:
    """Map an embeddings response into ``Usage``; embeddings have no output tokens."""
    usage = require_object(body, "usage", "usage")
    input_tokens = read_count(usage, "prompt_tokens", "usage.prompt_tokens", required=True)
    return Usage(input_tokens=input_tokens)


def _chat_cache_read(usage: JsonObject, details: JsonObject | None, details_path: str) -> int:
    """Return the cached prompt tokens: ``cached_tokens``, else DeepSeek's cache hits."""
    if has_count(details, "cached_tokens"):
        return read_count(details, "cached_tokens", f"{details_path}.cached_tokens")
    return read_count(usage, "prompt_cache_hit_tokens", "usage.prompt_cache_hit_tokens")


def _reasoning_outside_completion(
    usage: JsonObject, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int
) -> bool:
    """Return whether ``total_tokens`` shows the reasoning counted apart from the completion."""
    if reasoning_tokens == 0 or not has_count(usage, "total_tokens"):
        return False
    total = read_count(usage, "total_tokens", "usage.total_tokens")
    return total == prompt_tokens + completion_tokens + reasoning_tokens


def _unwrap_response(body: JsonObject) -> JsonObject:
    if isinstance(body, Mapping) and "usage" not in body:
        wrapped = body.get("response")
        if isinstance(wrapped, Mapping):
            return wrapped
    return body
