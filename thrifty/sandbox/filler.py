"""Deterministic filler text that encodes to an exact number of tokens.

The filler repeats one passage that states what it is. Every token of the
passage is a whole pre-token of the tiktoken split (a word with its leading
space, or a punctuation mark), so any prefix of the passage's tokens decodes
to text that re-encodes to exactly that many tokens. That holds for
``o200k_base`` and ``cl100k_base``; tests check it for both.
"""

from __future__ import annotations

from functools import lru_cache

from thrifty.tokens import get_encoding

FILLER_PASSAGE = (
    "This is sandbox filler text from a provider emulator, not a model answer."
    " It is deterministic, and its length is the number of tokens the request allows."
)


@lru_cache(maxsize=8)
def _passage_tokens(encoding_name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return the tokens of the first passage and of each later one (after a space)."""
    encoding = get_encoding(encoding_name)
    first = tuple(encoding.encode(FILLER_PASSAGE))
    repeat = tuple(encoding.encode(" " + FILLER_PASSAGE))
    return first, repeat


def filler_tokens(encoding_name: str, count: int) -> list[int]:
    """Return the first ``count`` token ids of the filler."""
    first, repeat = _passage_tokens(encoding_name)
    if count <= len(first):
        return list(first[:count])
    whole, rest = divmod(count - len(first), len(repeat))
    return [*first, *(repeat * whole), *repeat[:rest]]


@lru_cache(maxsize=256)
def filler_text(encoding_name: str, count: int) -> str:
    """Return filler text that encodes to exactly ``count`` tokens."""
    return get_encoding(encoding_name).decode(filler_tokens(encoding_name, count))


@lru_cache(maxsize=256)
def filler_chunks(encoding_name: str, count: int, tokens_per_chunk: int) -> tuple[str, ...]:
    """Split the filler of ``count`` tokens into stream deltas of ``tokens_per_chunk`` tokens.

    The deltas join to ``filler_text(encoding_name, count)``; the last one may
    be shorter.
    """
    encoding = get_encoding(encoding_name)
    tokens = filler_tokens(encoding_name, count)
    return tuple(
        encoding.decode(tokens[start : start + tokens_per_chunk])
        for start in range(0, len(tokens), tokens_per_chunk)
    )


def chunk_token_counts(count: int, tokens_per_chunk: int) -> list[int]:
    """Return how many tokens each delta of ``filler_chunks`` holds."""
    full, rest = divmod(count, tokens_per_chunk)
    return [tokens_per_chunk] * full + ([rest] if rest else [])
