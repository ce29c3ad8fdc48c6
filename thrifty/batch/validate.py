"""Checking each input request, and turning it into the target provider's batch line.

Every problem is found before anything is sent, and reported with its line
number: invalid JSON, a missing or repeated ``custom_id`` (Anthropic's must
match ``^[a-zA-Z0-9_-]{1,64}$``), a method other than POST, a ``url`` the
Batch API does not accept, a second model or endpoint in one OpenAI batch,
missing body fields, streaming, and requests that do not convert between
the providers' formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.batch.convert import anthropic_to_chat, chat_to_anthropic
from thrifty.batch.inputs import InputFormat, InputLine, line_format
from thrifty.batch.limits import (
    ANTHROPIC_CUSTOM_ID,
    ANTHROPIC_ENDPOINT,
    CHAT_URL,
    OPENAI_BATCH_URLS,
)
from thrifty.config import ProviderKind

_FORMAT_PROVIDERS: dict[InputFormat, ProviderKind] = {
    "openai": "openai",
    "chat": "openai",
    "anthropic": "anthropic",
}
_FORMAT_NAMES = {
    "openai": "an OpenAI batch line {custom_id, method, url, body}",
    "anthropic": "an Anthropic batch request {custom_id, params}",
    "chat": "a chat completion request {model, messages}",
}


@dataclass(frozen=True, slots=True)
class InputOptions:
    """How to read and convert an input file.

    ``provider`` is the provider to submit to; None submits to the input
    format's own provider (OpenAI for plain chat requests). ``input_format``
    None detects the format from the first request. ``split_by_model`` puts
    each model (and, for OpenAI, each endpoint) in batches of its own instead
    of rejecting a second one. ``max_tokens`` is the output limit given to
    requests converted to Anthropic that set none, and ``model`` replaces the
    model of every request.
    """

    provider: ProviderKind | None = None
    input_format: InputFormat | None = None
    split_by_model: bool = False
    max_tokens: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One valid request, in the target provider's batch format.

    ``position`` is its 0-based place among the valid requests (the order
    results are written in) and ``line`` its line number in the input.
    ``endpoint`` is the OpenAI ``url`` or ``/v1/messages``; ``body`` is the
    request body (Anthropic's ``params``) and ``raw`` the encoded batch line.
    """

    position: int
    line: int
    custom_id: str
    model: str
    endpoint: str
    body: dict[str, Any]
    raw: bytes

    @property
    def group(self) -> tuple[str, str]:
        return (self.endpoint, self.model)


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """The problems that keep one input line from being submitted."""

    line: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.reasons)}"


