"""Extractive compression: sentence splitting, BM25 ranking, targets and protected text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_prompts_workloads import PASSAGES
from thrifty.errors import ConfigError
from thrifty.prompts.compress import (
    ExtractiveCompressor,
    bm25_scores,
    split_sentences,
    terms,
)
from thrifty.prompts.counting import TokenCounter
from thrifty.prompts.dialect import dialect_for
from thrifty.prompts.llmlingua import LLMLinguaCompressor, llmlingua_installed
from thrifty.prompts.pipeline import optimize
from thrifty.prompts.settings import CompressSettings, Settings

COUNTER = TokenCounter(dialect_for("chat.completions"), "gpt-4o-mini")


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end, _ in split_sentences(text)]


def test_split_sentences() -> None:
    text = (
        "First one. Second, e.g. with an abbreviation! Third?\nA line\n\nLast one with 3.5 units."
    )
    assert sentences(text) == [
        "First one.",
        "Second, e.g. with an abbreviation!",
        "Third?",
        "A line",
        "Last one with 3.5 units.",
    ]


def test_terms_drop_stopwords_and_fold_plurals() -> None:
    assert terms("How many eggs does the duck lay per days?") == [
        "many",
        "egg",
        "duck",
        "lay",
        "per",
        "day",
    ]


def test_bm25_prefers_matching_document() -> None:
    scores = bm25_scores(
        ["refund", "card"], [["ship", "lyon"], ["refund", "card", "day"], ["card"]]
    )
    assert scores[1] > scores[2] > scores[0]
    assert scores[0] == 0


def test_compressor_keeps_answer_sentence() -> None:
    passage = " ".join(PASSAGES)
    target = COUNTER.text(passage) // 4
    [kept] = ExtractiveCompressor().compress(
        [passage], "How many days do I have for returns?", target, COUNTER
    )
    assert "Returns are accepted for 30 days after delivery." in kept
    assert COUNTER.text(kept) <= target
    assert all(sentence in passage for sentence in sentences(kept))


def test_compressor_keeps_best_sentence_at_least() -> None:
    passages = ["Alpha is first. Alpha is second.", "Beta is here. Beta again."]
    kept = ExtractiveCompressor().compress(passages, "where is beta", 1, COUNTER)
    assert kept == ["", "Beta is here."]


def rag_body(question: str) -> dict[str, Any]:
    documents = "\n".join(f"<document>\n{text}\n</document>" for text in PASSAGES)
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer from the documents."},
            {"role": "user", "content": f"<documents>\n{documents}\n</documents>"},
            {"role": "assistant", "content": "I have read them."},
            {"role": "user", "content": question},
        ],
    }


def test_compress_transform_meets_ratio() -> None:
    body = rag_body("When are refunds paid?")
    settings = Settings(
        transforms=("compress",), compress=CompressSettings(ratio=0.4, min_tokens=16)
    )
    result = optimize(body, settings)
    changes = result.transforms[0].changes
    assert changes["texts_compressed"] == 1
    assert changes["kept_tokens"] <= changes["compressible_tokens"] * 0.4 + 40
    text = result.body["messages"][1]["content"]
    assert "Refunds are paid to the original payment method" in text
    assert text.count("<document>") == text.count("</document>")
    assert text.count("<document>") < len(PASSAGES)
    assert text.startswith("<documents>\n<document>\n")
    assert text.endswith("</document>\n</documents>")
    assert result.body["messages"][3] == body["messages"][3]
    assert result.body["messages"][0] == body["messages"][0]


def test_compress_max_tokens() -> None:
    body = rag_body("Do loyalty points expire?")
    settings = Settings(
        transforms=("compress",),
        compress=CompressSettings(ratio=None, max_tokens=60, min_tokens=16),
    )
    result = optimize(body, settings)
    assert (
        "Points expire two years after they were earned." in result.body["messages"][1]["content"]
    )
    assert result.saved_tokens > 0


def test_compress_skips_json_and_short_texts() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Short text. Very short."},
            {"role": "user", "content": "Question?"},
        ],
    }
    settings = Settings(transforms=("compress",), compress=CompressSettings(ratio=0.1))
    assert optimize(body, settings).body is body


@pytest.mark.skipif(llmlingua_installed(), reason="llmlingua is installed here")
def test_llmlingua_requires_package() -> None:
    with pytest.raises(ConfigError, match="pip install llmlingua"):
        LLMLinguaCompressor()
