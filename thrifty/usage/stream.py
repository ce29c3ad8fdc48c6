"""Usage trackers for streamed responses, fed each parsed event in order.

A tracker records the usage the provider reports, the model and service tier
the stream reports serving, and the generated text seen so far. The gateway
estimates output from that text when a stream is cut before its usage
arrives. Trackers skip unknown events and malformed parts of events, because
a bad chunk must not end the stream it is metering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol

from thrifty.errors import ThriftyError
from thrifty.usage.anthropic import usage_from_anthropic
from thrifty.usage.gemini import usage_from_gemini
from thrifty.usage.model import Usage
from thrifty.usage.openai import usage_from_openai_chat, usage_from_openai_responses


class StreamUsageTracker(Protocol):
    """The interface of every stream tracker.

    ``result()`` returns None until an event with usage was seen.
    ``final_usage_seen`` turns true with the event that carries the final
    counts (before it, a result may hold input counts only). ``output_text``
    is the generated text seen so far (message text, refusals, thinking and
    tool-call arguments) and ``output_text_chars`` its length. ``speed`` is Anthropic's
    speed mode and None for other providers.
    """

    model: str | None
    service_tier: str | None
    speed: str | None
    output_text_chars: int

    def feed(self, event: Mapping[str, Any]) -> None: ...

    def result(self) -> Usage | None: ...

    @property
    def final_usage_seen(self) -> bool: ...

    @property
    def output_text(self) -> str: ...


class _GeneratedText:
    """The generated text of a stream, collected as it arrives."""

    def __init__(self) -> None:
        self.output_text_chars = 0
        self._parts: list[str] = []

    @property
    def output_text(self) -> str:
        return "".join(self._parts)

    def _add_text(self, text: object) -> None:
        if isinstance(text, str) and text:
            self._parts.append(text)
            self.output_text_chars += len(text)


class OpenAIChatStreamTracker(_GeneratedText):
    """Tracker for ``chat.completion.chunk`` events.

    Usage arrives only with ``stream_options: {"include_usage": true}``, in a
    last chunk whose ``choices`` is empty.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.service_tier: str | None = None
        self.speed: str | None = None
        self._usage: Mapping[str, Any] | None = None

    def feed(self, event: Mapping[str, Any]) -> None:
        self.model = _text(event.get("model")) or self.model
        self.service_tier = _text(event.get("service_tier")) or self.service_tier
        for choice in _objects(event.get("choices")):
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._add_chat_delta(delta)
        usage = event.get("usage")
        if isinstance(usage, Mapping):
            self._usage = usage

    def result(self) -> Usage | None:
        if self._usage is None:
            return None
        return usage_from_openai_chat({"usage": self._usage})

    @property
    def final_usage_seen(self) -> bool:
        return self._usage is not None

    def _add_chat_delta(self, delta: Mapping[str, Any]) -> None:
        self._add_text(delta.get("content"))
        self._add_text(delta.get("refusal"))
        for call in _objects(delta.get("tool_calls")):
            function = call.get("function")
            if isinstance(function, Mapping):
                self._add_text(function.get("arguments"))


