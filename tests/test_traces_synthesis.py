"""Prompt synthesis: exact token counts, prefix blocks and block boundaries."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from tests.services import require_shared_data
from thrifty.tokens import count_chat_messages, encoding_for_model
from thrifty.traces import BLOCK_TOKENS, PromptBuilder, TraceRow, read_trace
from thrifty.traces.synthesis import filler_words

# gpt-4o-mini counts with o200k_base, gpt-4 with cl100k_base.
MODELS = ("gpt-4o-mini", "gpt-4")

SIZES = [*range(40), *range(40, 5_000, 97), 8_191, 8_192, 20_000]


def row(
    input_tokens: int, output_tokens: int = 10, *, line: int = 1, blocks: tuple[int, ...] = ()
) -> TraceRow:
    return TraceRow(
        offset_s=0.0,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prefix_blocks=blocks,
        line=line,
    )


def token_count(text: str, model: str) -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


@pytest.mark.parametrize("model", MODELS)
def test_overhead_is_empty_user_message(model: str) -> None:
    builder = PromptBuilder(model)

    assert builder.overhead == count_chat_messages([{"role": "user", "content": ""}], model)
    assert builder.overhead == 7


@pytest.mark.parametrize("model", MODELS)
def test_prompt_count_exact_over_sizes(model: str) -> None:
    builder = PromptBuilder(model)

    for line, size in enumerate(SIZES, start=1):
        prompt = builder.build(row(size, line=line))
        expected = max(size, builder.overhead)
        assert prompt.input_tokens == expected, size
        assert count_chat_messages(prompt.messages, model) == expected, size


@pytest.mark.parametrize("model", MODELS)
def test_block_prompts_exact_over_sizes(model: str) -> None:
    builder = PromptBuilder(model)
    blocks = (11, 12, 13, 14)

    # Cut inside each block, at block ends, and padded past the last block.
    for size in [1, 8, 300, 519, 520, 1_031, 1_032, 2_055, 2_056, 2_100, 5_000]:
        prompt = builder.build(row(size, blocks=blocks))
        expected = max(size, builder.overhead)
        assert prompt.input_tokens == expected, size
        assert count_chat_messages(prompt.messages, model) == expected, size


@pytest.mark.parametrize("model", MODELS)
def test_mooncake_real_rows_exact(model: str) -> None:
    path = require_shared_data("traces/mooncake_conversation.jsonl")
    builder = PromptBuilder(model)

    for trace_row in islice(read_trace(path), 200):
        prompt = builder.build(trace_row)
        assert count_chat_messages(prompt.messages, model) == trace_row.input_tokens
        assert prompt.max_tokens == trace_row.output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_azure_real_rows_exact(model: str) -> None:
    path = require_shared_data("traces/azure_llm_2023_code.csv")
    builder = PromptBuilder(model)

    for trace_row in islice(read_trace(path), 300):
        prompt = builder.build(trace_row)
        expected = max(trace_row.input_tokens, builder.overhead)
        assert count_chat_messages(prompt.messages, model) == expected


@pytest.mark.parametrize("model", MODELS)
def test_blocks_are_512_tokens_and_do_not_merge(model: str) -> None:
    builder = PromptBuilder(model)
    generator = random.Random(7)

    for _ in range(20):
        ids = [generator.randrange(1_000_000) for _ in range(generator.randrange(1, 6))]
        texts = [builder.block_text(block_id) for block_id in ids]
        for text in texts:
            assert token_count(text, model) == BLOCK_TOKENS
        assert token_count("".join(texts), model) == BLOCK_TOKENS * len(ids)


@pytest.mark.parametrize("model", MODELS)
def test_filler_words_are_single_tokens(model: str) -> None:
    encoding = encoding_for_model(model)
    words = filler_words(encoding.name)

    assert len(words) == 256
    assert len(set(words)) == 256
    for word in words:
        assert word.startswith(" ")
        assert len(encoding.encode(word)) == 1, word


def test_block_text_deterministic_per_id() -> None:
    first = PromptBuilder("gpt-4o-mini")
    second = PromptBuilder("gpt-4o-mini")

    assert first.block_text(42) == second.block_text(42)
    assert first.block_text(42) != first.block_text(43)


def test_seed_changes_text() -> None:
    default = PromptBuilder("gpt-4o-mini")
    seeded = PromptBuilder("gpt-4o-mini", seed="second run")

    assert default.block_text(42) != seeded.block_text(42)
    assert default.build(row(500)).text != seeded.build(row(500)).text


def test_shared_block_ids_share_prefix() -> None:
    builder = PromptBuilder("gpt-4o-mini")
    shared = builder.block_text(7) + builder.block_text(8)

    first = builder.build(row(3_000, blocks=(7, 8, 9), line=1)).text
    second = builder.build(row(3_000, blocks=(7, 8, 10), line=2)).text

    assert first.startswith(shared)
    assert second.startswith(shared)
    assert first[len(shared) :].startswith(builder.block_text(9))
    assert second[len(shared) :].startswith(builder.block_text(10))
    assert first != second


def test_last_block_cut() -> None:
    builder = PromptBuilder("gpt-4o-mini")
    size = builder.overhead + BLOCK_TOKENS + 100

    text = builder.build(row(size, blocks=(1, 2, 3))).text

    first = builder.block_text(1)
    assert text.startswith(first)
    cut = text[len(first) :]
    assert builder.block_text(2).startswith(cut)
    assert token_count(cut, "gpt-4o-mini") == 100


def test_padding_after_blocks() -> None:
    builder = PromptBuilder("gpt-4o-mini")
    size = builder.overhead + 2 * BLOCK_TOKENS + 50

    text = builder.build(row(size, blocks=(1, 2))).text

    blocks = builder.block_text(1) + builder.block_text(2)
    assert text.startswith(blocks)
    assert token_count(text[len(blocks) :], "gpt-4o-mini") == 50


def test_rows_without_blocks_do_not_share_a_prefix() -> None:
    builder = PromptBuilder("gpt-4o-mini")

    texts = [builder.build(row(2_000, line=line)).text for line in range(1, 50)]

    assert len({text[:40] for text in texts}) == len(texts)


def test_same_row_same_prompt() -> None:
    first = PromptBuilder("gpt-4o-mini").build(row(1_500, line=9))
    second = PromptBuilder("gpt-4o-mini").build(row(1_500, line=9))

    assert first == second


def test_filler_shorter_is_prefix() -> None:
    builder = PromptBuilder("gpt-4o-mini")

    assert builder.filler(1_000, "key").startswith(builder.filler(300, "key"))
    assert builder.filler(0, "key") == ""


@pytest.mark.parametrize(("output_tokens", "max_tokens"), [(0, 1), (1, 1), (50, 50)])
def test_max_tokens_at_least_one(output_tokens: int, max_tokens: int) -> None:
    prompt = PromptBuilder("gpt-4o-mini").build(row(100, output_tokens))

    assert prompt.max_tokens == max_tokens


def test_messages_single_user_message() -> None:
    prompt = PromptBuilder("gpt-4o-mini").build(row(100))

    assert prompt.messages == [{"role": "user", "content": prompt.text}]
