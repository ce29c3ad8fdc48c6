"""Protected text stays byte-identical through every transform, on every API."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.test_prompts_workloads import PASSAGES
from thrifty.errors import PromptError
from thrifty.prompts.dialect import Api, dialect_for
from thrifty.prompts.pipeline import check_protected, optimize, protected_texts
from thrifty.prompts.protect import FinalUserMode, Protection
from thrifty.prompts.settings import TRANSFORMS, CompressSettings, Settings, TrimSettings

KEEP = re.compile(r"(?s)<keep>.*?</keep>")
PROTECTED_SPAN = '<keep>Order   ids:  {\n  "id": 42\n}\n\n\n\nToday is 2025-01-01.</keep>'
FINAL_QUESTION = (
    "  Given   all that,\n\n\n\nhow many days do I have to return   it?  \n"
    '{\n  "order": 42\n}\n\n' + PASSAGES[1] + "\n\n" + PASSAGES[1]
)
LONG_HISTORY = " ".join(PASSAGES) + "\n\n" + " ".join(PASSAGES)


def openai_body() -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": f"Rules.\nToday is 2025-01-01.\nBe   brief.\n{PROTECTED_SPAN}",
        }
    ]
    for turn in range(4):
        messages.append({"role": "user", "content": f"Turn {turn}:   {LONG_HISTORY}"})
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": f"c{turn}",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{\n  "q": 1\n}'},
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "tool",
                "tool_call_id": f"c{turn}",
                "content": f"{LONG_HISTORY}\n\n{PROTECTED_SPAN if turn == 1 else ''}",
            }
        )
        messages.append({"role": "assistant", "content": f"Answer   {turn}.\n\n\n"})
    messages.append({"role": "user", "content": FINAL_QUESTION})
    return {"model": "gpt-4o-mini", "messages": messages}


def anthropic_body() -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in range(4):
        messages.append({"role": "user", "content": f"Turn {turn}:   {LONG_HISTORY}"})
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{turn}", "name": "lookup", "input": {}}],
            }
        )
        result = f"{LONG_HISTORY}\n\n{PROTECTED_SPAN if turn == 1 else ''}"
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{turn}", "content": result}],
            }
        )
        messages.append({"role": "assistant", "content": f"Answer   {turn}.  "})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Context:   {LONG_HISTORY}"},
                {"type": "text", "text": FINAL_QUESTION},
            ],
        }
    )
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "system": f"Rules.\nToday is 2025-01-01.\n{PROTECTED_SPAN}\nBe   brief.",
        "messages": messages,
    }


def responses_body() -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for turn in range(4):
        items.append({"role": "user", "content": f"Turn {turn}:   {LONG_HISTORY}"})
        items.append(
            {
                "type": "function_call",
                "call_id": f"f{turn}",
                "name": "lookup",
                "arguments": '{\n "q": 1\n}',
            }
        )
        items.append(
            {
                "type": "function_call_output",
                "call_id": f"f{turn}",
                "output": f"{LONG_HISTORY}\n{PROTECTED_SPAN if turn == 1 else ''}",
            }
        )
        items.append(
            {"role": "assistant", "content": [{"type": "output_text", "text": f"Answer   {turn}."}]}
        )
    items.append({"role": "user", "content": [{"type": "input_text", "text": FINAL_QUESTION}]})
    return {
        "model": "gpt-4o-mini",
        "instructions": f"Rules.\nToday is 2025-01-01.\n{PROTECTED_SPAN}\nBe   brief.",
        "input": items,
    }


BODIES: dict[Api, Callable[[], dict[str, Any]]] = {
    "chat.completions": openai_body,
    "messages": anthropic_body,
    "responses": responses_body,
}


def settings_for(transforms: tuple[str, ...], final_user: FinalUserMode) -> Settings:
    return Settings(
        transforms=transforms,
        protect=Protection(final_user=final_user, patterns=(KEEP,)),
        trim=TrimSettings(
            max_input_tokens=600,
            keep_recent_turns=1,
            keep_recent_exchanges=0,
            tool_result_tokens=10,
        ),
        compress=CompressSettings(
            ratio=0.2, min_tokens=16, roles=("system", "user", "assistant", "tool")
        ),
    )


@pytest.mark.parametrize("api", list(BODIES))
@pytest.mark.parametrize("transform", [*TRANSFORMS, "all"])
@pytest.mark.parametrize("final_user", ["message", "last_part"])
def test_protected_text_unchanged(api: Api, transform: str, final_user: FinalUserMode) -> None:
    body = BODIES[api]()
    settings = settings_for(TRANSFORMS if transform == "all" else (transform,), final_user)
    dialect = dialect_for(api)
    expected = protected_texts(body, dialect, settings.protect)

    result = optimize(body, settings, api=api)

    texts = "\x00".join(slot.text for slot in dialect.slots(result.body))
    assert FINAL_QUESTION in expected
    assert PROTECTED_SPAN in expected
    for text in expected:
        assert text in texts
    assert texts.count(PROTECTED_SPAN) == "\x00".join(
        slot.text for slot in dialect.slots(body)
    ).count(PROTECTED_SPAN)


@pytest.mark.parametrize("api", list(BODIES))
def test_all_transforms_change_unprotected_text(api: Api) -> None:
    body = BODIES[api]()
    result = optimize(body, settings_for(TRANSFORMS, "message"), api=api)
    assert result.changed
    assert result.input_tokens_after < result.input_tokens_before // 2


def test_last_part_mode_leaves_earlier_parts_open() -> None:
    body = anthropic_body()
    result = optimize(body, settings_for(("whitespace",), "last_part"))
    final = result.body["messages"][-1]["content"]
    assert final[0]["text"] == f"Context: {LONG_HISTORY}"
    assert final[1]["text"] == FINAL_QUESTION


def test_changed_protected_text_is_reported() -> None:
    body = openai_body()
    dialect = dialect_for("chat.completions")
    guarded = protected_texts(body, dialect, settings_for((), "message").protect)
    check_protected(body, dialect, guarded)
    body["messages"][-1]["content"] = FINAL_QUESTION.replace("   ", " ")
    with pytest.raises(PromptError, match="changed protected text"):
        check_protected(body, dialect, guarded)
