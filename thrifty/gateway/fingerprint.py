"""Request fingerprints: what the advisor needs to find repeats without storing prompts.

Two kinds are kept per request, both as short BLAKE2b digests:

- ``request``: the request body without the fields that do not change the
  answer (``user``, ``metadata``, ``stream``, ``stream_options``,
  ``service_tier``), with keys sorted. Equal digests are exact repeats, which
  an exact response cache would have answered.
- ``prefix``: the prompt text (system prompt, tools, then messages in order)
  hashed at growing lengths. Two requests sharing the digest at one length
  share that much prompt prefix, which provider prompt caching can bill at
  the cache-read rate.

The prompt itself is never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from thrifty.tokens import message_text

# Prefix lengths in characters, each 1.33 or 1.5 times the last. At about four
# characters a token they span roughly 512 to 65,536 tokens, around the
# providers' 1,024-token minimum. A shared prefix lies between the longest
# length whose digests match and the next one.
PREFIX_CHARS: tuple[int, ...] = (
    2048,
    3072,
    4096,
    6144,
    8192,
    12288,
    16384,
    24576,
    32768,
    49152,
    65536,
    98304,
    131072,
    196608,
    262144,
)

_IGNORED_FIELDS = frozenset({"user", "metadata", "stream", "stream_options", "service_tier"})
_DIGEST_BYTES = 12


def request_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the facts about a request that the ledger keeps in ``details["request"]``."""
    text = prompt_text(body)
    temperature = body.get("temperature")
    return {
        "max_tokens": _max_tokens(body),
        "temperature": temperature if isinstance(temperature, int | float) else None,
        "prompt_chars": len(text),
        "fingerprint": request_fingerprint(body),
        "prefix": prefix_fingerprints(text),
    }


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """Digest of the request fields that decide the answer."""
    kept = {key: value for key, value in body.items() if key not in _IGNORED_FIELDS}
    encoded = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(encoded, digest_size=_DIGEST_BYTES).hexdigest()


def prefix_fingerprints(text: str) -> dict[str, str]:
    """Digest of the first N characters of the prompt, for each N in PREFIX_CHARS it reaches."""
    digests: dict[str, str] = {}
    hasher = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    done = 0
    for length in PREFIX_CHARS:
        if len(text) < length:
            break
        hasher.update(text[done:length].encode("utf-8", "surrogatepass"))
        done = length
        digests[str(length)] = hasher.copy().hexdigest()
    return digests


def prompt_text(body: Mapping[str, Any]) -> str:
    """Return the prompt's text in the order a provider's prompt cache sees it."""
    parts: list[str] = []
    for key in ("system", "instructions"):
        value = body.get(key)
        if value:
            parts.append(message_text(value))
    tools = body.get("tools")
    if tools:
        parts.append(orjson.dumps(tools).decode())
    messages = body.get("messages")
    if isinstance(messages, list):
        parts.extend(_message_texts(messages))
    prompt = body.get("input")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        parts.extend(_message_texts(prompt))
    return "\n".join(parts)


def _message_texts(messages: list[Any]) -> list[str]:
    return [
        message_text(message.get("content")) for message in messages if isinstance(message, Mapping)
    ]


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
