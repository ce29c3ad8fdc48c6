"""Request files for offline analysis: JSONL of bodies, batch input files, wrapped lines.

Each non-blank line is one JSON object, one of:

- a request body: an OpenAI chat or Responses body, or an Anthropic messages body;
- an OpenAI Batch API input line: ``{"custom_id", "method", "url", "body"}``;
- an Anthropic Message Batches request: ``{"custom_id", "params"}``;
- a wrapper ``{"body": {...}, "feature": "...", "key": "..."}``.

The feature is the line's ``feature`` or the body's ``metadata.feature``; the
key is the line's ``key`` (or ``key_id``) or the body's ``metadata.key_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from thrifty.errors import PromptError
from thrifty.prompts.dialect import Api, detect_api

# Batch API ``url`` values and the API each is.
_BATCH_URLS: dict[str, Api] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
ENDPOINT_PATHS: dict[Api, str] = {api: url for url, api in _BATCH_URLS.items()}


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request read from a file.

    ``envelope`` is the whole line when the body is nested in it (under
    ``body_key``), so an optimized body can be written back in place.
    """

    number: int
    body: dict[str, Any]
    api: Api
    feature: str | None = None
    key: str | None = None
    envelope: dict[str, Any] | None = None
    body_key: str | None = None

    def with_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return the line's JSON object with ``body`` in place of its request body."""
        if self.envelope is None or self.body_key is None:
            return body
        return {**self.envelope, self.body_key: body}


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A line that contains no request to optimize, and the reason."""

    number: int
    reason: str


def read_requests(path: Path, *, api: Api | None = None) -> Iterator[RequestLine | SkippedLine]:
    """Read a request file line by line; ``api`` overrides detection from each body.

    Raises PromptError for a file that cannot be read or a line that is not JSON.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise PromptError(f"cannot read request file {path}: {exc.strerror}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise PromptError(
                    f"line {number} of {path} is not valid JSON ({exc}); "
                    "give one JSON object per line"
                ) from exc
            yield parse_line(number, value, api)


def parse_line(number: int, value: object, api: Api | None = None) -> RequestLine | SkippedLine:
    """Turn one parsed line into a RequestLine, or a SkippedLine with the reason."""
    if not isinstance(value, dict):
        return SkippedLine(number, f"a JSON {type(value).__name__}, not an object")

    envelope: dict[str, Any] | None = None
    body_key: str | None = None
    body: object = value
    line_api = api
    for key in ("body", "params"):
        if isinstance(value.get(key), dict):
            envelope, body_key, body = value, key, value[key]
            break

    if body_key == "params":
        line_api = line_api or "messages"
    url = value.get("url")
    if isinstance(url, str) and envelope is not None and line_api is None:
        line_api = _BATCH_URLS.get(url)
        if line_api is None:
            return SkippedLine(number, f"a batch request to {url}, which has no prompt to optimize")

    assert isinstance(body, dict)
    if "messages" not in body and "input" not in body:
        return SkippedLine(number, "no 'messages' or 'input' in the request body")
    return RequestLine(
        number=number,
        body=body,
        api=line_api or detect_api(body),
        feature=_attribute(value, body, ("feature",), "feature"),
        key=_attribute(value, body, ("key", "key_id"), "key_id"),
        envelope=envelope,
        body_key=body_key,
    )


def _attribute(
    line: Mapping[str, Any], body: Mapping[str, Any], line_keys: tuple[str, ...], metadata_key: str
) -> str | None:
    for key in line_keys:
        value = line.get(key)
        if isinstance(value, str) and value:
            return value
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        value = metadata.get(metadata_key)
        if isinstance(value, str) and value:
            return value
    return None
