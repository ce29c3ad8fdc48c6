"""Cache keys: which request fields make two requests the same."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.cache.keys import RequestKey, Uncacheable, normalize_text, request_key

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is inflation?"},
    ],
    "temperature": 0,
    "max_tokens": 50,
}


def key_of(
    body: dict[str, Any], *, namespace: str = "key=a", endpoint: str = "chat.completions"
) -> RequestKey:
    key = request_key(
        namespace=namespace, provider="openai", endpoint=endpoint, model="gpt-4o-mini", body=body
    )
    assert isinstance(key, RequestKey)
    return key


def test_field_order_and_delivery_fields_do_not_matter() -> None:
    reordered = dict(reversed(list(BASE.items())))
    delivery = {
        **BASE,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "metadata": {"feature": "faq"},
        "service_tier": "flex",
        "prompt_cache_key": "faq",
    }
    assert key_of(reordered).entry_id == key_of(BASE).entry_id
    assert key_of(delivery).entry_id == key_of(BASE).entry_id


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"max_tokens": 51},
        {"seed": 7},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_output_changing_fields_change_key(change: dict[str, Any]) -> None:
    assert key_of({**BASE, **change}).entry_id != key_of(BASE).entry_id


def test_integral_floats_equal_integers() -> None:
    assert key_of({**BASE, "temperature": 0.0}).entry_id == key_of(BASE).entry_id


def test_namespace_and_endpoint_separate_entries() -> None:
    assert key_of(BASE, namespace="key=b").entry_id != key_of(BASE).entry_id
    assert key_of(BASE, namespace="key=b").partition != key_of(BASE).partition


def test_cache_control_markers_are_ignored() -> None:
    marked = {
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 10,
        "temperature": 0,
    }
    plain = {**marked, "system": [{"type": "text", "text": "Be brief."}]}
    assert (
        key_of(marked, endpoint="messages").entry_id == key_of(plain, endpoint="messages").entry_id
    )


def test_query_text_is_last_user_message() -> None:
    key = key_of(BASE)
    assert key.query_text == "What is inflation?"
    assert key.sampled is False


def test_partition_covers_earlier_turns() -> None:
    follow_up = {"role": "user", "content": "What are its types?"}
    inflation = [
        {"role": "user", "content": "Explain inflation."},
        {"role": "assistant", "content": "Inflation is a rise in prices."},
        follow_up,
    ]
    memory = [
        {"role": "user", "content": "What kinds of memory are there?"},
        {"role": "assistant", "content": "Explicit and implicit memory."},
        follow_up,
    ]
    first = key_of({**BASE, "messages": inflation})
    second = key_of({**BASE, "messages": memory})
    assert first.query_text == second.query_text
    assert first.partition != second.partition
    assert first.entry_id != second.entry_id


def test_same_context_shares_partition() -> None:
    other_question = {
        **BASE,
        "messages": [BASE["messages"][0], {"role": "user", "content": "Why?"}],
    }
    assert key_of(other_question).partition == key_of(BASE).partition
    assert key_of(other_question).entry_id != key_of(BASE).entry_id


def test_tool_result_turn_has_no_query_text() -> None:
    messages = [*BASE["messages"], {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    assert key_of({**BASE, "messages": messages}).query_text is None


def test_missing_temperature_counts_as_sampled() -> None:
    body = {key: value for key, value in BASE.items() if key != "temperature"}
    assert key_of(body).sampled is True
    assert key_of({**BASE, "temperature": 0.2}).sampled is True


def test_responses_input_string_is_query() -> None:
    body = {
        "model": "gpt-4o-mini",
        "input": "Name a prime.",
        "instructions": "Be brief.",
        "temperature": 0,
    }
    key = key_of(body, endpoint="responses")
    assert key.query_text == "Name a prime."


@pytest.mark.parametrize(
    ("endpoint", "body", "reason"),
    [
        ("embeddings", {"model": "m", "input": "x"}, "the embeddings endpoint is not cached"),
        (
            "responses",
            {"model": "m", "input": "x", "previous_response_id": "resp_1"},
            "'previous_response_id' refers to state kept by the provider",
        ),
        (
            "responses",
            {"model": "m", "input": "x", "background": True},
            "background responses are fetched later, not answered",
        ),
    ],
)
def test_uncacheable_requests(endpoint: str, body: dict[str, Any], reason: str) -> None:
    key = request_key(namespace="n", provider="openai", endpoint=endpoint, model="m", body=body)
    assert key == Uncacheable(reason)


def test_normalize_text_collapses_whitespace() -> None:
    assert normalize_text("  What\tis\n\n ﬁre? ") == "What is fire?"
