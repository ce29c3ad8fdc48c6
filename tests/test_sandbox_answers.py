"""Sandbox controls aimed at one model: ``X-Sandbox-Answer`` and ``X-Sandbox-Fault: model=``."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from thrifty.sandbox.controls import JSON_ANSWER, REFUSAL_TEXT, parse_answer, parse_fault
from thrifty.sandbox.errors import ApiError
from thrifty.tokens import get_encoding

MESSAGES: Any = [{"role": "user", "content": "Give me a name."}]


@pytest.fixture
def client(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)


def _tokens(text: str) -> int:
    return len(get_encoding("o200k_base").encode(text))


@pytest.mark.parametrize(
    ("kind", "text"), [("json", JSON_ANSWER), ("refusal", REFUSAL_TEXT), ("empty", "")]
)
def test_answer_replaces_chat_filler(client: openai.OpenAI, kind: str, text: str) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=8,
        extra_headers={"X-Sandbox-Answer": kind},
    )
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == _tokens(text)


def test_answer_for_other_model_keeps_filler(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=8,
        extra_headers={"X-Sandbox-Answer": "json, model=gpt-4o"},
    )
    assert completion.choices[0].message.content != JSON_ANSWER
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8


def test_json_answer_streams_whole(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Sandbox-Answer": "json, model=gpt-4o"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == json.loads(JSON_ANSWER)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == _tokens(JSON_ANSWER)


def test_anthropic_refusal_answer_ends_turn(sandbox_url: str) -> None:
    claude = anthropic.Anthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)
    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=8,
        messages=MESSAGES,
        extra_headers={"X-Sandbox-Answer": "refusal"},
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == REFUSAL_TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == _tokens(REFUSAL_TEXT)


def test_fault_hits_only_named_model(client: openai.OpenAI) -> None:
    headers = {"X-Sandbox-Fault": "status=503, model=gpt-4o-mini"}
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=2, extra_headers=headers
        )
    served = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=2, extra_headers=headers
    )
    assert served.usage is not None
    assert served.usage.completion_tokens == 2


def test_fault_model_on_body_without_model(sandbox_url: str) -> None:
    response = httpx.get(
        f"{sandbox_url}/v1/models",
        headers={"authorization": "Bearer sk", "X-Sandbox-Fault": "status=500, model=gpt-4o"},
    )
    assert response.status_code == 200


def test_parse_controls_with_models() -> None:
    fault = parse_fault("rate_limit=2; model=a; model=b")
    answer = parse_answer("refusal, model=a")
    assert fault.retry_after_s == 2
    assert fault.models == frozenset({"a", "b"})
    assert answer.kind == "refusal"
    assert answer.models == frozenset({"a"})


@pytest.mark.parametrize("header", ["model=", "shouting", "json=1"])
def test_parse_answer_rejects_invalid(header: str) -> None:
    with pytest.raises(ApiError):
        parse_answer(header)
