"""Provider prompt caching: prompt fingerprints and cache-friendly request bodies.

A prompt is read in the order the providers cache it: tools, then the system
prompt, then the messages. Each part is a *segment* with an estimated token
count and a short digest, so two requests share a cacheable prefix exactly
as far as their leading segments are equal. The system prompt is also cut
into line-aligned *pieces*, which show a prefix that changes early (a
timestamp on its first line) while the rest repeats.

Two rewrites make requests cache-friendly:

- Anthropic caches only up to a ``cache_control`` breakpoint. A breakpoint is
  put after the stable prefix (tools, system prompt and any leading
  documents of the first user message) when that prefix reaches the model's
  minimum cacheable length, with the 1-hour lifetime when the same prefix
  last recurred more than 5 minutes earlier; a multi-turn conversation also
  gets one on its last message, so the next turn reads the history.
- OpenAI caches automatically but routes by a hash of the prompt's start;
  ``prompt_cache_key`` set from the feature or session sends requests that
  share a prefix to the same cache.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.sandbox.catalog import anthropic_cache_minimum
from thrifty.tokens import count_text, message_text

# OpenAI caches prompts of at least 1,024 tokens (its prompt caching guide).
OPENAI_MIN_CACHED_TOKENS = 1024
# Anthropic's breakpoint lifetimes, and its limit of 4 breakpoints per request.
ANTHROPIC_TTL_5M_S = 300.0
ANTHROPIC_TTL_1H_S = 3600.0
ANTHROPIC_MAX_BREAKPOINTS = 4
# A rough 4 bytes of text per token, for fingerprints of every request, where
# exact counting would cost milliseconds; totals are scaled to the billed count.
BYTES_PER_TOKEN = 4
MAX_PIECES = 32
PIECE_MIN_BYTES = 200
# OpenAI documents no length limit for prompt_cache_key; longer values are hashed.
MAX_CACHE_KEY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a prompt in cache order: its kind, estimated tokens and digest."""

    kind: str
    tokens: int
    digest: str


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A prompt's segments, its system prompt's pieces and its breakpoint count."""

    segments: tuple[Segment, ...]
    pieces: tuple[Segment, ...]
    breakpoints: int

    def to_json(self, scale_to: int | None = None) -> dict[str, Any]:
        """Return a compact JSON form; ``scale_to`` rescales token estimates to a known total."""
        factor = 1.0
        total = sum(segment.tokens for segment in self.segments)
        if scale_to and total:
            factor = scale_to / total
        return {
            "segments": [[s.kind, round(s.tokens * factor), s.digest] for s in self.segments],
            "pieces": [[p.kind, round(p.tokens * factor), p.digest] for p in self.pieces],
            "breakpoints": self.breakpoints,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        return cls(
            segments=tuple(Segment(str(k), int(t), str(d)) for k, t, d in data["segments"]),
            pieces=tuple(Segment(str(k), int(t), str(d)) for k, t, d in data.get("pieces", [])),
            breakpoints=int(data.get("breakpoints", 0)),
        )


def fingerprint(endpoint: str, body: Mapping[str, Any]) -> Fingerprint:
    """Describe a request's prompt in cache order, with token counts estimated from bytes."""
    parts, system_text = _prompt_parts(endpoint, body)
    segments = tuple(Segment(kind, _estimate(value), _digest(value)) for kind, value in parts)
    return Fingerprint(segments, _pieces(system_text), _count_breakpoints(body))


def _prompt_parts(endpoint: str, body: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], str]:
    parts: list[tuple[str, Any]] = [("tool", tool) for tool in body.get("tools") or []]
    system_text = ""
    if endpoint == "messages":
        system = body.get("system")
        if system:
            parts.append(("system", system))
            system_text = message_text(system)
        turns = body.get("messages") or []
    elif endpoint == "responses":
        instructions = body.get("instructions")
        if instructions:
            parts.append(("system", instructions))
            system_text = str(instructions)
        prompt = body.get("input")
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt or []
    else:
        turns = body.get("messages") or []
    for turn in turns:
        role = turn.get("role", "") if isinstance(turn, Mapping) else ""
        if role in ("system", "developer") and not system_text:
            system_text = message_text(turn.get("content"))
        parts.append((f"message:{role}", turn))
    return parts, system_text


def _pieces(text: str) -> tuple[Segment, ...]:
    """Cut text at line ends into pieces of at least PIECE_MIN_BYTES, at most MAX_PIECES."""
    if not text:
        return ()
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        current += line
        if len(current.encode()) >= PIECE_MIN_BYTES and len(pieces) < MAX_PIECES - 1:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return tuple(Segment("piece", _estimate(piece), _digest(piece)) for piece in pieces)


