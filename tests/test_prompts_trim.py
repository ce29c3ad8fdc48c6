"""Context trimming: the budget is met oldest-first and the conversation stays valid."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_prompts_workloads import (
    anthropic_problems,
    openai_chat_problems,
    rag_chats,
    support_chats,
    to_anthropic,
)
from thrifty.prompts.dialect import dialect_for
from thrifty.prompts.pipeline import Optimization, optimize
from thrifty.prompts.settings import Settings, TrimSettings
from thrifty.prompts.trim import split_exchanges, split_turns


def trim(body: dict[str, Any], budget: int, **options: Any) -> Optimization:
    settings = Settings(transforms=("trim",), trim=TrimSettings(max_input_tokens=budget, **options))
    return optimize(body, settings)


def changes(result: Optimization) -> dict[str, int]:
    return dict(result.transforms[0].changes)


def test_under_budget_is_unchanged() -> None:
    body = next(support_chats(1))
    result = trim(body, 100_000)
    assert result.body is body
    assert changes(result)["over_budget"] == 0


def test_shortens_old_tool_results_first() -> None:
    body = next(support_chats(1, turns=4))
    before = optimize(body, Settings(transforms=())).input_tokens_before
    result = trim(body, before - 60, tool_result_tokens=10)
    assert changes(result)["tool_results_shortened"] >= 1
    assert changes(result)["exchanges_dropped"] == 0
    assert changes(result)["turns_dropped"] == 0
    assert result.input_tokens_after <= before - 60
    shortened = result.body["messages"][3]["content"]
    assert shortened.endswith("tokens of this tool result removed to fit the context budget]")
    assert len(result.body["messages"]) == len(body["messages"])


def test_drops_old_turns_and_keeps_ends() -> None:
    body = next(support_chats(1, turns=6))
    result = trim(body, 700, keep_recent_turns=2)
    messages = result.body["messages"]
    assert changes(result)["turns_dropped"] >= 1
    assert result.input_tokens_after <= 700
    assert messages[0] == body["messages"][0]
    assert messages[1] == body["messages"][1]
    assert messages[-1] == body["messages"][-1]
    assert openai_chat_problems(result.body) == []


def test_agent_loop_drops_old_exchanges() -> None:
    body = next(support_chats(1, turns=1))
    exchange = body["messages"][2:4]
    loop = [body["messages"][0], body["messages"][-1]]
    for number in range(8):
        call = {**exchange[0], "tool_calls": [{**exchange[0]["tool_calls"][0], "id": f"c{number}"}]}
        loop += [call, {**exchange[1], "tool_call_id": f"c{number}"}]
    agent = {**body, "messages": loop}
    result = trim(agent, 600, keep_recent_exchanges=2)
    assert changes(result)["exchanges_dropped"] >= 1
    assert result.body["messages"][:2] == loop[:2]
    assert result.body["messages"][-4:] == loop[-4:]
    assert openai_chat_problems(result.body) == []


@pytest.mark.parametrize("budget", [300, 500, 800, 1200, 2000])
def test_trimmed_chats_stay_valid_for_both_apis(budget: int) -> None:
    for body in support_chats(4, turns=5):
        openai = trim(body, budget, tool_result_tokens=20).body
        assert openai_chat_problems(openai) == []
        anthropic = trim(to_anthropic(body), budget, tool_result_tokens=20).body
        assert anthropic_problems(anthropic) == []


def test_trimmed_rag_chat_stays_valid() -> None:
    for body in rag_chats(3, turns=5):
        result = trim(body, 250, keep_recent_turns=1)
        assert openai_chat_problems(result.body) == []
        assert anthropic_problems(trim(to_anthropic(body), 250, keep_recent_turns=1).body) == []


def test_tool_call_never_split_from_result() -> None:
    body = to_anthropic(next(support_chats(1, turns=6)))
    for budget in range(200, 1400, 50):
        messages = trim(body, budget, keep_recent_exchanges=0).body["messages"]
        uses = [
            b["id"]
            for m in messages
            for b in m["content"]
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        results = [
            b["tool_use_id"]
            for m in messages
            for b in m["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        assert uses == results


def test_over_budget_is_reported() -> None:
    body = next(support_chats(1, turns=2))
    result = trim(body, 10)
    assert changes(result)["over_budget"] == 1
    assert result.body["messages"][-1] == body["messages"][-1]


def test_responses_input_trimmed() -> None:
    items: list[dict[str, Any]] = []
    for turn in range(5):
        items.append({"role": "user", "content": f"Question {turn}: " + "detail " * 80})
        items.append(
            {"type": "function_call", "call_id": f"f{turn}", "name": "f", "arguments": "{}"}
        )
        items.append({"type": "function_call_output", "call_id": f"f{turn}", "output": "x " * 100})
        items.append({"role": "assistant", "content": f"Answer {turn}"})
    items.append({"role": "user", "content": "Final question"})
    body = {"model": "gpt-4o-mini", "input": items}
    result = trim(body, 500, keep_recent_turns=1)
    kept = result.body["input"]
    calls = [item["call_id"] for item in kept if item.get("type") == "function_call"]
    outputs = [item["call_id"] for item in kept if item.get("type") == "function_call_output"]
    assert calls == outputs
    assert kept[0] == items[0]
    assert kept[-1] == items[-1]
    assert result.input_tokens_after <= 500


def test_split_turns_and_exchanges() -> None:
    body = next(support_chats(1, turns=2))
    dialect = dialect_for("chat.completions")
    entries = dialect.entries(body)
    turns = split_turns(entries)
    assert [turn.indices for turn in turns] == [(1, 2, 3, 4), (5, 6, 7, 8), (9,)]
    exchanges = split_exchanges(turns[0], entries)
    assert [(e.indices, e.results) for e in exchanges] == [((2, 3), (3,))]
