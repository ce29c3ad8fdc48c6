"""The sandbox's building blocks: filler text, prompt templates, header parsing, cache tables."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.sandbox.anthropic_prompt import prompt_blocks
from thrifty.sandbox.catalog import anthropic_cache_minimum, is_reasoning_model
from thrifty.sandbox.controls import Fault, parse_fault, parse_pacing
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.filler import FILLER_PASSAGE, chunk_token_counts, filler_chunks, filler_text
from thrifty.sandbox.openai_prompt import chat_prompt_tokens
from thrifty.sandbox.output import MAX_OUTPUT_TOKENS, plan_output
from thrifty.sandbox.prompt_cache import (
    ANTHROPIC_TTL_1H_S,
    ANTHROPIC_TTL_5M_S,
    AnthropicPromptCache,
    CacheBlock,
    ExpiringLru,
)
from thrifty.sandbox.settings import SandboxSettings
from thrifty.tokens import count_chat_messages, get_encoding

ENCODINGS = ("o200k_base", "cl100k_base")


@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_filler_encodes_to_exact_counts(encoding_name: str) -> None:
    encoding = get_encoding(encoding_name)
    wrong = [
        count
        for count in [*range(0, 400), 1024, 4095, 16_384]
        if len(encoding.encode(filler_text(encoding_name, count))) != count
    ]
    assert wrong == []


@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_filler_chunks_join_to_the_text(encoding_name: str) -> None:
    encoding = get_encoding(encoding_name)
    for count, per_chunk in [(1, 4), (10, 4), (37, 3), (100, 1), (64, 16)]:
        chunks = filler_chunks(encoding_name, count, per_chunk)
        assert "".join(chunks) == filler_text(encoding_name, count)
        assert [len(encoding.encode(chunk)) for chunk in chunks] == chunk_token_counts(
            count, per_chunk
        )


def test_filler_starts_with_the_passage() -> None:
    text = filler_text("o200k_base", 200)
    assert text.startswith(FILLER_PASSAGE + " " + FILLER_PASSAGE)


def test_chunk_token_counts_cover_the_total() -> None:
    assert chunk_token_counts(10, 4) == [4, 4, 2]
    assert chunk_token_counts(8, 4) == [4, 4]
    assert chunk_token_counts(0, 4) == []


def test_output_plan_reasoning_share() -> None:
    output = plan_output("o200k_base", 21, 16, 0.5)
    assert output.tokens == 21
    assert output.reasoning_tokens == 10
    assert output.text_tokens == 11
    assert output.capped is True
    default = plan_output("o200k_base", None, 16, 0.0)
    assert default.tokens == 16
    assert default.capped is False


MESSAGE_SETS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?", "name": "bob"},
        {"role": "assistant", "content": None},
    ],
    [
        {
            "role": "user",
            "content": [{"type": "text", "text": "part one "}, {"type": "text", "text": "two"}],
        }
    ],
    [{"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"}],
    [{"role": "user", "content": "<|endoftext|> is plain text here"}],
]


@pytest.mark.parametrize("messages", MESSAGE_SETS)
@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4"])
def test_chat_template_length_matches_count(messages: list[dict[str, Any]], model: str) -> None:
    encoding_name = "cl100k_base" if model == "gpt-4" else "o200k_base"
    assert len(chat_prompt_tokens(messages, encoding_name)) == count_chat_messages(messages, model)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini", True),
        ("gpt-5", True),
        ("gpt-5-mini", True),
        ("gpt-5-chat-latest", False),
        ("gpt-4o", False),
        ("gpt-4.1-nano", False),
        ("openai/o3", True),
    ],
)
def test_reasoning_models(model: str, expected: bool) -> None:
    assert is_reasoning_model(model) is expected


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-sonnet-4-5", 1024),
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-opus-4-1", 1024),
        ("claude-3-5-haiku-latest", 2048),
        ("claude-3-haiku-20240307", 2048),
        ("claude-haiku-4-5", 4096),
        ("claude-opus-4-5", 4096),
        ("claude-opus-5", 512),
        ("claude-unknown-9", 1024),
    ],
)
def test_anthropic_cache_minimums(model: str, minimum: int) -> None:
    assert anthropic_cache_minimum(model) == minimum


def test_parse_fault_items() -> None:
    assert parse_fault(None) == Fault()
    assert parse_fault("status=502") == Fault(status=502)
    parsed = parse_fault("delay_ms=15; disconnect_after_chunks=4, rate_limit=2")
    assert parsed.delay_ms == 15.0
    assert parsed.disconnect_after_chunks == 4
    assert parsed.retry_after_s == 2.0
    assert parsed.rate_limited is True
    assert parse_fault("rate_limit").retry_after_s == 1.0


@pytest.mark.parametrize(
    "header", ["status=abc", "status=600", "delay_ms=-1", "disconnect_after_chunks=x", "boom"]
)
def test_parse_fault_rejects_invalid_items(header: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_fault(header)
    assert caught.value.status == 400
    assert "x-sandbox-fault" in caught.value.message


def test_parse_pacing_overrides_settings() -> None:
    settings = SandboxSettings(time_to_first_token_ms=100, tokens_per_second=50)
    assert parse_pacing(None, settings).time_to_first_token_s == 0.1
    assert parse_pacing(None, settings).tokens_per_second == 50
    pacing = parse_pacing("ttft_ms=250,tps=20", settings)
    assert pacing.time_to_first_token_s == 0.25
    assert pacing.seconds_for(10) == 0.5
    assert parse_pacing("tps=0", settings).seconds_for(10) == 0.0


def test_expiring_lru_expires_and_evicts() -> None:
    table = ExpiringLru(max_entries=2)
    table.put("a", now=0, lifetime=10)
    assert table.lifetime("a", now=9.9) == 10
    assert table.lifetime("a", now=10) is None
    assert len(table) == 0

    table.put("a", now=0, lifetime=10)
    table.put("b", now=0, lifetime=10)
    table.put("c", now=0, lifetime=10)
    assert table.lifetime("a", now=1) is None
    assert table.lifetime("c", now=1) == 10


def test_expiring_lru_renewal_keeps_a_longer_expiry() -> None:
    table = ExpiringLru(max_entries=4)
    table.put("k", now=0, lifetime=3600)
    table.put("k", now=10, lifetime=300)
    assert table.lifetime("k", now=3000) == 3600


def blocks(*ends_and_ttls: tuple[int, float | None]) -> list[CacheBlock]:
    return [
        CacheBlock(end=end, digest=f"d{index}".encode(), ttl_s=ttl)
        for index, (end, ttl) in enumerate(ends_and_ttls)
    ]


def test_anthropic_cache_split_by_lifetime() -> None:
    cache = AnthropicPromptCache(max_entries=100, clock=lambda: 0.0)
    prompt = blocks(
        (2000, ANTHROPIC_TTL_1H_S), (3000, None), (3500, ANTHROPIC_TTL_5M_S), (3600, None)
    )
    first = cache.apply("claude-sonnet-4-5", prompt, minimum=1024)
    assert first.read_tokens == 0
    assert first.write_1h_tokens == 2000
    assert first.write_5m_tokens == 1500

    second = cache.apply("claude-sonnet-4-5", prompt, minimum=1024)
    assert second.read_tokens == 3500
    assert second.write_tokens == 0


def test_anthropic_cache_skips_short_breakpoints() -> None:
    cache = AnthropicPromptCache(max_entries=100, clock=lambda: 0.0)
    prompt = blocks((500, ANTHROPIC_TTL_5M_S), (1500, ANTHROPIC_TTL_5M_S))
    usage = cache.apply("claude-sonnet-4-5", prompt, minimum=1024)
    assert usage.write_5m_tokens == 1500
    assert (
        cache.apply(
            "claude-sonnet-4-5", blocks((500, ANTHROPIC_TTL_5M_S)), minimum=1024
        ).read_tokens
        == 0
    )


def conversation(first_digest: bytes, later_blocks: int) -> list[CacheBlock]:
    """A cached first block, ``later_blocks`` more, and a breakpoint on the last one."""
    result = [CacheBlock(end=2000, digest=first_digest)]
    result += [
        CacheBlock(end=2000 + index, digest=f"later{index}".encode())
        for index in range(1, later_blocks)
    ]
    last = f"last{later_blocks}".encode()
    result.append(CacheBlock(end=2000 + later_blocks, digest=last, ttl_s=ANTHROPIC_TTL_5M_S))
    return result


def test_anthropic_lookback_is_20_blocks() -> None:
    cache = AnthropicPromptCache(max_entries=100, clock=lambda: 0.0)
    written = CacheBlock(end=2000, digest=b"first", ttl_s=ANTHROPIC_TTL_5M_S)
    cache.apply("m", [written], minimum=1024)
    # The breakpoint block and the 19 before it are checked; the 21st back is not.
    assert cache.apply("m", conversation(b"first", 19), minimum=1024).read_tokens == 2000
    assert cache.apply("m", conversation(b"first", 20), minimum=1024).read_tokens == 0


def test_prompt_blocks_hash_ignores_cache_control() -> None:
    plain = prompt_blocks({"messages": [{"role": "user", "content": "hello"}]})
    marked = prompt_blocks(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ]
        }
    )
    assert plain[0].digest == marked[0].digest
    assert plain[0].end == marked[0].end
    assert plain[0].ttl_s is None
    assert marked[0].ttl_s == ANTHROPIC_TTL_5M_S


def test_prompt_blocks_reject_empty_messages() -> None:
    with pytest.raises(ApiError) as caught:
        prompt_blocks({"messages": []})
    assert caught.value.status == 400
    assert "messages" in caught.value.message


def test_output_limit_above_maximum_rejected() -> None:
    with pytest.raises(ApiError) as raised:
        plan_output("o200k_base", MAX_OUTPUT_TOKENS + 1, 16, 0.0)

    assert raised.value.status == 400
    assert plan_output("o200k_base", MAX_OUTPUT_TOKENS, 16, 0.0).tokens == MAX_OUTPUT_TOKENS
