"""The output of a sandbox reply: its token count, the reasoning share and the visible text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.sandbox.filler import chunk_token_counts, filler_chunks, filler_text


@dataclass(frozen=True, slots=True)
class Output:
    """The output of one choice.

    ``tokens`` counts all output, reasoning included; the visible ``text`` is
    filler of ``tokens - reasoning_tokens`` tokens. ``capped`` is true when the
    request set the limit that the output reached.
    """

    encoding_name: str
    tokens: int
    reasoning_tokens: int
    capped: bool

    @property
    def text_tokens(self) -> int:
        return self.tokens - self.reasoning_tokens

    @property
    def text(self) -> str:
        return filler_text(self.encoding_name, self.text_tokens)

    def chunks(self, tokens_per_chunk: int) -> list[tuple[str, int]]:
        """Return the visible text as stream deltas, each with its token count."""
        texts = filler_chunks(self.encoding_name, self.text_tokens, tokens_per_chunk)
        counts = chunk_token_counts(self.text_tokens, tokens_per_chunk)
        return list(zip(texts, counts, strict=True))


def plan_output(
    encoding_name: str, limit: int | None, default_tokens: int, reasoning_share: float
) -> Output:
    """Plan output that fills the requested limit, or the default, exactly.

    ``reasoning_share`` of it is reasoning (pass 0 for models that do not reason).
    """
    tokens = default_tokens if limit is None else limit
    reasoning = math.floor(tokens * reasoning_share)
    return Output(encoding_name, tokens, reasoning, capped=limit is not None)
