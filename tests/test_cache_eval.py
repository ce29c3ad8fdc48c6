"""Semantic match quality on the public pair data: precision, recall and follow-up leaks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cache_support import require_local_model
from tests.services import require_shared_data
from thrifty.cache.config import DEFAULT_THRESHOLD
from thrifty.cache.evaluate import (
    DEFAULT_THRESHOLDS,
    Conversation,
    Pair,
    evaluate_follow_ups,
    evaluate_pairs,
    read_pairs,
    select_split,
    split_of,
    wilson_interval,
)
from thrifty.errors import CacheError

if TYPE_CHECKING:
    from thrifty.cache.embedders import LocalEmbedder


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    require_local_model()
    from thrifty.cache.embedders import LocalEmbedder

    return LocalEmbedder()


def qqp_pairs() -> list[Pair]:
    items = read_pairs(require_shared_data("cache/meancache_qqp_val.csv"))
    return [item for item in items if isinstance(item, Pair)]


def test_read_csv_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('question1,question2,is_duplicate\n"A, b?",B?,1\nC?,D?,0\n')
    assert read_pairs(path) == [Pair("A, b?", "B?", True), Pair("C?", "D?", False)]


def test_read_paraphrase_pairs_adds_shifted_negatives(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    path.write_text('[{"origin": "a", "similar": "a2"}, {"origin": "b", "similar": "b2"}]')
    assert read_pairs(path) == [
        Pair("a", "a2", True),
        Pair("b", "b2", True),
        Pair("a", "b2", False),
        Pair("b", "a2", False),
    ]


def test_read_follow_ups(tmp_path: Path) -> None:
    path = tmp_path / "context.json"
    path.write_text(
        '[{"Main Query": "Q", "Main Query Response": "A", "Follow-Up Query": "F", '
        '"Follow Up Query Response": "R"}]'
    )
    assert read_pairs(path) == [Conversation("Q", "A", "F")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("pairs.csv", "a,b\n1,2\n", "needs the columns question1, question2 and is_duplicate"),
        ("pairs.csv", "question1,question2,is_duplicate\nA,B,yes\n", "is_duplicate is 'yes'"),
        ("pairs.json", "{", "is not valid JSON"),
        ("pairs.json", '[{"x": 1}]', "has objects with keys ['x']"),
    ],
)
def test_bad_pair_files_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CacheError) as raised:
        read_pairs(path)
    assert message in str(raised.value)


def test_split_is_fixed_by_texts() -> None:
    assert split_of(Pair("What is a fjord?", "What is a glacier?", False)) == "held-out"
    assert split_of(Pair("How can I become strong?", "How do I become strong?", True)) == "train"
    assert split_of(Pair("a", "b", True)) == split_of(Pair("a", "b", False))


def test_qqp_splits_are_halves() -> None:
    pairs = qqp_pairs()
    train = select_split(pairs, "train")
    held_out = select_split(pairs, "held-out")
    assert len(pairs) == 12129
    assert len(train) == 6090
    assert len(held_out) == 6039
    assert select_split(pairs, None) == pairs


def test_wilson_interval_values() -> None:
    low, high = wilson_interval(67, 69)
    assert round(low, 4) == 0.9003
    assert round(high, 4) == 0.9920
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 5)[0] == 0.0


def test_default_threshold_chosen_on_train(embedder: LocalEmbedder) -> None:
    """The default threshold was chosen on the training split: the lowest one on the grid
    whose precision reaches 0.95. Only the 187 pairs that pass the word-level checks are
    embedded, since the others never match."""
    evaluation = evaluate_pairs(select_split(qqp_pairs(), "train"), embedder)
    precise = [
        row.threshold
        for row in evaluation.rows
        if row.precision is not None and row.precision >= 0.95
    ]
    row = evaluation.row_at(DEFAULT_THRESHOLD)
    assert min(precise) == DEFAULT_THRESHOLD
    assert DEFAULT_THRESHOLD in DEFAULT_THRESHOLDS
    assert (evaluation.pairs, evaluation.duplicates, evaluation.passed_guards) == (6090, 2278, 187)
    assert (row.matched, row.true_matches) == (65, 62)


def test_qqp_held_out_at_default_threshold(embedder: LocalEmbedder) -> None:
    evaluation = evaluate_pairs(select_split(qqp_pairs(), "held-out"), embedder, thresholds=())
    row = evaluation.row_at(DEFAULT_THRESHOLD)
    assert (evaluation.pairs, evaluation.duplicates, evaluation.passed_guards) == (6039, 2244, 187)
    assert (row.matched, row.true_matches) == (69, 67)
    assert row.precision is not None
    assert row.precision >= 0.95
    assert round(row.recall, 4) == 0.0299


def test_gptcache_paraphrases_fail_word_checks(embedder: LocalEmbedder) -> None:
    """GPTCache's paraphrases reword their content words, so none passes the checks."""
    items = read_pairs(require_shared_data("cache/gptcache_paraphrase_pairs.json"))
    pairs = [item for item in items if isinstance(item, Pair)]
    evaluation = evaluate_pairs(pairs, embedder, thresholds=())
    row = evaluation.row_at(DEFAULT_THRESHOLD)
    assert (evaluation.pairs, evaluation.duplicates, evaluation.passed_guards) == (1998, 999, 0)
    assert row.matched == 0


@pytest.mark.parametrize(
    ("first", "second", "served"),
    [
        ("How can I become physically strong?", "How do I become physically strong?", True),
        ("What is the purpose of life ?", "What is the purpose of life?", True),
        ("How do I reset my router?", "How can I reset my router?", True),
        # Passes the word-level checks, but the similarity is 0.968, below the default.
        ("Which laptops should I buy?", "Which laptop should I buy?", False),
        (
            "What is a registration key for Visual Studio 2010 Express?",
            "What is a registration key for Visual Studio 2008 Express?",
            False,
        ),
        (
            "How do I buy a gun with license in India?",
            "How do I buy a gun without a license in India?",
            False,
        ),
        (
            "What are the best products to import from Canada and sell in India?",
            "What are the best products to import from India and sell in Canada?",
            False,
        ),
        ("How can I become physically strong?", "How can I become mentally strong?", False),
        ("What is the best way to learn Python?", "How do I learn Python quickly?", False),
    ],
)
def test_match_decisions_at_default(
    embedder: LocalEmbedder, first: str, second: str, served: bool
) -> None:
    evaluation = evaluate_pairs([Pair(first, second, True)], embedder, thresholds=())
    assert evaluation.row_at(DEFAULT_THRESHOLD).matched == int(served)


def test_follow_ups_never_hit_other_conversations(embedder: LocalEmbedder) -> None:
    conversations = read_pairs(require_shared_data("cache/meancache_followups.json"))
    result = evaluate_follow_ups(
        [item for item in conversations if isinstance(item, Conversation)], embedder
    )
    assert result.conversations == 35
    assert result.lookups == 35 * 36
    assert result.cross_conversation_hits == 0
    assert result.wrong_question_hits == 0
    assert result.own_hits == 35
