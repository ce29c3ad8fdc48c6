"""Hypothesis strategies shared by the property tests of the parsers.

Generated values lean towards the field names the parsers look for, so
that the examples reach past the first ``isinstance`` check.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from thrifty.errors import ThriftyError

# Bounded so the whole property suite runs in well under a minute on 2 cores.
PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

USAGE_FIELDS = (
    "usage",
    "usageMetadata",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
    "audio_tokens",
    "input_tokens",
    "output_tokens",
    "input_tokens_details",
    "output_tokens_details",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "server_tool_use",
    "web_search_requests",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "promptTokensDetails",
    "modality",
    "tokenCount",
    "inputTokens",
    "outputTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
    "model",
    "service_tier",
    "serviceTier",
    "speed",
    "type",
    "message",
    "delta",
    "choices",
    "response",
    "content_block",
    "text",
    "content",
    "data",
)

EVENT_TYPES = (
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "text_delta",
    "thinking_delta",
    "input_json_delta",
    "response.created",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.output_text.delta",
    "error",
    "ping",
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(EVENT_TYPES)
)
keys = st.sampled_from(USAGE_FIELDS) | st.text(max_size=8)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=15,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(keys, json_values, max_size=8)


def only_thrifty_errors(action: Callable[[], object]) -> None:
    """Run ``action``; any exception other than a ThriftyError fails the test."""
    with contextlib.suppress(ThriftyError):
        action()


def consume(iterator: Iterator[object]) -> None:
    for _ in iterator:
        pass


@contextlib.contextmanager
def written_file(content: bytes, name: str = "input") -> Iterator[Path]:
    """Write ``content`` to a fresh temporary file (hypothesis examples cannot share tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        yield path


def lines_of(values: Sequence[Any]) -> bytes:
    import json

    return "\n".join(json.dumps(value, default=str) for value in values).encode()
