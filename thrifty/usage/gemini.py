"""Gemini ``usageMetadata`` (Gemini API and Vertex AI) mapped into ``Usage``.

``promptTokenCount`` includes ``cachedContentTokenCount``. The model's
thoughts are counted outside the response text: ``thoughtsTokenCount`` is not part of
``candidatesTokenCount``, so Thrifty's output is their sum. Tokens of tool-use
prompts (``toolUsePromptTokenCount``, such as search results fed back to the
model) are billed as input and are not part of ``promptTokenCount`` either.
Gemini omits counts that are 0, so every count is optional.

The per-modality details give the audio and image counts. ``DOCUMENT``
tokens (PDF pages, read as images) count as image tokens, as genai-prices
prices them.
"""

from __future__ import annotations

from collections.abc import Mapping

from thrifty.errors import UsageError
from thrifty.usage.counts import JsonObject, check_at_most, read_count, require_object
from thrifty.usage.model import Usage


def usage_from_gemini(body: JsonObject) -> Usage:
    """Map a ``generateContent`` response (or its last stream chunk) into ``Usage``."""
    meta = require_object(body, "usageMetadata", "usageMetadata")
    prompt = read_count(meta, "promptTokenCount", "usageMetadata.promptTokenCount")
    cached = read_count(meta, "cachedContentTokenCount", "usageMetadata.cachedContentTokenCount")
    candidates = read_count(meta, "candidatesTokenCount", "usageMetadata.candidatesTokenCount")
    thoughts = read_count(meta, "thoughtsTokenCount", "usageMetadata.thoughtsTokenCount")
    tool_prompt = read_count(
        meta, "toolUsePromptTokenCount", "usageMetadata.toolUsePromptTokenCount"
    )
    check_at_most(
        "usageMetadata.cachedContentTokenCount", cached, "usageMetadata.promptTokenCount", prompt
    )

    prompt_audio = _modality_count(meta, "promptTokensDetails", "AUDIO")
    check_at_most(
        "usageMetadata.promptTokensDetails[AUDIO]",
        prompt_audio,
        "usageMetadata.promptTokenCount",
        prompt,
    )
    tool_audio = _modality_count(meta, "toolUsePromptTokensDetails", "AUDIO")
    check_at_most(
        "usageMetadata.toolUsePromptTokensDetails[AUDIO]",
        tool_audio,
        "usageMetadata.toolUsePromptTokenCount",
        tool_prompt,
    )
    output_audio = _modality_count(meta, "candidatesTokensDetails", "AUDIO")
    check_at_most(
        "usageMetadata.candidatesTokensDetails[AUDIO]",
        output_audio,
        "usageMetadata.candidatesTokenCount",
        candidates,
    )

    input_image = sum(
        _modality_count(meta, key, modality)
        for key in ("promptTokensDetails", "toolUsePromptTokensDetails")
        for modality in _IMAGE_MODALITIES
    )
    check_at_most(
        "usageMetadata.promptTokensDetails[IMAGE, DOCUMENT]",
        input_image,
        "usageMetadata.promptTokenCount + toolUsePromptTokenCount",
        prompt + tool_prompt,
    )
    output_image = sum(
        _modality_count(meta, "candidatesTokensDetails", modality) for modality in _IMAGE_MODALITIES
    )
    check_at_most(
        "usageMetadata.candidatesTokensDetails[IMAGE, DOCUMENT]",
        output_image,
        "usageMetadata.candidatesTokenCount",
        candidates,
    )
    return Usage(
        input_tokens=prompt + tool_prompt,
        output_tokens=candidates + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
        input_audio_tokens=prompt_audio + tool_audio,
        output_audio_tokens=output_audio,
        input_image_tokens=input_image,
        output_image_tokens=output_image,
    )


_IMAGE_MODALITIES = ("IMAGE", "DOCUMENT")


def _modality_count(meta: JsonObject, key: str, modality: str) -> int:
    """Sum the ``tokenCount`` of the ``modality`` entries of a ``ModalityTokenCount`` list."""
    path = f"usageMetadata.{key}"
    entries = meta.get(key)
    if entries is None:
        return 0
    if not isinstance(entries, list):
        raise UsageError(path, f"expected an array of modality counts, got {entries!r}")
    total = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise UsageError(f"{path}[{index}]", f"expected an object, got {entry!r}")
        if entry.get("modality") == modality:
            total += read_count(entry, "tokenCount", f"{path}[{index}].tokenCount")
    return total
