"""Offline tiktoken encodings against an independent encoder and published values.

bpe-openai ships a Rust implementation of the same BPE encodings; it must
produce the same token ids as tiktoken loaded from bpe-openai's rank files.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_shared_data
from thrifty.tokens import (
    count_chat_messages,
    count_text,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    message_text,
)

with warnings.catch_warnings():
    # bpe-openai uses a deprecated importlib.resources call when imported.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

ENCODINGS = ("o200k_base", "cl100k_base")

CORPUS = [
    "",
    "hello world",
    "Hello, World! How are you doing today?",
    "I'm sure they'll say we've done it; don't you think he'd agree? THEY'RE HERE.",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "def add(a: int, b: int) -> int:\n    return a + b\n\n\nclass Foo(Bar):\n\tpass\n",
    "for (let i = 0; i < n; i++) { sum += arr[i] * 2; }  // C-style loop",
    '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}',
    "SELECT id, name FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC LIMIT 10;",
    '<html><body><div class="main">Text &amp; more</div></body></html>',
    "https://example.com/path/to/page?query=value&other=123#fragment",
    "日本語のテキストと中文文本和한국어 텍스트",
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी, ภาษาไทย",
    "café naïve résumé Zürich façade coöperate e\u0301 n\u0303",
    "Emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️‍🔥 🫡🍣顏文字",
    "    four spaces\n\n\n\ttabs\t\t\tand   runs      of        spaces   \r\n\r\nend",
    " \n \n  \n   \n",
    "\u00a0non-breaking\u2003em space\u200bzero width\ufeffBOM",
    "0 1 12 123 1234 12345 123456 1234567890123 3.14159 -42 1e-9 0xDEADBEEF 1,000,000.50",
    "2024-06-01T12:34:56Z 12:00pm $19.99 €5 ¥1000 50% #1 @user",
    "CamelCaseIdentifier snake_case_name kebab-case-name SCREAMING_SNAKE_CASE",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...---***###$$$%%%^^^&&&((()))[[[]]]{{{}}}",
    "Line one\nLine two\r\nLine three\rLine four",
    "<|endoftext|> and <|fim_prefix|> are written here as plain text",
    "\U0001f600" * 30,
    "a\u0300\u0301\u0302\u0303\u0304 combining marks",
]


def reference(name: str) -> Any:
    return bpe_openai.get_encoding(name)


def mismatches(name: str, texts: list[str]) -> list[str]:
    """Return the texts whose token ids differ between tiktoken and bpe-openai."""
    ours = get_encoding(name)
    theirs = reference(name)
    return [
        text[:80]
        for text in texts
        if ours.encode(text, disallowed_special=()) != theirs.encode(text, disallowed_special=())
    ]


@pytest.mark.parametrize("name", ENCODINGS)
def test_corpus_matches_reference_encoder(name: str) -> None:
    assert mismatches(name, CORPUS) == []


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_round_trips(name: str) -> None:
    encoding = get_encoding(name)
    for text in CORPUS:
        assert encoding.decode(encoding.encode(text, disallowed_special=())) == text


def test_published_values() -> None:
    # tiktoken's documentation and OpenAI's cookbook ("How to count tokens with tiktoken").
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("cl100k_base").encode("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]


# The cookbook's example conversation; the cookbook reports 129 prompt tokens
# from the API for gpt-4 and 124 for gpt-4o.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates "
        "corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]


def test_chat_count_matches_published_api_counts() -> None:
    assert count_chat_messages(COOKBOOK_MESSAGES, "gpt-4") == 129
    assert count_chat_messages(COOKBOOK_MESSAGES, "gpt-4o") == 124


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("claude-sonnet-4-5", "o200k_base"),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding
    assert encoding_for_model(model).name == encoding


def test_count_text_treats_special_tokens_as_text() -> None:
    expected = len(reference("o200k_base").encode("<|endoftext|>", disallowed_special=()))
    assert count_text("<|endoftext|>", "gpt-4o") == expected
    assert expected > 1


def test_message_text_joins_text_parts() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, "b"]
    assert message_text(content) == "ab"
    assert message_text(None) == ""


# Rows from the shared public data sets, when present.


def _csv_column(path: Path, column: str, limit: int) -> Iterator[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        for row in islice(csv.DictReader(handle), limit):
            if row.get(column):
                yield row[column]


def qqp_texts() -> list[str]:
    path = require_shared_data("cache/meancache_qqp_val.csv")
    return [*_csv_column(path, "question1", 400), *_csv_column(path, "question2", 400)]


def paraphrase_texts() -> list[str]:
    path = require_shared_data("cache/gptcache_paraphrase_pairs.json")
    pairs = json.loads(path.read_text(encoding="utf-8"))
    return [text for pair in pairs[:400] for text in (pair["origin"], pair["similar"])]


def mmlu_texts() -> list[str]:
    folder = require_shared_data("routing/mmlu")
    texts: list[str] = []
    for path in sorted(folder.glob("mmlu_*.csv")):
        texts += _csv_column(path, "prompt", 20)
    return texts


def gsm8k_texts() -> list[str]:
    path = require_shared_data("routing/gsm8k/gsm8k_responses.csv")
    texts = list(_csv_column(path, "prompt", 100))
    texts += _csv_column(path, "gpt-4-1106-preview_response", 100)
    texts += _csv_column(path, "mistralai/Mixtral-8x7B-Instruct-v0.1_response", 100)
    return texts


def mt_bench_texts() -> list[str]:
    path = require_shared_data("routing/mt_bench/question.jsonl")
    with path.open(encoding="utf-8") as handle:
        return [turn for line in handle if line.strip() for turn in json.loads(line)["turns"]]


@pytest.mark.parametrize(
    "load",
    [qqp_texts, paraphrase_texts, mmlu_texts, gsm8k_texts, mt_bench_texts],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("name", ENCODINGS)
def test_shared_data_matches_reference_encoder(name: str, load: Any) -> None:
    texts = load()
    assert len(texts) >= 100
    assert mismatches(name, texts) == []
