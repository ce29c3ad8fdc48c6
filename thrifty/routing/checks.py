"""Cascade checks: is the cheaper model's answer good enough to return?

A cascade calls its models from cheap to strong and escalates when a check
fails on an answer. ``answer_of`` reads the answer from an OpenAI chat
completion, an OpenAI Responses API response or an Anthropic message. The
checks:

- ``empty``: no text, no tool call and no refusal;
- ``refusal``: OpenAI's ``refusal`` field, Anthropic's ``stop_reason``
  ``refusal``, or text that opens like a refusal ("I can't help with that");
- ``truncated``: the answer stopped at the token limit;
- ``json``: the request asked for a JSON response format and the text does
  not parse as JSON;
- ``schema``: the request's JSON schema (``json_schema`` response format),
  or one configured on the route, rejects the answer;
- a configured validator: a regular expression the text must match, or a
  Python function ``module:function`` called as ``function(text, body)``
  that returns True (or None) for a good answer and False or a reason string
  for a bad one.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from thrifty.errors import ConfigError
from thrifty.routing.request_view import RequestView

CHECK_NAMES = ("empty", "refusal", "truncated", "json", "schema")
DEFAULT_CHECKS = ("empty", "refusal", "json", "schema")

# Openings of refusals in English, compared case-insensitively with the start
# of the answer after leading whitespace and quotes.
_REFUSAL_OPENINGS = re.compile(
    r"^(i'?m sorry,? but i (can(no|')t|am unable|won'?t)|i (can(no|')t|won'?t|am unable to) "
    r"(help|assist|comply|provide|do that|answer)|sorry,? (but )?i can(no|')t|"
    r"i must decline|as an ai,? i (can(no|')t|am unable))",
    re.IGNORECASE,
)
_TRUNCATED_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)

Validator = Callable[[str, Mapping[str, Any]], "bool | str | None"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The parts of a model's answer that checks read."""

    text: str
    tool_calls: int = 0
    refusal: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CheckFailure:
    """A failed check and the reason it gives."""

    check: str
    reason: str


@dataclass(frozen=True)
class AnswerChecks:
    """The checks one cascade runs, in order, on each answer."""

    names: tuple[str, ...] = DEFAULT_CHECKS
    schema: Mapping[str, Any] | None = None
    pattern: re.Pattern[str] | None = None
    function: Validator | None = None
    function_name: str | None = None

    def first_failure(self, answer: Answer, body: Mapping[str, Any]) -> CheckFailure | None:
        """Return the first failed check, or None when the answer passes them all."""
        view = RequestView(body)
        for name in self.names:
            reason = self._run(name, answer, view)
            if reason is not None:
                return CheckFailure(name, reason)
        return self._custom_failure(answer, body)

    def _run(self, name: str, answer: Answer, view: RequestView) -> str | None:
        if name == "empty":
            return _empty(answer)
        if name == "refusal":
            return _refusal(answer)
        if name == "truncated":
            return _truncated(answer)
        if name == "json":
            return _invalid_json(answer) if view.wants_json else None
        if name == "schema":
            return self._schema_violation(answer, view)
        raise AssertionError(f"unknown check {name!r}")

    def _schema_violation(self, answer: Answer, view: RequestView) -> str | None:
        schema = self.schema if self.schema is not None else view.json_schema
        if schema is None:
            return None
        try:
            value = parse_json_answer(answer.text)
        except ValueError:
            return "the answer is not valid JSON, so it cannot match the schema"
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        location = "/".join(str(part) for part in error.absolute_path) or "the top level"
        return f"the answer violates the JSON schema at {location}: {error.message}"

    def _custom_failure(self, answer: Answer, body: Mapping[str, Any]) -> CheckFailure | None:
        if self.pattern is not None and not self.pattern.search(answer.text):
            return CheckFailure("validator", f"the answer does not match /{self.pattern.pattern}/")
        if self.function is None:
            return None
        verdict = self.function(answer.text, body)
        if verdict is None or verdict is True:
            return None
        reason = verdict if isinstance(verdict, str) else "the validator rejected the answer"
        return CheckFailure(f"validator {self.function_name}", reason)


def answer_of(response: Mapping[str, Any]) -> Answer:
    """Read the answer from a chat completion, Responses API response or Anthropic message."""
    if isinstance(response.get("choices"), list):
        return _chat_answer(response)
    if isinstance(response.get("output"), list):
        return _responses_answer(response)
    return _anthropic_answer(response)


def parse_json_answer(text: str) -> Any:
    """Parse an answer as JSON, allowing one Markdown code fence around it.

    Raises ValueError when the text is not JSON.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return json.loads(fenced.group(1) if fenced else stripped)


def load_validator(target: str, where: str) -> Validator:
    """Import a validator named ``module:function``; raise ConfigError if it cannot be."""
    module_name, sep, function_name = target.partition(":")
    if not sep or not module_name or not function_name:
        raise ConfigError(f"{where} is {target!r}; name a function as module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"{where}: module {module_name!r} has no function {function_name!r}")
    validator: Validator = function
    return validator


def _empty(answer: Answer) -> str | None:
    # A refusal has no text either; the refusal check reports it.
    if answer.text.strip() or answer.tool_calls or answer.refusal:
        return None
    return "the answer is empty"


def _refusal(answer: Answer) -> str | None:
    if answer.refusal:
        return "the model refused: " + answer.refusal[:200]
    if answer.stop_reason == "refusal":
        return "the model stopped with stop_reason 'refusal'"
    if _REFUSAL_OPENINGS.match(answer.text.lstrip(" \n\"'")):
        return "the answer opens like a refusal"
    return None


def _truncated(answer: Answer) -> str | None:
    if answer.stop_reason in _TRUNCATED_REASONS:
        return f"the answer was cut off at the token limit ({answer.stop_reason})"
    return None


def _invalid_json(answer: Answer) -> str | None:
    try:
        parse_json_answer(answer.text)
    except ValueError as exc:
        return f"the request asked for JSON and the answer is not valid JSON ({exc})"
    return None


def _chat_answer(response: Mapping[str, Any]) -> Answer:
    choices = response["choices"]
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
    assert isinstance(message, Mapping)
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    refusal = message.get("refusal")
    return Answer(
        text=content if isinstance(content, str) else "",
        tool_calls=len(tool_calls) if isinstance(tool_calls, list) else 0,
        refusal=refusal if isinstance(refusal, str) else None,
        stop_reason=_string(choice.get("finish_reason")),
    )


def _responses_answer(response: Mapping[str, Any]) -> Answer:
    texts: list[str] = []
    refusals: list[str] = []
    tool_calls = 0
    for item in _mappings(response["output"]):
        if item.get("type") == "function_call":
            tool_calls += 1
        for part in _mappings(item.get("content")):
            if part.get("type") == "output_text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "refusal":
                refusals.append(str(part.get("refusal", "")))
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return Answer(
        text="".join(texts),
        tool_calls=tool_calls,
        refusal=" ".join(refusals) or None,
        stop_reason=_string(reason),
    )


def _anthropic_answer(response: Mapping[str, Any]) -> Answer:
    blocks = _mappings(response.get("content"))
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    tool_calls = sum(1 for b in blocks if b.get("type") == "tool_use")
    return Answer(
        text=text, tool_calls=tool_calls, stop_reason=_string(response.get("stop_reason"))
    )


def _mappings(value: Any) -> Sequence[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None
