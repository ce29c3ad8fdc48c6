"""Provider prompt caching: fingerprints, breakpoints, prompt_cache_key, and the gateway step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anthropic
import pytest
from starlette.requests import Request

from tests.test_cache_gateway import cache_gateway
from thrifty.cache.config import PromptCachingConfig
from thrifty.cache.prompt_layout import (
    Fingerprint,
    PrefixRecurrence,
    add_anthropic_breakpoints,
    fingerprint,
    prompt_cache_key,
)
from thrifty.cache.prompt_step import PromptCachingStep
from thrifty.config import ProviderConfig
from thrifty.gateway.attribution import Attribution
from thrifty.gateway.endpoints import CHAT_COMPLETIONS
from thrifty.gateway.metering import Call
from thrifty.gateway.upstream import Target

LONG_SYSTEM = "\n".join(
    f"Rule {n}: answer in plain words and cite the manual page." for n in range(160)
)


def messages_body(system: Any = LONG_SYSTEM, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "system": system,
        "messages": [{"role": "user", "content": "How do I reset the router?"}],
        **extra,
    }


def test_fingerprint_orders_tools_system_messages() -> None:
    tools = [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}]
    found = fingerprint("messages", messages_body(tools=tools))
    assert [segment.kind for segment in found.segments] == [
        "tool",
        "tool",
        "system",
        "message:user",
    ]
    assert found.breakpoints == 0
    assert len(found.pieces) > 1
    assert "".join(p.digest for p in found.pieces) != ""


def test_fingerprint_ignores_cache_control_in_digests() -> None:
    marked = messages_body(
        system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    )
    plain = messages_body(system=[{"type": "text", "text": LONG_SYSTEM}])
    assert fingerprint("messages", marked).segments == fingerprint("messages", plain).segments
    assert fingerprint("messages", marked).breakpoints == 1


def test_fingerprint_json_scales_to_billed_tokens() -> None:
    found = fingerprint(
        "chat.completions", {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}
    )
    data = found.to_json(scale_to=200)
    assert sum(tokens for _, tokens, _ in data["segments"]) == 200
    assert Fingerprint.from_json(data).segments[0].tokens == 200


def test_breakpoint_goes_after_system_prompt() -> None:
    changed = add_anthropic_breakpoints(messages_body(), PrefixRecurrence())
    assert changed is not None
    assert changed["system"] == [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert changed["messages"] == messages_body()["messages"]


def test_breakpoint_after_leading_documents_and_conversation() -> None:
    body = messages_body(
        system="Be brief.",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": LONG_SYSTEM},
                    {"type": "text", "text": "Summarize the manual."},
                ],
            },
            {"role": "assistant", "content": "It covers routers."},
            {"role": "user", "content": "And resets?"},
        ],
    )
    changed = add_anthropic_breakpoints(body, PrefixRecurrence())
    assert changed is not None
    first = changed["messages"][0]["content"]
    assert first[0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in first[1]
    assert changed["messages"][-1]["content"] == [
        {"type": "text", "text": "And resets?", "cache_control": {"type": "ephemeral"}}
    ]


def test_short_prefix_and_client_breakpoints_are_left_alone() -> None:
    assert add_anthropic_breakpoints(messages_body(system="Be brief."), PrefixRecurrence()) is None
    marked = messages_body(
        system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    )
    assert add_anthropic_breakpoints(marked, PrefixRecurrence()) is None


def test_one_hour_lifetime_for_slow_recurrence() -> None:
    recurrence = PrefixRecurrence()
    assert recurrence.lifetime("p", now=0.0) == "5m"
    assert recurrence.lifetime("p", now=100.0) == "5m"
    assert recurrence.lifetime("p", now=700.0) == "1h"
    assert recurrence.lifetime("p", now=5000.0) == "5m"
    body = messages_body()
    add_anthropic_breakpoints(body, recurrence, now=6000.0)
    changed = add_anthropic_breakpoints(body, recurrence, now=6400.0)
    assert changed is not None
    assert changed["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


@pytest.mark.parametrize(
    ("source", "feature", "session", "expected"),
    [
        ("feature", "docs", "s1", "thrifty-feature:docs"),
        ("session", "docs", "s1", "thrifty-session:s1"),
        ("session", "docs", None, None),
        ("off", "docs", "s1", None),
    ],
)
def test_prompt_cache_key_source(
    source: str, feature: str | None, session: str | None, expected: str | None
) -> None:
    assert prompt_cache_key(source, feature, session) == expected


def test_long_cache_key_is_hashed() -> None:
    key = prompt_cache_key("feature", "f" * 100, None)
    assert key is not None
    assert len(key) <= 64
    assert key.startswith("thrifty-feature:")


def test_gateway_adds_breakpoints_for_opted_in_feature(tmp_path: Any) -> None:
    section = {"prompt_caching": {"features": ["manuals"]}}
    with cache_gateway(tmp_path, section) as running:
        claude = anthropic.Anthropic(base_url=running.url, api_key="sk-ant", max_retries=0)
        records = []
        for feature in ("manuals", "manuals", "chat", "chat"):
            raw = claude.messages.with_raw_response.create(
                **messages_body(system=LONG_SYSTEM + f"\nEdition for {feature}."),
                extra_headers={"X-Thrifty-Feature": feature},
            )
            records.append(running.record(raw.headers["x-thrifty-request-id"]))
    manuals_first, manuals_second, chat_first, chat_second = records
    assert manuals_first.cache_write_tokens > 1024
    assert manuals_second.cache_read_tokens == manuals_first.cache_write_tokens
    assert chat_first.cache_write_tokens == 0
    assert chat_second.cache_read_tokens == 0
    assert chat_second.details["prompt"]["breakpoints"] == 0
    assert [kind for kind, _, _ in chat_second.details["prompt"]["segments"]] == [
        "system",
        "message:user",
    ]
    total = sum(tokens for _, tokens, _ in chat_second.details["prompt"]["segments"])
    assert total == chat_second.input_tokens


def openai_call(feature: str | None, session: str | None = None) -> Call:
    return Call(
        request_id="req_1",
        endpoint=CHAT_COMPLETIONS,
        target=Target(
            ProviderConfig("openai", "openai", "http://127.0.0.1:1"), "gpt-4o-mini", False
        ),
        attribution=Attribution(feature=feature, session=session),
        model_requested="gpt-4o-mini",
        streamed=False,
        tier_requested=None,
        started_at=datetime.now(UTC),
        started=0.0,
    )


async def test_step_sets_prompt_cache_key() -> None:
    step = PromptCachingStep(PromptCachingConfig(features=("docs",)))
    request = Request({"type": "http", "headers": []})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    opted = await step.prepare(openai_call("docs"), request, body)
    other = await step.prepare(openai_call("chat"), request, body)
    own = await step.prepare(openai_call("docs"), request, {**body, "prompt_cache_key": "mine"})
    assert isinstance(opted, dict)
    assert opted["prompt_cache_key"] == "thrifty-feature:docs"
    assert other is body
    assert isinstance(own, dict)
    assert own["prompt_cache_key"] == "mine"
