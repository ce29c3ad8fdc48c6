"""Who a request's spend belongs to: team, project, user, feature, session, tags.

Sources, highest precedence first:

1. ``X-Thrifty-*`` request headers (``X-Thrifty-Team``, ``-Project``, ``-User``,
   ``-Feature``, ``-Session``, and ``X-Thrifty-Tags: k=v,k=v``);
2. the body's ``metadata`` object: the keys ``team``, ``project``, ``user``
   (or Anthropic's ``user_id``), ``feature`` and ``session`` fill those fields,
   and every other string value becomes a tag;
3. the body's ``user`` field (OpenAI), for the user only.

A tag from a header replaces a metadata tag of the same key. The body is
never changed: attribution only reads it. Header values are read as UTF-8,
and one that is not valid UTF-8 or contains control characters is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thrifty.errors import RequestError

FIELDS = ("team", "project", "user", "feature", "session")
MAX_VALUE_LENGTH = 256
MAX_TAGS = 32
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class Attribution:
    """The attribution dimensions of one request; ``None`` where unknown."""

    team: str | None = None
    project: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def attribute(headers: Mapping[str, str], body: Mapping[str, Any]) -> Attribution:
    """Collect a request's attribution from its headers and body."""
    result = Attribution()
    _apply_body(result, body)
    _apply_headers(result, headers)
    return result


def parse_tags(value: str) -> dict[str, str]:
    """Parse ``k=v,k=v``; raise RequestError naming a malformed pair."""
    tags: dict[str, str] = {}
    for item in value.split(","):
        pair = item.strip()
        if not pair:
            continue
        key, sep, tag_value = pair.partition("=")
        key, tag_value = key.strip(), tag_value.strip()
        if not sep or not key:
            raise RequestError(
                400,
                f"invalid X-Thrifty-Tags pair {pair!r}; write tags as key=value,key=value",
                param="X-Thrifty-Tags",
            )
        tags[_checked(key, "X-Thrifty-Tags")] = _checked(tag_value, "X-Thrifty-Tags")
    if len(tags) > MAX_TAGS:
        raise RequestError(
            400,
            f"X-Thrifty-Tags has {len(tags)} tags; the limit is {MAX_TAGS}",
            param="X-Thrifty-Tags",
        )
    return tags


def _apply_body(result: Attribution, body: Mapping[str, Any]) -> None:
    user = body.get("user")
    if isinstance(user, str) and user:
        result.user = _checked(user, "user")
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        return
    for key, value in metadata.items():
        if not isinstance(value, str) or not value:
            continue
        name = "user" if key == "user_id" else str(key)
        if name in FIELDS:
            setattr(result, name, _checked(value, f"metadata.{key}"))
        elif len(result.tags) < MAX_TAGS:
            result.tags[_checked(str(key), "metadata")] = _checked(value, f"metadata.{key}")


def _apply_headers(result: Attribution, headers: Mapping[str, str]) -> None:
    for name in FIELDS:
        where = f"X-Thrifty-{name.title()}"
        value = headers.get(f"x-thrifty-{name}")
        if value:
            setattr(result, name, _checked(_header_text(value, where).strip(), where))
    tags = headers.get("x-thrifty-tags")
    if tags:
        result.tags.update(parse_tags(_header_text(tags, "X-Thrifty-Tags")))


def _header_text(value: str, where: str) -> str:
    """Decode a header value as UTF-8; the ASGI server hands it over decoded as Latin-1."""
    try:
        text = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise RequestError(
            400, f"{where} is not valid UTF-8; send the value as UTF-8 text", param=where
        ) from None
    if _CONTROL_CHARACTERS.search(text):
        raise RequestError(
            400,
            f"{where} contains control characters; send printable text only",
            param=where,
        )
    return text


def _checked(value: str, where: str) -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise RequestError(
            400,
            f"{where} is {len(value)} characters long; the limit is {MAX_VALUE_LENGTH}",
            param=where,
        )
    return value
