"""Word-level checks that a semantic match must pass."""

from __future__ import annotations

import pytest

from thrifty.cache.guards import mismatch, terms_of


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (
            "What is Visual Studio 2008 Express?",
            "What is Visual Studio 2010 Express?",
            "numbers differ",
        ),
        (
            "How do I buy a gun with a license?",
            "How do I buy a gun without a license?",
            "negations differ",
        ),
        ("Why can't I sleep?", "Why can I sleep?", "negations differ"),
        (
            "Why did pigeons become extinct?",
            "When did pigeons become extinct?",
            "question words differ",
        ),
        ("What do people in Paris eat?", "What do people in Rome eat?", "proper nouns differ"),
        (
            "What is the best gift you have given?",
            "What is the best gift you have received?",
            "content words differ",
        ),
        (
            "How do you convert ethanol to acetone?",
            "How do you convert acetone to ethanol?",
            "content words in another order",
        ),
    ],
)
def test_mismatch_reasons(first: str, second: str, reason: str) -> None:
    assert mismatch(terms_of(first), terms_of(second)) == reason


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("How can I become physically strong?", "How do I become physically strong?"),
        ("What is the purpose of life ?", "what is the purpose of life?"),
        ("Which laptops should I buy?", "Which laptop should I buy?"),
    ],
)
def test_paraphrases_pass(first: str, second: str) -> None:
    assert mismatch(terms_of(first), terms_of(second)) is None


def test_sentence_initial_words_are_not_proper_nouns() -> None:
    terms = terms_of("Tell me about Rome. Please be brief.")
    assert terms.proper_nouns == frozenset({"rome"})


def test_terms_are_stemmed_and_lowercased() -> None:
    terms = terms_of("Playing games, played GAMES")
    assert terms.content == ("play", "gam", "play", "gam")