def _estimate(value: Any) -> int:
    data = value.encode() if isinstance(value, str) else _canonical_bytes(value)
    return max(1, len(data) // BYTES_PER_TOKEN)


def _digest(value: Any) -> str:
    data = value.encode() if isinstance(value, str) else _canonical_bytes(value)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _canonical_bytes(value: Any) -> bytes:
    return orjson.dumps(_without_cache_control(value), option=orjson.OPT_SORT_KEYS)


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(item) for item in value]
    return value


def _count_breakpoints(value: Any) -> int:
    if isinstance(value, Mapping):
        own = 1 if "cache_control" in value else 0
        return own + sum(_count_breakpoints(item) for item in value.values())
    if isinstance(value, list):
        return sum(_count_breakpoints(item) for item in value)
    return 0


class PrefixRecurrence:
    """When each stable prefix was last seen, to choose the Anthropic cache lifetime."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def lifetime(self, digest: str, now: float | None = None) -> str:
        """Return "1h" when the prefix last recurred more than 5 minutes (and within 1 hour) ago."""
        now = time.monotonic() if now is None else now
        last = self._seen.pop(digest, None)
        self._seen[digest] = now
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        if last is not None and ANTHROPIC_TTL_5M_S < now - last <= ANTHROPIC_TTL_1H_S:
            return "1h"
        return "5m"


def add_anthropic_breakpoints(
    body: Mapping[str, Any], recurrence: PrefixRecurrence, *, now: float | None = None
) -> dict[str, Any] | None:
    """Return a copy of a Messages request with breakpoints added, or None to leave it as is.

    A request that already has a breakpoint is the client's to manage.
    """
    if _count_breakpoints(body) or not isinstance(body.get("messages"), list):
        return None
    model = str(body.get("model", ""))
    result = copy.deepcopy(dict(body))
    marks = _stable_prefix(result)
    if not marks:
        return None
    prefix_tokens = sum(_count(value, model) for value in marks.values())
    if prefix_tokens < anthropic_cache_minimum(model):
        return None
    lifetime = recurrence.lifetime(_digest(list(marks.values())), now)
    _mark(result, marks, lifetime)
    messages = result["messages"]
    if len(messages) >= 3 and isinstance(messages[-1], dict):
        _mark_last_block(messages[-1])
    return result


def _stable_prefix(body: dict[str, Any]) -> dict[str, Any]:
    """Return the stable parts that end the prefix: where -> value, in cache order."""
    marks: dict[str, Any] = {}
    if body.get("tools"):
        marks["tools"] = body["tools"]
    if body.get("system"):
        marks["system"] = body["system"]
    first = body["messages"][0] if body["messages"] else None
    if isinstance(first, Mapping) and first.get("role") == "user":
        content = first.get("content")
        if isinstance(content, list) and len(content) >= 2:
            marks["documents"] = content[:-1]
    return marks


def _mark(body: dict[str, Any], marks: Mapping[str, Any], lifetime: str) -> None:
    """Put one breakpoint on the last block of the stable prefix."""
    control = {"type": "ephemeral", "ttl": lifetime} if lifetime == "1h" else {"type": "ephemeral"}
    last = list(marks)[-1]
    if last == "documents":
        body["messages"][0]["content"][-2]["cache_control"] = control
    elif last == "system":
        system = body["system"]
        if isinstance(system, str):
            body["system"] = [{"type": "text", "text": system, "cache_control": control}]
        else:
            system[-1]["cache_control"] = control
    else:
        body["tools"][-1]["cache_control"] = control


def _mark_last_block(message: dict[str, Any]) -> None:
    """Put a 5-minute breakpoint on a message's last block, after any 1-hour one."""
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = [{"type": "text", "text": content}]
    blocks = message["content"]
    if isinstance(blocks, list) and blocks and isinstance(blocks[-1], dict):
        blocks[-1]["cache_control"] = {"type": "ephemeral"}


def _count(value: Any, model: str) -> int:
    if isinstance(value, str):
        return count_text(value, model)
    if isinstance(value, list) and all(
        isinstance(part, Mapping) and "text" in part for part in value
    ):
        return count_text(message_text(value), model)
    return count_text(_canonical_bytes(value).decode(), model)


def prompt_cache_key(source: str, feature: str | None, session: str | None) -> str | None:
    """Return the ``prompt_cache_key`` for a request, or None when its source is unknown."""
    values = {"feature": feature, "session": session}
    value = values.get(source)
    if not value:
        return None
    key = f"thrifty-{source}:{value}"
    if len(key) > MAX_CACHE_KEY_LENGTH:
        key = f"thrifty-{source}:" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return key
