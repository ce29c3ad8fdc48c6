"""Property tests: usage parsers, stream trackers and the SSE splitter raise only ThriftyError."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.property_support import (
    EVENT_TYPES,
    PROPERTY_SETTINGS,
    json_objects,
    json_values,
    only_thrifty_errors,
)
from thrifty.gateway.sse import EventSplitter, parse_event
from thrifty.usage import (
    ENDPOINTS,
    Usage,
    served_from_response,
    tracker_for,
    usage_from_response,
)

endpoints = st.sampled_from(ENDPOINTS)
events = (
    st.builds(lambda kind, rest: {**rest, "type": kind}, st.sampled_from(EVENT_TYPES), json_objects)
    | json_objects
)


def _usage_is_consistent(usage: Usage) -> None:
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        value = getattr(usage, name)
        assert isinstance(value, int)
        assert value >= 0


@PROPERTY_SETTINGS
@given(endpoint=endpoints, body=json_objects)
def test_usage_from_response_any_object(endpoint: str, body: dict[str, Any]) -> None:
    def parse() -> None:
        _usage_is_consistent(usage_from_response(endpoint, body))

    only_thrifty_errors(parse)


@PROPERTY_SETTINGS
@given(endpoint=endpoints, usage=json_objects, model=json_values)
def test_usage_from_response_usage_field(endpoint: str, usage: dict[str, Any], model: Any) -> None:
    body = {"usage": usage, "usageMetadata": usage, "model": model}
    only_thrifty_errors(lambda: _usage_is_consistent(usage_from_response(endpoint, body)))


@PROPERTY_SETTINGS
@given(endpoint=endpoints, body=json_objects)
def test_served_from_response_any_object(endpoint: str, body: dict[str, Any]) -> None:
    only_thrifty_errors(lambda: served_from_response(endpoint, body))


@PROPERTY_SETTINGS
@given(
    endpoint=st.sampled_from(["chat.completions", "responses", "messages", "gemini"]),
    stream=st.lists(events, max_size=12),
)
def test_stream_trackers_any_events(endpoint: str, stream: list[dict[str, Any]]) -> None:
    def track() -> None:
        tracker = tracker_for(endpoint)
        for event in stream:
            tracker.feed(event)
        result = tracker.result()
        if result is not None:
            _usage_is_consistent(result)
        assert isinstance(tracker.final_usage_seen, bool)
        assert isinstance(tracker.output_text, str)

    only_thrifty_errors(track)


@PROPERTY_SETTINGS
@given(chunks=st.lists(st.binary(max_size=40) | st.sampled_from([b"\n\n", b"\r\n", b"data: "])))
def test_sse_splitter_any_bytes(chunks: list[bytes]) -> None:
    splitter = EventSplitter()
    forwarded = b""
    for chunk in chunks:
        for event in splitter.feed(chunk):
            assert isinstance(event.data, bytes)
            forwarded += event.raw
    # The client receives exactly the bytes the provider sent, cut only between events.
    assert forwarded + splitter.remainder() == b"".join(chunks)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=200))
def test_sse_parse_event_any_bytes(raw: bytes) -> None:
    only_thrifty_errors(lambda: parse_event(raw))