class RequestScanner:
    """Check input lines one by one, remembering what uniqueness and consistency need."""

    def __init__(self, options: InputOptions) -> None:
        self.options = options
        self.input_format: InputFormat | None = options.input_format
        self.provider: ProviderKind | None = options.provider
        self._seen: dict[str, int] = {}
        self._first_group: tuple[str, str] | None = None
        self._count = 0

    def scan(self, line: InputLine) -> BatchRequest | ValidationIssue:
        """Return the line as a batch request, or the issue listing all its problems."""
        if line.error is not None:
            return ValidationIssue(line.number, (line.error,))
        value = line.value
        if not isinstance(value, Mapping):
            return ValidationIssue(
                line.number, (f"a request is a JSON object, not {_kind(value)}",)
            )
        problems: list[str] = []
        request = self._request(line, value, problems)
        if problems or request is None:
            return ValidationIssue(line.number, tuple(problems))
        self._count += 1
        return request

    def _request(
        self, line: InputLine, value: Mapping[str, Any], problems: list[str]
    ) -> BatchRequest | None:
        found = line_format(value)
        if found is None:
            problems.append("the line is not a batch request: it has no params, body or messages")
            return None
        if self.input_format is None:
            self.input_format = found
        if found != self.input_format:
            problems.append(
                f"the line is {_FORMAT_NAMES[found]} but the file is in "
                f"{_FORMAT_NAMES[self.input_format]}; use one format per file"
            )
            return None
        if self.provider is None:
            self.provider = _FORMAT_PROVIDERS[found]

        custom_id = self._custom_id(line.number, value, problems)
        endpoint, body = self._target_body(value, problems)
        if body is None:
            return None
        if self.options.model is not None:
            body["model"] = self.options.model
        model = self._check_body(endpoint, body, problems)
        if problems or custom_id is None or model is None:
            return None
        self._check_group(endpoint, model, problems)
        if problems:
            return None
        if found == self.provider and self.options.model is None and line.raw is not None:
            raw = line.raw.strip()
        else:
            raw = self._encode(custom_id, endpoint, body)
        return BatchRequest(self._count, line.number, custom_id, model, endpoint, body, raw)

    def _custom_id(self, number: int, value: Mapping[str, Any], problems: list[str]) -> str | None:
        custom_id = value.get("custom_id")
        if custom_id is None and self.input_format == "chat":
            custom_id = f"request-{number}"
        if not isinstance(custom_id, str) or not custom_id:
            problems.append("custom_id is missing; give every request a unique custom_id string")
            return None
        if self.provider == "anthropic" and not ANTHROPIC_CUSTOM_ID.match(custom_id):
            problems.append(
                f"custom_id {custom_id!r} is invalid for Anthropic, which takes 1 to 64 "
                "letters, digits, '_' or '-'"
            )
        first = self._seen.setdefault(custom_id, number)
        if first != number:
            problems.append(f"custom_id {custom_id!r} repeats the one on line {first}")
        return custom_id

    def _target_body(
        self, value: Mapping[str, Any], problems: list[str]
    ) -> tuple[str, dict[str, Any] | None]:
        """Return the target endpoint and request body, converting between formats."""
        if self.input_format == "anthropic":
            return self._from_anthropic(value, problems)
        if self.input_format == "openai":
            url = self._checked_url(value, problems)
            body = value.get("body")
            if not isinstance(body, Mapping):
                problems.append("body must be an object with the request's parameters")
                return url, None
        else:
            url = CHAT_URL
            body = {name: item for name, item in value.items() if name != "custom_id"}
        if self.provider == "openai":
            return url, dict(body)
        if url != CHAT_URL:
            problems.append(f"url {url} does not convert to Anthropic; only {CHAT_URL} does")
            return ANTHROPIC_ENDPOINT, None
        params, converted = chat_to_anthropic(body, self.options.max_tokens)
        problems.extend(converted)
        return ANTHROPIC_ENDPOINT, params

    def _from_anthropic(
        self, value: Mapping[str, Any], problems: list[str]
    ) -> tuple[str, dict[str, Any] | None]:
        params = value.get("params")
        if not isinstance(params, Mapping):
            problems.append("params must be an object of Messages API parameters")
            return ANTHROPIC_ENDPOINT, None
        if self.provider == "anthropic":
            return ANTHROPIC_ENDPOINT, dict(params)
        body, converted = anthropic_to_chat(params)
        problems.extend(converted)
        return CHAT_URL, body

    @staticmethod
    def _checked_url(value: Mapping[str, Any], problems: list[str]) -> str:
        method = value.get("method")
        if method != "POST":
            problems.append(f"method is {method!r}; the Batch API takes POST only")
        url = value.get("url")
        if not isinstance(url, str) or url not in OPENAI_BATCH_URLS:
            problems.append(
                f"url {url!r} is not one the Batch API accepts: {', '.join(OPENAI_BATCH_URLS)}"
            )
            return CHAT_URL
        return str(url)

    def _check_body(
        self, endpoint: str, body: Mapping[str, Any], problems: list[str]
    ) -> str | None:
        """Check the fields the target API requires; return the model."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            problems.append('the request has no model; name one, e.g. "gpt-4o-mini"')
            model = None
        if body.get("stream"):
            problems.append("stream is set; batch requests cannot stream, so remove it")
        if endpoint == ANTHROPIC_ENDPOINT:
            _check_anthropic_params(body, problems)
            return model
        for name in OPENAI_BATCH_URLS[endpoint]:
            if body.get(name) in (None, "", []):
                problems.append(f"body.{name} is missing; {endpoint} requires it")
        return model

    def _check_group(self, endpoint: str, model: str, problems: list[str]) -> None:
        """Reject a second model or endpoint in an OpenAI job unless batches split by model."""
        if self.provider != "openai" or self.options.split_by_model:
            return
        if self._first_group is None:
            self._first_group = (endpoint, model)
            return
        first_endpoint, first_model = self._first_group
        if endpoint != first_endpoint:
            problems.append(
                f"url {endpoint} differs from the file's first request ({first_endpoint}); "
                "an OpenAI batch has one endpoint, so split the file or pass --split-by-model"
            )
        elif model != first_model:
            problems.append(
                f"model {model!r} differs from the file's first request ({first_model!r}); "
                "an OpenAI batch has one model, so split the file or pass --split-by-model"
            )

    def _encode(self, custom_id: str, endpoint: str, body: dict[str, Any]) -> bytes:
        if self.provider == "anthropic":
            return orjson.dumps({"custom_id": custom_id, "params": body})
        line_value = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}
        return orjson.dumps(line_value)


def _check_anthropic_params(params: Mapping[str, Any], problems: list[str]) -> None:
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        problems.append(
            f"params.max_tokens is {max_tokens!r}; Anthropic requires a whole number of at least 1"
        )
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("params.messages must be a non-empty list of messages")


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), "null")
