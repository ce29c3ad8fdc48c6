"""Prompt optimization settings of one feature: the transforms and their parameters.

``thrifty.prompts.config`` builds these from the ``prompts:`` section of
thrifty.yaml; the CLI builds them from its options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from thrifty.prompts.dialect import Role
from thrifty.prompts.protect import Protection

# Every transform, in the order they run. The lossless ones come first, so
# dedupe compares text whose whitespace is already collapsed. Then the
# layout, then compression before trimming, so that trimming drops whole
# turns only when compressing them was not enough.
TRANSFORMS = ("drop_empty", "whitespace", "minify_json", "dedupe", "layout", "compress", "trim")
LOSSLESS_TRANSFORMS = ("drop_empty", "whitespace", "minify_json", "dedupe")

LayoutTarget = Literal["system_end", "before_last_user"]


@dataclass(frozen=True, slots=True)
class TrimSettings:
    """Context trimming: the token budget and what is always kept.

    The system prompt and the first user turn are always kept. The last
    ``keep_recent_turns`` user turns are never dropped whole. The last
    ``keep_recent_exchanges`` tool call exchanges (a tool call and its
    results) are never shortened or dropped on their own, but an old turn
    that contains one can still be dropped whole. An older tool result is
    cut to its first ``tool_result_tokens`` tokens before anything is dropped.
    """

    max_input_tokens: int | None = None
    keep_recent_turns: int = 2
    keep_recent_exchanges: int = 2
    tool_result_tokens: int = 100


@dataclass(frozen=True, slots=True)
class CompressSettings:
    """Extractive compression: how much of the compressible text to keep.

    ``ratio`` is the share of the compressible tokens kept; ``max_tokens``,
    when set, caps them instead. Only text of the ``roles`` listed, in texts
    of at least ``min_tokens`` tokens, is compressed.
    """

    ratio: float | None = 0.5
    max_tokens: int | None = None
    method: str = "extractive"
    roles: tuple[Role, ...] = ("user", "tool")
    min_tokens: int = 64


@dataclass(frozen=True, slots=True)
class DedupeSettings:
    """Repeated context blocks shorter than ``min_block_tokens`` tokens are left in place."""

    min_block_tokens: int = 24


@dataclass(frozen=True, slots=True)
class LayoutSettings:
    """Cache-friendly layout: which system prompt lines vary per request, and where they go.

    ``builtin`` detects dates, times, timestamps and UUIDs; ``retrieved``
    moves retrieval-tagged blocks; each pattern marks more lines (a user
    name, an account id).
    """

    patterns: tuple[re.Pattern[str], ...] = ()
    builtin: bool = True
    retrieved: bool = True
    target: LayoutTarget = "system_end"


@dataclass(frozen=True, slots=True)
class Settings:
    """One feature's prompt optimization. ``name`` is the config entry it came from."""

    transforms: tuple[str, ...] = LOSSLESS_TRANSFORMS
    protect: Protection = field(default_factory=Protection)
    trim: TrimSettings = field(default_factory=TrimSettings)
    compress: CompressSettings = field(default_factory=CompressSettings)
    dedupe: DedupeSettings = field(default_factory=DedupeSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)
    name: str = "default"

    def ordered_transforms(self) -> tuple[str, ...]:
        return tuple(name for name in TRANSFORMS if name in self.transforms)
