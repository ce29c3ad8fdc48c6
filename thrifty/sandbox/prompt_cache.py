"""Prompt caches that follow OpenAI's and Anthropic's published rules.

Both caches remember hashes of prompt prefixes, never prompt text, in a
least-recently-used table bounded by ``max_entries``. An entry lives until
its expiry on the settings' clock; a hit refreshes it.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

# OpenAI caches prompts of 1,024 tokens or more, and a hit covers the longest
# shared prefix in steps of 128 tokens: 1,024, 1,152, 1,280, ...
OPENAI_MIN_CACHED_TOKENS = 1024
OPENAI_CACHE_INCREMENT = 128

# Anthropic's ``cache_control`` lifetimes.
ANTHROPIC_TTL_5M_S = 300.0
ANTHROPIC_TTL_1H_S = 3600.0
# Anthropic checks for hits at each breakpoint and up to 20 blocks before it.
ANTHROPIC_LOOKBACK_BLOCKS = 20


class ExpiringLru:
    """A bounded table of keys, each with an expiry time and the lifetime it renews to."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lifetime(self, key: Hashable, now: float) -> float | None:
        """Return the key's lifetime in seconds if it is present and unexpired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, lifetime = entry
        if expires_at <= now:
            del self._entries[key]
            return None
        return lifetime

    def put(self, key: Hashable, now: float, lifetime: float) -> None:
        """Store or renew a key; a renewal never shortens a longer expiry."""
        expires_at = now + lifetime
        old = self._entries.pop(key, None)
        if old is not None and old[0] > expires_at:
            expires_at, lifetime = old
        self._entries[key] = (expires_at, lifetime)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class OpenAIPromptCache:
    """OpenAI's automatic prompt caching, per model."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.entries = ExpiringLru(max_entries)

    def cached_tokens(self, model: str, prompt: Sequence[int]) -> int:
        """Return the prompt tokens served from cache, then remember this prompt's prefixes."""
        if len(prompt) < OPENAI_MIN_CACHED_TOKENS:
            return 0
        boundaries = range(OPENAI_MIN_CACHED_TOKENS, len(prompt) + 1, OPENAI_CACHE_INCREMENT)
        digests = _prefix_digests(prompt, boundaries)
        now = self.clock()

        cached = 0
        for boundary, digest in zip(reversed(boundaries), reversed(digests), strict=True):
            if self.entries.lifetime((model, digest), now) is not None:
                cached = boundary
                break

        for digest in digests:
            self.entries.put((model, digest), now, self.ttl_s)
        return cached


def _prefix_digests(tokens: Sequence[int], boundaries: range) -> list[bytes]:
    """Hash each prefix ``tokens[:boundary]``, extending one running hash."""
    data = array("q", tokens).tobytes()
    width = array("q").itemsize
    running = hashlib.blake2b(digest_size=16)
    digests: list[bytes] = []
    start = 0
    for boundary in boundaries:
        running.update(data[start * width : boundary * width])
        digests.append(running.copy().digest())
        start = boundary
    return digests


@dataclass(frozen=True, slots=True)
class CacheBlock:
    """One block of an Anthropic prompt, in prompt order.

    ``end`` is the prompt's token count up to and including the block, and
    ``digest`` a hash of the whole prefix ending with it. ``ttl_s`` is the
    lifetime its ``cache_control`` breakpoint requests, or None without one.
    """

    end: int
    digest: bytes
    ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class AnthropicCacheUsage:
    """Prompt tokens read from and written to Anthropic's cache by one request."""

    read_tokens: int = 0
    write_5m_tokens: int = 0
    write_1h_tokens: int = 0

    @property
    def write_tokens(self) -> int:
        return self.write_5m_tokens + self.write_1h_tokens


class AnthropicPromptCache:
    """Anthropic's ``cache_control`` breakpoints, per model."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries = ExpiringLru(max_entries)

    def apply(self, model: str, blocks: Sequence[CacheBlock], minimum: int) -> AnthropicCacheUsage:
        """Read the longest cached prefix, then write the prefixes up to later breakpoints.

        A breakpoint whose prefix is shorter than ``minimum`` tokens is not
        cached. Anthropic bills mixed lifetimes this way: writes between the
        read prefix and the last 1-hour breakpoint are 1-hour writes, and the
        rest, up to the last breakpoint, are 5-minute writes.
        """
        breakpoints = [index for index, block in enumerate(blocks) if block.ttl_s is not None]
        if not breakpoints:
            return AnthropicCacheUsage()
        now = self.clock()
        read = self._read(model, blocks, breakpoints, now)

        written = [
            index
            for index in breakpoints
            if blocks[index].end > read and blocks[index].end >= minimum
        ]
        for index in written:
            self.entries.put((model, blocks[index].digest), now, blocks[index].ttl_s or 0.0)
        if not written:
            return AnthropicCacheUsage(read_tokens=read)

        last_end = blocks[written[-1]].end
        one_hour = [index for index in written if blocks[index].ttl_s == ANTHROPIC_TTL_1H_S]
        one_hour_end = blocks[one_hour[-1]].end if one_hour else read
        return AnthropicCacheUsage(
            read_tokens=read,
            write_1h_tokens=one_hour_end - read,
            write_5m_tokens=last_end - one_hour_end,
        )

    def _read(
        self, model: str, blocks: Sequence[CacheBlock], breakpoints: list[int], now: float
    ) -> int:
        """Return the end of the longest cached prefix, renewing the entry that matched."""
        best: CacheBlock | None = None
        for breakpoint_index in breakpoints:
            first = max(0, breakpoint_index - ANTHROPIC_LOOKBACK_BLOCKS + 1)
            for index in range(breakpoint_index, first - 1, -1):
                block = blocks[index]
                if best is not None and block.end <= best.end:
                    break
                lifetime = self.entries.lifetime((model, block.digest), now)
                if lifetime is not None:
                    best = block
                    self.entries.put((model, block.digest), now, lifetime)
                    break
        return best.end if best is not None else 0
