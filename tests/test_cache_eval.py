"""Semantic match quality on the public pair data: precision, recall and follow-up leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import require_shared_data
from thrifty.cache.config import DEFAULT_THRESHOLD
from thrifty.cache.embedders import LocalEmbedder, local_model_available
from thrifty.cache.evaluate import (
    Conversation,
    Pair,
    evaluate_follow_ups,
    evaluate_pairs,
    read_pairs,
)
from thrifty.errors import CacheError

needs_model = pytest.mark.skipif(
    not local_model_available(), reason="the local embedder needs the 'embeddings' extra"
)


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


@needs_model
def test_qqp_precision_at_default_threshold() -> None:
    """The whole file, exactly: only the ~370 pairs that pass the word-level guards are
    embedded (about 750 texts, a few seconds on 2 cores), since the rest never match."""
    pairs = read_pairs(require_shared_data("cache/meancache_qqp_val.csv"))
    assert isinstance(pairs[0], Pair)
    evaluation = evaluate_pairs(
        [pair for pair in pairs if isinstance(pair, Pair)], LocalEmbedder(), thresholds=()
    )
    row = evaluation.row_at(DEFAULT_THRESHOLD)
    assert evaluation.pairs == 12129
    assert row.precision is not None
    assert row.precision >= 0.95
    assert row.recall > 0.02


@needs_model
def test_follow_ups_never_hit_other_conversations() -> None:
    conversations = read_pairs(require_shared_data("cache/meancache_followups.json"))
    result = evaluate_follow_ups(
        [item for item in conversations if isinstance(item, Conversation)], LocalEmbedder()
    )
    assert result.conversations == 35
    assert result.lookups == 35 * 36
    assert result.cross_conversation_hits == 0
    assert result.wrong_question_hits == 0
    assert result.own_hits == 35
