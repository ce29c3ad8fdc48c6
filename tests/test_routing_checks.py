"""Cascade checks on real response shapes of the three APIs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from thrifty.errors import ConfigError
from thrifty.routing.checks import AnswerChecks, answer_of, load_validator, parse_json_answer
from thrifty.routing.config import parse_routing_config

JSON_BODY = {
    "messages": [{"role": "user", "content": "x"}],
    "response_format": {"type": "json_object"},
}
PLAIN_BODY = {"messages": [{"role": "user", "content": "x"}]}
ALL_CHECKS = AnswerChecks(("empty", "refusal", "truncated", "json", "schema"))


def chat_reply(content: str | None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
    }


def test_chat_answer_fields() -> None:
    answer = answer_of(chat_reply("hi", tool_calls=[{"id": "c1"}]))
    assert answer.text == "hi"
    assert answer.tool_calls == 1
    assert answer.stop_reason == "stop"
    assert answer.refusal is None


def test_responses_answer_fields() -> None:
    response = {
        "object": "response",
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": "part one"}]},
            {"type": "function_call", "name": "f", "arguments": "{}"},
        ],
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    answer = answer_of(response)
    assert answer.text == "part one"
    assert answer.tool_calls == 1
    assert answer.stop_reason == "max_output_tokens"


def test_anthropic_answer_fields() -> None:
    response = {
        "type": "message",
        "content": [
            {"type": "text", "text": "Sure: "},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
        "stop_reason": "tool_use",
    }
    answer = answer_of(response)
    assert answer.text == "Sure: "
    assert answer.tool_calls == 1
    assert answer.stop_reason == "tool_use"


def test_empty_answer_with_tool_call_passes() -> None:
    failure = ALL_CHECKS.first_failure(answer_of(chat_reply(None, tool_calls=[{}])), PLAIN_BODY)
    assert failure is None
    empty = ALL_CHECKS.first_failure(answer_of(chat_reply("  \n")), PLAIN_BODY)
    assert empty is not None
    assert empty.check == "empty"


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        '"I can\'t help with that"',
        "As an AI, I cannot do that.",
    ],
)
def test_refusal_openings(text: str) -> None:
    failure = ALL_CHECKS.first_failure(answer_of(chat_reply(text)), PLAIN_BODY)
    assert failure is not None
    assert failure.check == "refusal"


def test_refusal_fields() -> None:
    openai_refusal = answer_of(chat_reply(None, refusal="I can't comply."))
    failure = ALL_CHECKS.first_failure(openai_refusal, PLAIN_BODY)
    assert failure is not None
    assert failure.reason == "the model refused: I can't comply."
    anthropic = answer_of({"content": [], "stop_reason": "refusal"})
    failure = AnswerChecks(("refusal",)).first_failure(anthropic, PLAIN_BODY)
    assert failure is not None
    assert failure.reason == "the model stopped with stop_reason 'refusal'"


def test_ordinary_answer_not_refusal() -> None:
    text = "I can't believe how simple this is: the answer is 4."
    assert ALL_CHECKS.first_failure(answer_of(chat_reply(text)), PLAIN_BODY) is None


def test_truncated_answer() -> None:
    failure = ALL_CHECKS.first_failure(answer_of(chat_reply("half", finish="length")), PLAIN_BODY)
    assert failure is not None
    assert failure.check == "truncated"


def test_json_check_only_when_requested() -> None:
    assert ALL_CHECKS.first_failure(answer_of(chat_reply("not json")), PLAIN_BODY) is None
    failure = ALL_CHECKS.first_failure(answer_of(chat_reply("not json")), JSON_BODY)
    assert failure is not None
    assert failure.check == "json"
    fenced = '```json\n{"a": 1}\n```'
    assert ALL_CHECKS.first_failure(answer_of(chat_reply(fenced)), JSON_BODY) is None


def test_request_schema_enforced() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {"age": {"type": "integer"}},
                    "required": ["age"],
                },
            },
        },
    }
    good = ALL_CHECKS.first_failure(answer_of(chat_reply('{"age": 3}')), body)
    assert good is None
    bad = ALL_CHECKS.first_failure(answer_of(chat_reply('{"age": "three"}')), body)
    assert bad is not None
    assert bad.check == "schema"
    assert (
        bad.reason == "the answer violates the JSON schema at age: 'three' is not of type 'integer'"
    )


def test_parse_json_answer_rejects_text() -> None:
    with pytest.raises(ValueError, match="Expecting value"):
        parse_json_answer("hello")


def test_regex_validator() -> None:
    checks = AnswerChecks((), pattern=re.compile(r"^\d+$"))
    assert checks.first_failure(answer_of(chat_reply("42")), PLAIN_BODY) is None
    failure = checks.first_failure(answer_of(chat_reply("forty")), PLAIN_BODY)
    assert failure is not None
    assert failure.check == "validator"
    assert failure.reason == r"the answer does not match /^\d+$/"


def reject_short(text: str, body: Mapping[str, Any]) -> bool | str | None:
    """A validator used by the tests below, loaded by name."""
    return None if len(text) >= 5 else f"only {len(text)} characters"


def test_function_validator_from_config() -> None:
    config = parse_routing_config(
        {
            "routes": {
                "r": {
                    "models": ["a", "b"],
                    "policy": "cascade",
                    "checks": [],
                    "validator": {"function": "tests.test_routing_checks:reject_short"},
                }
            }
        }
    )
    router = config.routes["r"]
    failure = router.check_answer(PLAIN_BODY, chat_reply("abc"))
    assert failure is not None
    assert failure.check == "validator tests.test_routing_checks:reject_short"
    assert failure.reason == "only 3 characters"
    assert router.check_answer(PLAIN_BODY, chat_reply("abcdef")) is None


def test_load_validator_errors() -> None:
    with pytest.raises(ConfigError, match="name a function as module:function"):
        load_validator("nocolon", "where")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        load_validator("no_such_module_xyz:f", "where")
    with pytest.raises(ConfigError, match="has no function 'missing'"):
        load_validator("tests.test_routing_checks:missing", "where")
