"""Request fingerprints kept in the ledger for the savings advisor."""

from __future__ import annotations

from thrifty.gateway.fingerprint import (
    PREFIX_CHARS,
    prefix_fingerprints,
    prompt_text,
    request_facts,
    request_fingerprint,
)

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is a ledger?"}],
    "temperature": 0,
}


def test_fingerprint_ignores_attribution_and_streaming() -> None:
    other = {**BODY, "user": "u-1", "metadata": {"feature": "x"}, "stream": True}
    assert request_fingerprint(other) == request_fingerprint(BODY)


def test_fingerprint_changes_with_the_prompt() -> None:
    other = {**BODY, "messages": [{"role": "user", "content": "What is a journal?"}]}
    assert request_fingerprint(other) != request_fingerprint(BODY)


def test_fingerprint_ignores_key_order() -> None:
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "gpt-4o-mini"}
    assert request_fingerprint(reordered) == request_fingerprint(BODY)


def test_shared_prefix_has_equal_digests_up_to_its_length() -> None:
    shared = "s" * 5000
    first = prefix_fingerprints(shared + "a" * 5000)
    second = prefix_fingerprints(shared + "b" * 5000)
    assert first["2048"] == second["2048"]
    assert first["4096"] == second["4096"]
    assert first["8192"] != second["8192"]
    assert "16384" not in first


def test_short_prompt_has_no_prefix_digests() -> None:
    assert prefix_fingerprints("short") == {}
    assert PREFIX_CHARS[0] == 2048


def test_prompt_text_orders_system_tools_then_messages() -> None:
    body = {
        "system": "You are terse.",
        "tools": [{"name": "lookup"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    assert prompt_text(body) == 'You are terse.\n[{"name":"lookup"}]\nHi'


def test_request_facts_read_the_output_cap() -> None:
    facts = request_facts({**BODY, "max_completion_tokens": 300})
    assert facts["max_tokens"] == 300
    assert facts["prompt_chars"] == len("What is a ledger?")
    assert facts["fingerprint"] == request_fingerprint(BODY | {"max_completion_tokens": 300})
