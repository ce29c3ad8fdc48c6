"""The models the sandbox lists, and the per-model rules it follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thrifty.tokens import encoding_name_for_model

Provider = Literal["openai", "anthropic"]
ModelKind = Literal["chat", "embedding"]

# The creation time every listed model reports, in Unix seconds: a fixed
# value, not the real release date, so listings are the same on every run.
MODEL_CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model in the sandbox's listing."""

    id: str
    provider: Provider
    kind: ModelKind = "chat"


KNOWN_MODELS: tuple[CatalogModel, ...] = (
    CatalogModel("gpt-3.5-turbo", "openai"),
    CatalogModel("gpt-4", "openai"),
    CatalogModel("gpt-4-turbo", "openai"),
    CatalogModel("gpt-4o", "openai"),
    CatalogModel("gpt-4o-mini", "openai"),
    CatalogModel("gpt-4.1", "openai"),
    CatalogModel("gpt-4.1-mini", "openai"),
    CatalogModel("gpt-4.1-nano", "openai"),
    CatalogModel("gpt-5", "openai"),
    CatalogModel("gpt-5-mini", "openai"),
    CatalogModel("gpt-5-nano", "openai"),
    CatalogModel("o1", "openai"),
    CatalogModel("o3", "openai"),
    CatalogModel("o3-mini", "openai"),
    CatalogModel("o4-mini", "openai"),
    CatalogModel("text-embedding-3-small", "openai", "embedding"),
    CatalogModel("text-embedding-3-large", "openai", "embedding"),
    CatalogModel("text-embedding-ada-002", "openai", "embedding"),
    CatalogModel("claude-3-haiku-20240307", "anthropic"),
    CatalogModel("claude-3-5-haiku-latest", "anthropic"),
    CatalogModel("claude-haiku-4-5", "anthropic"),
    CatalogModel("claude-sonnet-4-5", "anthropic"),
    CatalogModel("claude-sonnet-4-6", "anthropic"),
    CatalogModel("claude-opus-4-1", "anthropic"),
    CatalogModel("claude-opus-4-5", "anthropic"),
)

_BY_ID = {model.id: model for model in KNOWN_MODELS}


def find_model(model_id: str) -> CatalogModel | None:
    return _BY_ID.get(model_id)


# Reasoning models bill hidden reasoning as output tokens. Chat-tuned
# variants such as gpt-5-chat-latest do not reason.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return name.startswith(_REASONING_PREFIXES) and "-chat" not in name


# Native embedding sizes from OpenAI's embeddings guide.
_EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_EMBEDDING_DIMENSIONS = 1536


def embedding_dimensions(model: str) -> int:
    return _EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)


def accepts_dimensions(model: str) -> bool:
    """Return whether a model takes the ``dimensions`` parameter (text-embedding-3 and later)."""
    return model != "text-embedding-ada-002"


def encoding_name(model: str, provider: Provider) -> str:
    """Return the tiktoken encoding the sandbox counts a model's tokens with.

    Anthropic's tokenizer is not public, so Claude models are counted with
    ``o200k_base`` and every Anthropic count the sandbox reports is an estimate.
    """
    if provider == "anthropic":
        return "o200k_base"
    return encoding_name_for_model(model)


# Anthropic's minimum cacheable prompt length, by model name prefix, from the
# "Cache limitations" section of Anthropic's prompt caching guide. Models not
# listed use the guide's most common value, 1,024 tokens (Claude Opus 4.8,
# Opus 4.1, Opus 4, Sonnet 4.6, Sonnet 4.5, Sonnet 4, Sonnet 3.7).
# NOTE: published copies of the guide disagree on Claude Opus 4.7 (2,048 or
# 4,096 tokens); the sandbox uses 4,096.
_ANTHROPIC_CACHE_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("claude-3-haiku", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-haiku-4-5", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-7", 4096),
    ("claude-haiku-5-5", 512),
    ("claude-opus-5", 512),
    ("claude-fable-5", 512),
)
DEFAULT_ANTHROPIC_CACHE_MINIMUM = 1024


def anthropic_cache_minimum(model: str) -> int:
    """Return the fewest prompt tokens up to a breakpoint that Anthropic will cache."""
    for prefix, minimum in _ANTHROPIC_CACHE_MINIMUMS:
        if model.startswith(prefix):
            return minimum
    return DEFAULT_ANTHROPIC_CACHE_MINIMUM
