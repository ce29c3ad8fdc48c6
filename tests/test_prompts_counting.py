"""Token counts of request bodies agree with the tokenizer rules the sandbox bills by."""

from __future__ import annotations

from typing import Any

from tests.test_prompts_workloads import rag_chats, support_chats, to_anthropic
from thrifty.prompts.counting import TokenCounter, breakdown
from thrifty.prompts.dialect import Api, detect_api, dialect_for
from thrifty.sandbox.anthropic_prompt import input_tokens, prompt_blocks
from thrifty.sandbox.openai_prompt import chat_prompt_tokens, responses_messages
from thrifty.tokens import count_chat_messages


def counter(api: Api, model: str) -> TokenCounter:
    return TokenCounter(dialect_for(api), model)


def without_tool_calls(body: dict[str, Any]) -> dict[str, Any]:
    messages = [m for m in body["messages"] if m["role"] != "tool" and not m.get("tool_calls")]
    return {"model": body["model"], "messages": messages}


def test_openai_chat_matches_count_chat_messages() -> None:
    for body in [*map(without_tool_calls, support_chats(3)), *rag_chats(3)]:
        expected = count_chat_messages(body["messages"], body["model"])
        assert counter("chat.completions", body["model"]).body(body) == expected


def test_anthropic_matches_sandbox_count() -> None:
    for body in [*map(to_anthropic, support_chats(3)), *map(to_anthropic, rag_chats(3))]:
        expected = input_tokens(prompt_blocks(body))
        assert counter("messages", body["model"]).body(body) == expected


def test_responses_matches_sandbox_count() -> None:
    body = {
        "model": "gpt-4o-mini",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Look up order 7"}]},
            {
                "type": "function_call",
                "call_id": "f1",
                "name": "get_order",
                "arguments": '{"id":7}',
            },
            {"type": "function_call_output", "call_id": "f1", "output": "shipped"},
            {"type": "reasoning", "summary": []},
            {"role": "user", "content": "Thanks"},
        ],
    }
    messages = responses_messages(body["instructions"], body["input"])
    expected = len(chat_prompt_tokens(messages, "o200k_base"))
    assert counter("responses", "gpt-4o-mini").body(body) == expected
    string_input = {"model": "gpt-4o-mini", "input": "Hello there"}
    expected = len(chat_prompt_tokens(responses_messages(None, "Hello there"), "o200k_base"))
    assert counter("responses", "gpt-4o-mini").body(string_input) == expected


def test_breakdown_adds_up() -> None:
    for body in [*support_chats(2), *rag_chats(2)]:
        api = detect_api(body)
        tokens = counter(api, body["model"])
        parts = breakdown(body, tokens)
        assert parts.input_tokens == tokens.body(body)


def test_breakdown_parts() -> None:
    body = next(support_chats(1))
    tokens = counter("chat.completions", body["model"])
    parts = breakdown(body, tokens)
    system = tokens.item(body["messages"][0])
    assert parts.system == system
    assert parts.tools == tokens.dialect.tool_tokens(body, tokens.text)
    assert parts.user == tokens.item(body["messages"][-1]) + 3
    assert parts.retrieved == 0
    assert parts.history > 0


def test_breakdown_finds_retrieved_documents() -> None:
    body = next(rag_chats(1, turns=2))
    tokens = counter("chat.completions", body["model"])
    parts = breakdown(body, tokens)
    final = body["messages"][-1]["content"]
    documents = final[: final.rindex("</documents>") + len("</documents>")]
    assert parts.retrieved > tokens.text(documents)
    assert parts.user < tokens.item(body["messages"][-1])


def test_detect_api() -> None:
    assert detect_api({"model": "gpt-4o", "messages": []}) == "chat.completions"
    assert detect_api({"model": "claude-3-5-haiku", "messages": []}) == "messages"
    assert detect_api({"model": "x", "system": "s", "messages": []}) == "messages"
    assert detect_api({"model": "gpt-4o", "input": "hi"}) == "responses"
    tool_use = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
        }
    ]
    assert detect_api({"model": "custom", "messages": tool_use}) == "messages"
