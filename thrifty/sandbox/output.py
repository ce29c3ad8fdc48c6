"""The output of a sandbox reply: its token count, the reasoning share and the visible text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.sandbox.controls import JSON_ANSWER, REFUSAL_TEXT
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.filler import chunk_token_counts, filler_chunks, filler_text
from thrifty.tokens import get_encoding


@dataclass(frozen=True, slots=True)
class Output:
    """The output of one choice.

    ``tokens`` counts all output, reasoning included; the visible ``text`` is
    filler of ``tokens - reasoning_tokens`` tokens. ``capped`` is true when the
    request set the limit that the output reached. ``fixed_text``, when set,
    replaces the filler (an ``X-Sandbox-Answer``), and ``tokens`` are its tokens.
    """

    encoding_name: str
    tokens: int
    reasoning_tokens: int
    capped: bool
    fixed_text: str | None = None

    @property
    def text_tokens(self) -> int:
        return self.tokens - self.reasoning_tokens

    @property
    def text(self) -> str:
        if self.fixed_text is not None:
            return self.fixed_text
        return filler_text(self.encoding_name, self.text_tokens)

    def chunks(self, tokens_per_chunk: int) -> list[tuple[str, int]]:
        """Return the visible text as stream deltas, each with its token count."""
        if self.fixed_text is not None:
            return _split_text(self.encoding_name, self.fixed_text, tokens_per_chunk)
        texts = filler_chunks(self.encoding_name, self.text_tokens, tokens_per_chunk)
        counts = chunk_token_counts(self.text_tokens, tokens_per_chunk)
        return list(zip(texts, counts, strict=True))


# The largest output limit of any model in the catalog the sandbox serves
# (128,000 tokens, as for Claude's extended output and OpenAI's gpt-5 family).
MAX_OUTPUT_TOKENS = 128_000


def plan_output(
    encoding_name: str, limit: int | None, default_tokens: int, reasoning_share: float
) -> Output:
    """Plan output that fills the requested limit, or the default, exactly.

    ``reasoning_share`` of it is reasoning (pass 0 for models that do not reason).
    """
    if limit is not None and limit > MAX_OUTPUT_TOKENS:
        # Providers reject an output limit above the model's maximum; the
        # sandbox applies one limit to every model rather than build filler
        # of any size.
        raise ApiError(
            400,
            f"the output token limit {limit} is above the maximum of {MAX_OUTPUT_TOKENS}; "
            "send a smaller max_tokens",
        )
    tokens = default_tokens if limit is None else limit
    reasoning = math.floor(tokens * reasoning_share)
    return Output(encoding_name, tokens, reasoning, capped=limit is not None)


def with_answer(output: Output, kind: str) -> Output:
    """Replace the filler of ``output`` with an ``X-Sandbox-Answer`` kind's text."""
    if kind == "filler":
        return output
    text = {"empty": "", "refusal": REFUSAL_TEXT, "json": JSON_ANSWER}[kind]
    tokens = len(get_encoding(output.encoding_name).encode(text))
    return Output(output.encoding_name, tokens, 0, capped=False, fixed_text=text)


def _split_text(encoding_name: str, text: str, tokens_per_chunk: int) -> list[tuple[str, int]]:
    encoding = get_encoding(encoding_name)
    tokens = encoding.encode(text)
    pieces = [
        tokens[start : start + tokens_per_chunk]
        for start in range(0, len(tokens), tokens_per_chunk)
    ]
    return [(encoding.decode(piece), len(piece)) for piece in pieces]
