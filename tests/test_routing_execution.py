"""Route execution decisions: candidate order, Retry-After, and answers read from streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from thrifty.errors import ConfigError
from thrifty.routing import parse_routing_config
from thrifty.routing.execution import plan_route, retry_after_s, retry_wait_s
from thrifty.routing.stream_answer import answer_of_events

ROUTING = {
    "routes": {
        "cascade": {
            "models": ["a", "b", "c"],
            "policy": "cascade",
            "fallbacks": ["z", "b"],
            "retry_after_max_s": 2,
        },
        "rules": {"models": ["a", "b", "c"], "policy": "rules", "otherwise": "b"},
    }
}


def test_plan_cascade_then_fallbacks() -> None:
    router = parse_routing_config(ROUTING).routes["cascade"]
    plan = plan_route(router, router.decide({"messages": []}))
    assert plan.candidates == ("a", "b", "c", "z")
    assert plan.checked


def test_plan_rules_falls_back_stronger_first() -> None:
    router = parse_routing_config(ROUTING).routes["rules"]
    plan = plan_route(router, router.decide({"messages": []}))
    assert plan.candidates == ("b", "c", "a")
    assert not plan.checked


def test_retry_wait_only_within_limit() -> None:
    router = parse_routing_config(ROUTING).routes["cascade"]
    plan = plan_route(router, router.decide({"messages": []}))
    assert retry_wait_s(plan, 429, {"retry-after": "1.5"}) == 1.5
    assert retry_wait_s(plan, 503, {"retry-after-ms": "250"}) == 0.25
    assert retry_wait_s(plan, 429, {"retry-after": "3"}) is None
    assert retry_wait_s(plan, 500, {"retry-after": "1"}) is None
    assert retry_wait_s(plan, 429, {}) is None


def test_retry_wait_off_without_setting() -> None:
    router = parse_routing_config(ROUTING).routes["rules"]
    plan = plan_route(router, router.decide({"messages": []}))
    assert retry_wait_s(plan, 429, {"retry-after": "0"}) is None


def test_retry_after_http_date() -> None:
    moment = datetime.now(UTC) + timedelta(seconds=30)
    wait = retry_after_s({"retry-after": format_datetime(moment, usegmt=True)})
    assert wait is not None
    assert 28 <= wait <= 30


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_retry_after_invalid_is_none(value: str) -> None:
    assert retry_after_s({"retry-after": value}) is None


def test_answer_of_chat_chunks() -> None:
    answer = answer_of_events(
        [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": '{"a"'}}]},
            {"choices": [{"index": 0, "delta": {"content": ": 1}"}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 3}},
        ]
    )
    assert answer.text == '{"a": 1}'
    assert answer.stop_reason == "stop"
    assert answer.refusal is None


def test_answer_of_chat_refusal_and_tools() -> None:
    answer = answer_of_events(
        [
            {"choices": [{"index": 0, "delta": {"refusal": "No."}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]},
        ]
    )
    assert answer.refusal == "No."
    assert answer.tool_calls == 1


def test_answer_of_anthropic_events() -> None:
    answer = answer_of_events(
        [
            {"type": "message_start", "message": {}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use"}},
            {"type": "message_delta", "delta": {"stop_reason": "refusal"}},
            {"type": "message_stop"},
        ]
    )
    assert answer.text == "Hi"
    assert answer.tool_calls == 1
    assert answer.stop_reason == "refusal"


def test_answer_of_responses_completed() -> None:
    response = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Done"}]}]
    }
    answer = answer_of_events(
        [
            {"type": "response.output_text.delta", "delta": "Do"},
            {"type": "response.completed", "response": response},
        ]
    )
    assert answer.text == "Done"


@pytest.mark.parametrize("value", [-1, "soon", True])
def test_retry_after_max_s_rejects_invalid(value: object) -> None:
    route = {"models": ["a"], "policy": "rules", "retry_after_max_s": value}
    with pytest.raises(ConfigError, match="retry_after_max_s"):
        parse_routing_config({"routes": {"r": route}})
