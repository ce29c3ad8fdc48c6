"""One request of a trace, in Thrifty's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

# Mooncake's ``hash_ids`` each name one block of this many prompt tokens.
BLOCK_TOKENS = 512


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceRow:
    """One request of a trace: when it arrived and how many tokens it used.

    ``offset_s`` is seconds since the trace's first row. ``model`` is the
    trace's own model name, such as BurstGPT's ``ChatGPT`` or ``GPT-4``, not
    an API model name. ``prefix_blocks`` are Mooncake's ``hash_ids``: block ``i`` is prompt tokens
    ``512 * i`` to ``512 * (i + 1)``, and two rows with equal ids in the same
    positions share that prefix. ``line`` is the 1-based line of the file the
    row ends on. ``log_type`` is BurstGPT's ``Conversation log`` or ``API log``,
    and ``failed`` marks a BurstGPT row whose request failed, which BurstGPT
    records as 0 response tokens.
    """

    offset_s: float
    input_tokens: int
    output_tokens: int
    model: str | None = None
    prefix_blocks: tuple[int, ...] = ()
    line: int
    log_type: str | None = None
    failed: bool = False
