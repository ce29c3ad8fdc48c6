"""Evaluation sets: one JSON object per line, a prompt and how to grade its answer.

Each line has ``prompt`` (a string) or ``messages`` (an OpenAI chat
message list), and optionally ``id``, ``max_tokens`` and:

- ``expected``: the right answer, or a list of acceptable answers;
- ``grader``: ``"exact"`` (the default when ``expected`` is given),
  ``"regex"``, ``"json_schema"`` or ``"judge"``, or an object with
  ``type`` and its parameters: ``pattern`` for regex (default: ``expected``
  as a pattern), ``schema`` for json_schema, ``rubric`` for judge.

Example::

    {"id": "q1", "prompt": "What is 2 + 2? Answer with a number.", "expected": "4"}
    {"prompt": "Name a primary colour.", "grader": {"type": "regex", "pattern": "(?i)red|blue"}}
    {"prompt": "Reply with a JSON object.", "grader": {"type": "json_schema", "schema": {}}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from thrifty.errors import RoutingError

GraderType = Literal["exact", "regex", "json_schema", "judge"]
GRADER_TYPES: tuple[GraderType, ...] = ("exact", "regex", "json_schema", "judge")
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True, slots=True)
class GraderSpec:
    """How one item's answer is graded."""

    type: GraderType
    pattern: re.Pattern[str] | None = None
    schema: Mapping[str, Any] | None = None
    rubric: str | None = None


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One prompt of an evaluation set."""

    id: str
    messages: tuple[Mapping[str, Any], ...]
    grader: GraderSpec
    expected: tuple[str, ...] = ()
    max_tokens: int = DEFAULT_MAX_TOKENS
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message's text: the prompt a router trains on."""
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
        return json.dumps(list(self.messages), sort_keys=True)


def read_eval_set(path: Path, *, default_grader: GraderType | None = None) -> list[EvalItem]:
    """Read an evaluation set; raise RoutingError naming the line of a bad item."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RoutingError(f"cannot read evaluation set {path}: {exc.strerror}") from exc
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _item(line, f"{path}:{number}", len(items) + 1, default_grader)
        if item.id in seen:
            raise RoutingError(f"{path}:{number}: id {item.id!r} is used twice; ids must be unique")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise RoutingError(f"evaluation set {path} has no items")
    return items


def _item(line: str, where: str, position: int, default_grader: GraderType | None) -> EvalItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RoutingError(f"{where}: invalid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise RoutingError(f"{where}: each line must be a JSON object")
    expected = _expected(raw.get("expected"), where)
    max_tokens = raw.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RoutingError(f"{where}: max_tokens is {max_tokens!r}; give a whole number above 0")
    known = {"id", "prompt", "messages", "expected", "grader", "max_tokens"}
    return EvalItem(
        id=str(raw.get("id", position)),
        messages=_messages(raw, where),
        grader=_grader(raw.get("grader"), expected, where, default_grader),
        expected=expected,
        max_tokens=max_tokens,
        extra={key: value for key, value in raw.items() if key not in known},
    )


def _messages(raw: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], ...]:
    prompt, messages = raw.get("prompt"), raw.get("messages")
    if isinstance(prompt, str) and prompt and messages is None:
        return ({"role": "user", "content": prompt},)
    if isinstance(messages, list) and messages and prompt is None:
        chat = [m for m in messages if isinstance(m, Mapping) and "role" in m]
        if len(chat) == len(messages):
            return tuple(chat)
    raise RoutingError(f"{where}: give either 'prompt' (a string) or 'messages' (a chat list)")


def _expected(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RoutingError(f"{where}: 'expected' is {value!r}; give a string or a list of strings")


def _grader(
    value: object, expected: tuple[str, ...], where: str, default: GraderType | None
) -> GraderSpec:
    spec = {"type": value} if isinstance(value, str) else value
    if spec is None:
        spec = {"type": default or ("exact" if expected else None)}
    if not isinstance(spec, Mapping) or spec.get("type") not in GRADER_TYPES:
        raise RoutingError(
            f"{where}: no valid grader; set 'expected', or 'grader' to one of "
            f"{', '.join(GRADER_TYPES)}"
        )
    kind: GraderType = spec["type"]
    if kind == "exact" and not expected:
        raise RoutingError(f"{where}: the exact grader needs 'expected'")
    return GraderSpec(
        type=kind,
        pattern=_pattern(spec, expected, where) if kind == "regex" else None,
        schema=_schema(spec, where) if kind == "json_schema" else None,
        rubric=str(spec["rubric"]) if spec.get("rubric") else None,
    )


def _pattern(spec: Mapping[str, Any], expected: tuple[str, ...], where: str) -> re.Pattern[str]:
    pattern = spec.get("pattern") or (expected[0] if expected else None)
    if not isinstance(pattern, str):
        raise RoutingError(f"{where}: the regex grader needs 'pattern' or 'expected'")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RoutingError(
            f"{where}: pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


def _schema(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise RoutingError(f"{where}: the json_schema grader needs 'schema', a JSON schema object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise RoutingError(f"{where}: the schema is invalid: {exc.message}") from exc
    return schema
