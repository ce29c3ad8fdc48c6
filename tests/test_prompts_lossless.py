"""Lossless transforms and the layout: what each removes or moves, and what it leaves alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.test_prompts_workloads import (
    anthropic_problems,
    openai_chat_problems,
    support_chats,
    to_anthropic,
)
from thrifty.prompts.lossless import REPEATED_NOTE
from thrifty.prompts.pipeline import optimize
from thrifty.prompts.settings import LayoutSettings, Settings
from thrifty.prompts.text import collapse_whitespace, minify_json, preformatted_spans


def run(body: dict[str, Any], *transforms: str, **settings: Any) -> dict[str, Any]:
    return optimize(body, Settings(transforms=transforms, **settings)).body


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": list(messages)}


def collapse(text: str) -> str:
    return collapse_whitespace(text, preformatted_spans(text))


def test_whitespace_collapses_runs_and_blank_lines() -> None:
    text = "Hello   world,  \tthis is\n\n\n\nspaced.   \n"
    assert collapse(text) == "Hello world, this is\n\nspaced."


def test_whitespace_removes_shared_indentation() -> None:
    text = """
        You are a helpful assistant.

        Answer briefly.
    """
    assert collapse(text) == "You are a helpful assistant.\n\nAnswer briefly."


def test_whitespace_dedents_docstring_shape() -> None:
    text = "Look up an order.\n\n        Args:\n            order_id: the id"
    assert collapse(text) == "Look up an order.\n\nArgs:\n    order_id: the id"


def test_whitespace_keeps_code_blocks() -> None:
    code = "```python\ndef f(x):\n    return  x   *  2\n\n\n\nprint( f(1) )\n```"
    text = f"Fix   this:\n{code}\nThanks   a lot."
    assert collapse(text) == f"Fix this:\n{code}\nThanks a lot."


def test_whitespace_keeps_indented_and_inline_code() -> None:
    text = "Run  this:\n\n    x  =  1\n    y  =  2\n\nor `a  =  b` then   stop."
    assert collapse(text) == "Run this:\n\n    x  =  1\n    y  =  2\n\nor `a  =  b` then stop."


def test_whitespace_keeps_pre_elements() -> None:
    text = "Table:  <pre>a    b\n1    2</pre>  end"
    assert collapse(text) == "Table: <pre>a    b\n1    2</pre> end"


def test_whitespace_skips_tool_results() -> None:
    result = "line  one\n\n\n\nline   two"
    body = chat(
        {"role": "user", "content": "Look it up"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": result},
        {"role": "user", "content": "ok"},
    )
    assert run(body, "whitespace")["messages"][2]["content"] == result


def test_minify_json_keeps_numbers_and_strings() -> None:
    text = '{\n  "price": 1.50,\n  "big": 12345678901234567890,\n  "note": "a  b\\n"\n}'
    assert minify_json(text) == '{"price":1.50,"big":12345678901234567890,"note":"a  b\\n"}'


def test_minify_json_ignores_non_json() -> None:
    assert minify_json("not { json") is None
    assert minify_json('{"a": 1') is None
    assert minify_json('{"a":1}') is None
    assert minify_json("42") is None


def test_minify_json_on_tool_results_and_arguments() -> None:
    body = next(support_chats(1, turns=1))
    out = run(body, "minify_json")
    call = out["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert call == json.dumps(json.loads(call), separators=(",", ":"))
    result = out["messages"][3]["content"]
    assert json.loads(result) == json.loads(body["messages"][3]["content"])
    assert "\n" not in result
    description = out["tools"][0]["function"]["description"]
    assert description == (
        "Look up one order by its id.\n\nReturns the order's status, items, shipping address and"
        "\nestimated delivery date."
    )


def test_drop_empty_parts_and_messages() -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": " "}, {"type": "text", "text": "Hi"}],
        },
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "Question?"},
    )
    out = run(body, "drop_empty")
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "user", "content": "Question?"},
    ]


def test_drop_empty_keeps_tool_messages() -> None:
    body = next(support_chats(1, turns=1))
    body["messages"][3]["content"] = ""
    out = run(body, "drop_empty")
    assert [m["role"] for m in out["messages"]] == [m["role"] for m in body["messages"]]


def test_drop_empty_merges_anthropic_turns() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "system": [{"type": "text", "text": ""}],
        "messages": [
            {"role": "user", "content": "First"},
            {"role": "assistant", "content": [{"type": "text", "text": " "}]},
            {"role": "user", "content": "Second"},
        ],
    }
    out = run(body, "drop_empty")
    assert "system" not in out
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "First"}, {"type": "text", "text": "Second"}],
        }
    ]
    assert anthropic_problems(out) == []


def test_dedupe_drops_history_sent_twice() -> None:
    history = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    body = chat(
        {"role": "system", "content": "Math tutor."},
        *history,
        *history,
        {"role": "user", "content": "And 4+4?"},
    )
    out = run(body, "dedupe")
    assert out["messages"] == [body["messages"][0], *history, body["messages"][-1]]


def test_dedupe_drops_repeated_system_message() -> None:
    system = {"role": "system", "content": "Be brief."}
    body = chat(
        system,
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        system,
        {"role": "user", "content": "Bye"},
    )
    out = run(body, "dedupe")
    assert out["messages"] == [system, *body["messages"][1:3], body["messages"][4]]


def test_dedupe_removes_repeated_passages() -> None:
    passage = (
        "Returns are accepted for 30 days after delivery, when the item is unused and in its "
        "original packaging. Refunds reach the original card within five business days."
    )
    body = chat(
        {"role": "user", "content": f"Context:\n\n{passage}\n\nWhat is the return window?"},
        {"role": "assistant", "content": "30 days."},
        {"role": "user", "content": f"Context:\n\nShipping takes two days.\n\n{passage}"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Thanks"},
    )
    out = run(body, "dedupe")
    assert out["messages"][0]["content"] == body["messages"][0]["content"]
    assert out["messages"][2]["content"] == "Context:\n\nShipping takes two days."


def test_dedupe_replaces_fully_repeated_tool_result() -> None:
    body = to_anthropic(next(support_chats(1, turns=2)))
    first = body["messages"][2]["content"][0]["content"]
    body["messages"][6]["content"][0]["content"] = first
    out = run(body, "dedupe")
    assert out["messages"][6]["content"][0]["content"] == REPEATED_NOTE
    assert out["messages"][2]["content"][0]["content"] == first
    assert anthropic_problems(out) == []


def test_dedupe_drops_duplicate_tools() -> None:
    body = next(support_chats(1, turns=1))
    body["tools"] = [*body["tools"], body["tools"][0]]
    out = run(body, "dedupe")
    assert out["tools"] == body["tools"][:2]


def test_lossless_keeps_support_chats_valid() -> None:
    for body in support_chats(5):
        out = run(body, "drop_empty", "whitespace", "minify_json", "dedupe")
        assert openai_chat_problems(out) == []
        anthropic = run(to_anthropic(body), "drop_empty", "whitespace", "minify_json", "dedupe")
        assert anthropic_problems(anthropic) == []


def test_lossless_saves_tokens_on_support_chats() -> None:
    body = next(support_chats(1))
    result = optimize(body, Settings())
    saved = {report.name: report.saved_tokens for report in result.transforms}
    assert saved["whitespace"] > 0
    assert saved["minify_json"] > 0
    assert result.input_tokens_after == result.input_tokens_before - sum(saved.values())


def test_unchanged_body_is_returned_itself() -> None:
    body = chat({"role": "user", "content": "Hello there."})
    result = optimize(body, Settings())
    assert result.body is body
    assert result.changed is False
    assert result.saved_tokens == 0


def test_layout_moves_date_line_to_system_end() -> None:
    body = chat(
        {"role": "system", "content": "You are a support agent.\nToday is 2025-03-04.\nBe brief."},
        {"role": "user", "content": "Hi"},
    )
    out = run(body, "layout")
    assert (
        out["messages"][0]["content"]
        == "You are a support agent.\nBe brief.\n\nToday is 2025-03-04."
    )


def test_layout_moves_before_last_user() -> None:
    body = chat(
        {"role": "system", "content": "User name: Ada Lovelace\nYou are a support agent."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Help"},
    )
    layout = LayoutSettings(
        patterns=(__import__("re").compile(r"^User name:"),), target="before_last_user"
    )
    out = run(body, "layout", layout=layout)
    assert out["messages"][0] == {"role": "system", "content": "You are a support agent."}
    assert out["messages"][3] == {"role": "system", "content": "User name: Ada Lovelace"}
    assert out["messages"][4] == {"role": "user", "content": "Help"}


def test_layout_adds_anthropic_block_after_breakpoint() -> None:
    static = {
        "type": "text",
        "text": "Rules.\nNow: 2025-01-02T10:00:00Z\nMore rules.",
        "cache_control": {"type": "ephemeral"},
    }
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 5,
        "system": [static],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    out = run(body, "layout")
    assert out["system"] == [
        {"type": "text", "text": "Rules.\nMore rules.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Now: 2025-01-02T10:00:00Z"},
    ]


def test_layout_leaves_variable_tail_alone() -> None:
    body = chat(
        {"role": "system", "content": "You are a support agent.\nToday is 2025-03-04."},
        {"role": "user", "content": "Hi"},
    )
    assert run(body, "layout") == body


@pytest.mark.parametrize(
    "line",
    [
        "Current time: 14:05:09",
        "Date: March 4, 2025",
        "Date: 4 March 2025",
        "Session 3f2b8c1e-9d4a-4e2b-8f1a-2b3c4d5e6f70",
        "Clock: 3:15 pm",
        "Epoch 1735689600",
    ],
)
def test_layout_detects_variable_lines(line: str) -> None:
    body = chat(
        {"role": "system", "content": f"Intro.\n{line}\nOutro."}, {"role": "user", "content": "Hi"}
    )
    assert run(body, "layout")["messages"][0]["content"] == f"Intro.\nOutro.\n\n{line}"