class OpenAIResponsesStreamTracker(_GeneratedText):
    """Tracker for Responses API stream events.

    Usage arrives in the response object of the ``response.completed``,
    ``response.incomplete`` or ``response.failed`` event.
    """

    _FINAL_EVENTS: ClassVar[frozenset[str]] = frozenset(
        {"response.completed", "response.incomplete", "response.failed"}
    )
    _TEXT_EVENTS: ClassVar[frozenset[str]] = frozenset(
        {
            "response.output_text.delta",
            "response.refusal.delta",
            "response.function_call_arguments.delta",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.service_tier: str | None = None
        self.speed: str | None = None
        self._usage: Mapping[str, Any] | None = None

    def feed(self, event: Mapping[str, Any]) -> None:
        # A type that is not a string (a list, say) would not hash for the lookups.
        kind = str(event.get("type"))
        if kind in self._TEXT_EVENTS:
            self._add_text(event.get("delta"))
            return

        response = event.get("response")
        if not isinstance(response, Mapping):
            return
        self.model = _text(response.get("model")) or self.model
        self.service_tier = _text(response.get("service_tier")) or self.service_tier
        usage = response.get("usage")
        if kind in self._FINAL_EVENTS and isinstance(usage, Mapping):
            self._usage = usage

    def result(self) -> Usage | None:
        if self._usage is None:
            return None
        return usage_from_openai_responses({"usage": self._usage})

    @property
    def final_usage_seen(self) -> bool:
        return self._usage is not None


class AnthropicStreamTracker(_GeneratedText):
    """Tracker for Anthropic Messages stream events.

    ``message_start`` carries the input and cache counts and an early
    ``output_tokens``, usually 1. Each ``message_delta`` carries cumulative
    counts, so a field it repeats replaces the earlier value.
    """

    _DELTA_TEXT_FIELDS: ClassVar[dict[str, str]] = {
        "text_delta": "text",
        "thinking_delta": "thinking",
        "input_json_delta": "partial_json",
    }

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.service_tier: str | None = None
        self.speed: str | None = None
        self._usage: dict[str, Any] | None = None
        self._final = False

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._start(event.get("message"))
        elif kind == "message_delta":
            usage = event.get("usage")
            self._merge_usage(usage)
            self._final = self._final or isinstance(usage, Mapping)
        elif kind == "content_block_delta":
            self._add_block_delta(event.get("delta"))

    def result(self) -> Usage | None:
        if self._usage is None:
            return None
        return usage_from_anthropic({"usage": self._usage})

    @property
    def final_usage_seen(self) -> bool:
        return self._final

    def _start(self, message: object) -> None:
        if not isinstance(message, Mapping):
            return
        self.model = _text(message.get("model")) or self.model
        self._merge_usage(message.get("usage"))

    def _merge_usage(self, usage: object) -> None:
        if not isinstance(usage, Mapping):
            return
        merged = dict(self._usage or {})
        reported = {key: value for key, value in usage.items() if value is not None}
        merged.update(reported)
        if "cache_creation" not in reported:
            _refit_write_split(merged)
        self._usage = merged
        self.service_tier = _text(merged.get("service_tier")) or self.service_tier
        self.speed = _text(merged.get("speed")) or self.speed

    def _add_block_delta(self, delta: object) -> None:
        if not isinstance(delta, Mapping):
            return
        field = self._DELTA_TEXT_FIELDS.get(str(delta.get("type")))
        if field is not None:
            self._add_text(delta.get(field))


def _refit_write_split(usage: dict[str, Any]) -> None:
    """Fit the lifetime split of ``message_start`` to a later cache-write total.

    ``message_delta`` carries ``cache_creation_input_tokens`` but never the
    ``cache_creation`` split, so a stream whose start reported no writes and
    whose delta reports the real ones would otherwise keep a split that no
    longer adds up. The 1-hour writes the start reported are kept (up to the
    new total) and the rest count as 5-minute writes, the default lifetime.
    """
    split = usage.get("cache_creation")
    total = usage.get("cache_creation_input_tokens")
    if not isinstance(split, Mapping) or not isinstance(total, int) or isinstance(total, bool):
        return
    writes_5m = split.get("ephemeral_5m_input_tokens") or 0
    writes_1h = split.get("ephemeral_1h_input_tokens") or 0
    if not isinstance(writes_5m, int) or not isinstance(writes_1h, int):
        return
    if writes_5m + writes_1h == total or total < 0:
        return
    kept_1h = min(writes_1h, total)
    usage["cache_creation"] = {
        **split,
        "ephemeral_5m_input_tokens": total - kept_1h,
        "ephemeral_1h_input_tokens": kept_1h,
    }


class GeminiStreamTracker(_GeneratedText):
    """Tracker for ``streamGenerateContent`` chunks (``alt=sse``).

    Each chunk's ``usageMetadata`` contains the counts so far, so the latest one
    replaces the earlier. The final counts arrive with the chunk whose
    candidate has a ``finishReason``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.service_tier: str | None = None
        self.speed: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self._final = False

    def feed(self, event: Mapping[str, Any]) -> None:
        self.model = _text(event.get("modelVersion")) or self.model
        for candidate in _objects(event.get("candidates")):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in _objects(parts):
                self._add_text(part.get("text"))
            self._final = self._final or candidate.get("finishReason") is not None
        usage = event.get("usageMetadata")
        if isinstance(usage, Mapping):
            self._usage = usage

    def result(self) -> Usage | None:
        if self._usage is None:
            return None
        return usage_from_gemini({"usageMetadata": self._usage})

    @property
    def final_usage_seen(self) -> bool:
        return self._final and self._usage is not None


_TRACKERS: dict[str, type[StreamUsageTracker]] = {
    "chat.completions": OpenAIChatStreamTracker,
    "responses": OpenAIResponsesStreamTracker,
    "messages": AnthropicStreamTracker,
    "gemini": GeminiStreamTracker,
}


def tracker_for(endpoint: str) -> StreamUsageTracker:
    """Return a new tracker for a stream from ``endpoint``."""
    tracker_class = _TRACKERS.get(endpoint)
    if tracker_class is None:
        raise ThriftyError(
            f"no stream tracker for endpoint {endpoint!r}; expected one of: {', '.join(_TRACKERS)}"
        )
    return tracker_class()


def _objects(value: object) -> Iterable[Mapping[str, Any]]:
    if not isinstance(value, list):
        return ()
    return (item for item in value if isinstance(item, Mapping))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
