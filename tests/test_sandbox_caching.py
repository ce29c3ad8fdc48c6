"""Prompt caching in the sandbox: OpenAI's automatic prefix cache and Anthropic's breakpoints.

Each test runs its own sandbox with a clock the test advances, so lifetimes
are checked without sleeping.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from thrifty.sandbox import SandboxServer, SandboxSettings
from thrifty.sandbox.prompt_cache import OpenAIPromptCache
from thrifty.tokens import count_chat_messages

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    O200K = bpe_openai.get_encoding("o200k_base")


class ManualClock:
    """A monotonic clock that the test advances by hand."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ClockedSandbox:
    url: str
    clock: ManualClock

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-test", max_retries=0)

    def claude(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def sandbox() -> Iterator[ClockedSandbox]:
    clock = ManualClock()
    with SandboxServer(SandboxSettings(clock=clock)) as server:
        yield ClockedSandbox(server.url, clock)


def document(words: int) -> str:
    """Return a text of about ``words`` tokens that no other test sends."""
    tag = uuid.uuid4().hex[:8]
    return f"Document {tag}. " + " ".join(f"item{index % 97} value" for index in range(words // 3))


def tokens(text: str) -> int:
    return len(O200K.encode(text))


def cache_boundary(shared_tokens: int) -> int:
    """OpenAI's cached_tokens for a shared prefix: 0 below 1,024, then 128-token steps."""
    if shared_tokens < 1024:
        return 0
    return 1024 + (shared_tokens - 1024) // 128 * 128


def cached_tokens(client: openai.OpenAI, model: str, messages: list[dict[str, str]]) -> int:
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens is not None
    return reply.usage.prompt_tokens_details.cached_tokens


# OpenAI


def test_openai_repeat_reads_whole_steps(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    messages = [{"role": "user", "content": document(1500)}]
    prompt_tokens = count_chat_messages(messages, "gpt-4o-mini")
    assert prompt_tokens > 1200

    assert cached_tokens(client, "gpt-4o-mini", messages) == 0
    second = cached_tokens(client, "gpt-4o-mini", messages)
    assert second == cache_boundary(prompt_tokens)
    assert second % 128 == 0
    assert prompt_tokens - 128 < second <= prompt_tokens


def test_openai_short_prompts_are_never_cached(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    messages = [{"role": "user", "content": document(900)}]
    assert count_chat_messages(messages, "gpt-4o-mini") < 1024
    assert cached_tokens(client, "gpt-4o-mini", messages) == 0
    assert cached_tokens(client, "gpt-4o-mini", messages) == 0


def test_openai_cache_stops_at_the_shared_prefix(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    system = {"role": "system", "content": document(1800)}
    first = [system, {"role": "user", "content": "alpha question"}]
    second = [system, {"role": "user", "content": "omega question"}]
    # Shared: the system message, then <|im_start|>user<|im_sep|> of the next one.
    shared = count_chat_messages([system], "gpt-4o-mini") - 3 + 1 + tokens("user") + 1

    assert cached_tokens(client, "gpt-4o-mini", first) == 0
    assert cached_tokens(client, "gpt-4o-mini", second) == cache_boundary(shared)


def test_openai_cache_is_per_model(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    messages = [{"role": "user", "content": document(1500)}]
    assert cached_tokens(client, "gpt-4o-mini", messages) == 0
    assert cached_tokens(client, "gpt-4.1-mini", messages) == 0
    assert cached_tokens(client, "gpt-4o-mini", messages) > 0


def test_openai_cache_expires_after_its_lifetime(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    messages = [{"role": "user", "content": document(1500)}]
    prompt_tokens = count_chat_messages(messages, "gpt-4o-mini")
    assert cached_tokens(client, "gpt-4o-mini", messages) == 0

    sandbox.clock.advance(599)
    assert cached_tokens(client, "gpt-4o-mini", messages) == cache_boundary(prompt_tokens)
    # The hit renewed the entry for another 600 seconds.
    sandbox.clock.advance(599)
    assert cached_tokens(client, "gpt-4o-mini", messages) == cache_boundary(prompt_tokens)
    sandbox.clock.advance(601)
    assert cached_tokens(client, "gpt-4o-mini", messages) == 0


def test_openai_responses_report_cached_tokens(sandbox: ClockedSandbox) -> None:
    client = sandbox.openai()
    text = document(1500)
    first = client.responses.create(model="gpt-4o", input=text, max_output_tokens=16)
    second = client.responses.create(model="gpt-4o", input=text, max_output_tokens=16)
    assert first.usage is not None
    assert second.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert second.usage.input_tokens_details.cached_tokens == cache_boundary(
        first.usage.input_tokens
    )
    assert second.usage.input_tokens == first.usage.input_tokens


def test_openai_cache_is_bounded() -> None:
    cache = OpenAIPromptCache(ttl_s=600, max_entries=10, clock=lambda: 0.0)
    for start in range(20):
        cache.cached_tokens("gpt-4o", list(range(start, start + 1024 + 128 * 3)))
    assert len(cache.entries) == 10


# Anthropic


def system_blocks(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = (
        {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    )
    return [{"type": "text", "text": text, "cache_control": control}]


def ask(
    claude: anthropic.Anthropic, model: str, system: Any, question: str = "What is in it?"
) -> anthropic.types.Usage:
    reply = claude.messages.create(
        model=model, max_tokens=1, system=system, messages=[{"role": "user", "content": question}]
    )
    return reply.usage


def test_anthropic_writes_then_reads(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(1500)
    system = system_blocks(text)
    question_tokens = 3 + tokens("What is in it?")

    first = ask(claude, "claude-sonnet-4-5", system)
    assert first.cache_creation_input_tokens == tokens(text)
    assert first.cache_read_input_tokens == 0
    assert first.input_tokens == question_tokens
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == tokens(text)
    assert first.cache_creation.ephemeral_1h_input_tokens == 0

    second = ask(claude, "claude-sonnet-4-5", system, "Another question?")
    assert second.cache_read_input_tokens == tokens(text)
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == 3 + tokens("Another question?")


def test_anthropic_below_minimum_is_not_cached(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(700)
    assert tokens(text) < 1024
    for _ in range(2):
        usage = ask(claude, "claude-sonnet-4-5", system_blocks(text))
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0
        assert usage.input_tokens == tokens(text) + 3 + tokens("What is in it?")


def test_anthropic_haiku_needs_2048_tokens(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    middle = document(1500)
    long = document(2600)
    assert 1024 <= tokens(middle) < 2048
    assert tokens(long) >= 2048

    assert (
        ask(claude, "claude-3-5-haiku-latest", system_blocks(middle)).cache_creation_input_tokens
        == 0
    )
    assert ask(
        claude, "claude-sonnet-4-5", system_blocks(middle)
    ).cache_creation_input_tokens == tokens(middle)
    assert ask(
        claude, "claude-3-5-haiku-latest", system_blocks(long)
    ).cache_creation_input_tokens == tokens(long)


def test_anthropic_5m_and_1h_lifetimes(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    short_lived = document(1500)
    long_lived = document(1500)

    five = ask(claude, "claude-sonnet-4-5", system_blocks(short_lived, "5m"))
    hour = ask(claude, "claude-sonnet-4-5", system_blocks(long_lived, "1h"))
    assert five.cache_creation is not None
    assert hour.cache_creation is not None
    assert five.cache_creation.ephemeral_5m_input_tokens == tokens(short_lived)
    assert hour.cache_creation.ephemeral_1h_input_tokens == tokens(long_lived)
    assert hour.cache_creation.ephemeral_5m_input_tokens == 0

    sandbox.clock.advance(301)
    assert (
        ask(claude, "claude-sonnet-4-5", system_blocks(short_lived, "5m")).cache_read_input_tokens
        == 0
    )
    assert ask(
        claude, "claude-sonnet-4-5", system_blocks(long_lived, "1h")
    ).cache_read_input_tokens == tokens(long_lived)

    sandbox.clock.advance(3601)
    expired = ask(claude, "claude-sonnet-4-5", system_blocks(long_lived, "1h"))
    assert expired.cache_read_input_tokens == 0
    assert expired.cache_creation_input_tokens == tokens(long_lived)


def test_anthropic_hit_renews_the_entry(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(1500)
    ask(claude, "claude-sonnet-4-5", system_blocks(text))
    sandbox.clock.advance(200)
    assert ask(claude, "claude-sonnet-4-5", system_blocks(text)).cache_read_input_tokens == tokens(
        text
    )
    sandbox.clock.advance(200)
    assert ask(claude, "claude-sonnet-4-5", system_blocks(text)).cache_read_input_tokens == tokens(
        text
    )


def test_anthropic_mixed_lifetimes_split_the_write(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    system_text = document(1200)
    context = document(800)
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": context, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Question?"},
            ],
        }
    ]
    first = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        system=system_blocks(system_text, "1h"),
        messages=messages,
    ).usage
    context_tokens = 3 + tokens(context)
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == tokens(system_text)
    assert first.cache_creation.ephemeral_5m_input_tokens == context_tokens
    assert first.cache_creation_input_tokens == tokens(system_text) + context_tokens
    assert first.input_tokens == tokens("Question?")

    second = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        system=system_blocks(system_text, "1h"),
        messages=messages,
    ).usage
    assert second.cache_read_input_tokens == tokens(system_text) + context_tokens
    assert second.cache_creation_input_tokens == 0


def test_anthropic_growing_conversation_reads_earlier_breakpoint(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(1500)
    turn: Any = {
        "role": "user",
        "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
    }
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=1, messages=[turn])

    longer: Any = [
        {"role": "user", "content": [{"type": "text", "text": text}]},
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Go on.", "cache_control": {"type": "ephemeral"}}],
        },
    ]
    usage = claude.messages.create(model="claude-sonnet-4-5", max_tokens=1, messages=longer).usage
    first_turn = 3 + tokens(text)
    later_turns = 3 + tokens("Noted.") + 3 + tokens("Go on.")
    assert usage.cache_read_input_tokens == first_turn
    assert usage.cache_creation_input_tokens == later_turns
    assert usage.input_tokens == 0


def test_anthropic_tool_breakpoint_caches_tools(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    tool: Any = {
        "name": "lookup",
        "description": document(1500),
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral"},
    }
    first = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        tools=[tool],
        messages=[{"role": "user", "content": "Hi"}],
    ).usage
    second = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        tools=[tool],
        messages=[{"role": "user", "content": "Hey"}],
    ).usage
    assert first.cache_creation_input_tokens is not None
    assert first.cache_creation_input_tokens > 1024
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.input_tokens == 3 + tokens("Hey")


def test_anthropic_cache_is_per_model(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    system = system_blocks(document(1500))
    ask(claude, "claude-sonnet-4-5", system)
    assert ask(claude, "claude-opus-4-1", system).cache_read_input_tokens == 0


def test_anthropic_stream_start_reports_cache_usage(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(1500)
    ask(claude, "claude-sonnet-4-5", system_blocks(text))
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=3,
        system=system_blocks(text),  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Hi"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.cache_read_input_tokens == tokens(text)
    assert final.usage.cache_read_input_tokens == tokens(text)
    assert final.usage.input_tokens == 3 + tokens("Hi")
    assert final.usage.output_tokens == 3


def test_anthropic_automatic_caching_marks_last_block(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    text = document(1500)
    messages: Any = [{"role": "user", "content": text}]
    first = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1,
        messages=messages,
        extra_body={"cache_control": {"type": "ephemeral"}},
    ).usage
    assert first.cache_creation_input_tokens == 3 + tokens(text)
    assert first.input_tokens == 0


def test_anthropic_more_than_four_breakpoints_is_a_400(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    system = [
        {"type": "text", "text": f"part {index}", "cache_control": {"type": "ephemeral"}}
        for index in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(claude, "claude-sonnet-4-5", system)
    assert (
        "A maximum of 4 blocks with cache_control may be provided. Found 5." in caught.value.message
    )


def test_anthropic_1h_after_5m_is_a_400(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    system = [*system_blocks("first", "5m"), *system_blocks("second", "1h")]
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(claude, "claude-sonnet-4-5", system)
    assert "system.1.cache_control" in caught.value.message


def test_anthropic_unknown_ttl_is_a_400(sandbox: ClockedSandbox) -> None:
    claude = sandbox.claude()
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(claude, "claude-sonnet-4-5", system_blocks("text", "2h"))
    assert "ttl" in caught.value.message
