"""Grading a benchmark answer: exact match, regular expression, JSON schema or a judge.

Every grade is a score from 0 to 1. Exact, regex and schema grades are 1 or
0. A judge model rates the answer from 1 to 10 in the form ``Rating: [[N]]``
and the score is N / 10; a judge reply without a rating leaves the answer
ungraded (score None) rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jsonschema

from thrifty.routing.bench.evalset import EvalItem
from thrifty.routing.checks import parse_json_answer

_RATING = re.compile(r"Rating:\s*\[\[(\d+(?:\.\d+)?)\]\]")
_MAX_RATING = 10.0

JudgeClient = Callable[[str], Awaitable[str]]

JUDGE_PROMPT = """You are grading an AI assistant's answer to a question.
{rubric}
[Question]
{question}
{reference}[Answer]
{answer}

Rate the answer's correctness and helpfulness from 1 to 10. Explain briefly, then \
end with the rating in exactly this form: "Rating: [[N]]"."""


@dataclass(frozen=True, slots=True)
class Grade:
    """A graded answer: ``score`` from 0 to 1, None when the judge gave no rating."""

    score: float | None
    detail: str


def normalize(text: str) -> str:
    """Return text compared by the exact grader: trimmed, case-folded, spaces collapsed."""
    return " ".join(text.strip().strip(".").casefold().split())


async def grade_answer(item: EvalItem, answer: str, judge: JudgeClient | None = None) -> Grade:
    """Grade one answer by the item's grader."""
    grader = item.grader
    if grader.type == "exact":
        return _exact(item, answer)
    if grader.type == "regex":
        assert grader.pattern is not None
        found = grader.pattern.search(answer) is not None
        return Grade(
            1.0 if found else 0.0, f"/{grader.pattern.pattern}/ {'found' if found else 'not found'}"
        )
    if grader.type == "json_schema":
        return _json_schema(item, answer)
    if judge is None:
        return Grade(None, "no judge model was given, so the answer is ungraded")
    return await _judged(item, answer, judge)


def _exact(item: EvalItem, answer: str) -> Grade:
    matched = normalize(answer) in {normalize(expected) for expected in item.expected}
    return Grade(1.0 if matched else 0.0, "exact match" if matched else "no exact match")


def _json_schema(item: EvalItem, answer: str) -> Grade:
    assert item.grader.schema is not None
    try:
        value = parse_json_answer(answer)
    except ValueError:
        return Grade(0.0, "the answer is not valid JSON")
    validator = jsonschema.validators.validator_for(item.grader.schema)(item.grader.schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return Grade(1.0, "the answer matches the schema")
    return Grade(0.0, f"schema violation: {error.message}")


async def _judged(item: EvalItem, answer: str, judge: JudgeClient) -> Grade:
    reference = ""
    if item.expected:
        reference = "[Reference answer]\n" + "\n".join(item.expected) + "\n"
    prompt = JUDGE_PROMPT.format(
        rubric=item.grader.rubric or "",
        question=item.prompt,
        reference=reference,
        answer=answer,
    )
    verdict = await judge(prompt)
    match = _RATING.search(verdict)
    if match is None:
        return Grade(None, "the judge's reply has no 'Rating: [[N]]'")
    rating = min(float(match.group(1)), _MAX_RATING)
    return Grade(rating / _MAX_RATING, f"judge rating {rating:g} of 10")
