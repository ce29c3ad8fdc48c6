"""The one normalized usage shape every provider response is mapped into."""

from __future__ import annotations

from dataclasses import dataclass, fields

from thrifty.errors import UsageError


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, in Thrifty's vocabulary.

    ``input_tokens`` counts all input, cached or not; ``cache_read_tokens`` and
    ``cache_write_tokens`` are subsets of it, and ``cache_write_1h_tokens`` is the
    part of the cache writes held for one hour (the rest are 5-minute writes).
    ``output_tokens`` counts all output; ``reasoning_tokens`` is a subset of it.
    The audio and image counts are subsets of the input or output they name.
    ``web_search_requests`` counts server-side web searches, billed per call.
    ``estimated`` is true when the counts were computed by Thrifty rather than
    reported by the provider (a stream cut off before its usage event).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    web_search_requests: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    estimated: bool = False

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.name == "estimated":
                continue
            _check_count(item.name, getattr(self, item.name))
        _check_subset(
            "cache_read_tokens", self.cache_read_tokens, "input_tokens", self.input_tokens
        )
        _check_subset(
            "cache_write_tokens",
            self.cache_read_tokens + self.cache_write_tokens,
            "input_tokens",
            self.input_tokens,
            what="cache_read_tokens + cache_write_tokens",
        )
        _check_subset(
            "cache_write_1h_tokens",
            self.cache_write_1h_tokens,
            "cache_write_tokens",
            self.cache_write_tokens,
        )
        _check_subset(
            "reasoning_tokens", self.reasoning_tokens, "output_tokens", self.output_tokens
        )
        _check_subset(
            "input_audio_tokens", self.input_audio_tokens, "input_tokens", self.input_tokens
        )
        _check_subset(
            "output_audio_tokens", self.output_audio_tokens, "output_tokens", self.output_tokens
        )
        _check_subset(
            "input_image_tokens", self.input_image_tokens, "input_tokens", self.input_tokens
        )
        _check_subset(
            "output_image_tokens", self.output_image_tokens, "output_tokens", self.output_tokens
        )

    @property
    def cache_write_5m_tokens(self) -> int:
        """Cache writes held for five minutes: all writes but the 1-hour ones."""
        return self.cache_write_tokens - self.cache_write_1h_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to a prompt cache."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        values = {
            item.name: getattr(self, item.name) + getattr(other, item.name)
            for item in fields(self)
            if item.name != "estimated"
        }
        return Usage(**values, estimated=self.estimated or other.estimated)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(name, f"{value!r} is not an integer token count")
    if value < 0:
        raise UsageError(name, f"{value} is negative; token counts start at 0")


def _check_subset(
    name: str, value: int, whole_name: str, whole: int, *, what: str | None = None
) -> None:
    if value > whole:
        raise UsageError(
            name,
            f"{what or name} is {value}, above {whole_name} {whole}; "
            f"{name} is a subset of {whole_name}",
        )
