"""Per-request cache controls from request headers, and the namespace a request belongs to.

Headers a client may send:

- ``Cache-Control: no-cache`` skips the lookup, ``no-store`` skips storing the
  answer; ``X-Thrifty-Cache-Control`` takes the same directives (for clients
  whose HTTP stack sets Cache-Control itself) and also ``off`` for both.
- ``X-Thrifty-Cache-TTL: SECONDS`` keeps this answer for less time than the
  configured TTL (a longer value is cut to the TTL).
- ``X-Thrifty-Cache-Mode: exact`` turns the semantic lookup off for this
  request; ``semantic`` turns it on where an embedder is configured.
- ``X-Thrifty-Cache-Threshold: 0.99`` asks for a closer semantic match than
  configured (a lower value is ignored).
- ``X-Thrifty-Cache-Namespace: NAME`` narrows the namespace: entries stored
  with it are found only by requests that send the same name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from thrifty.cache.config import Policy
from thrifty.errors import RequestError

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
MAX_NAMESPACE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Controls:
    """What one request's headers ask of the cache."""

    lookup: bool = True
    store: bool = True
    ttl_s: int | None = None
    mode: str | None = None
    threshold: float | None = None
    namespace: str | None = None

    def apply(self, policy: Policy) -> Policy:
        """Return the policy as this request narrows it."""
        changes: dict[str, Any] = {}
        if self.ttl_s is not None:
            changes["ttl_s"] = min(self.ttl_s, policy.ttl_s)
        if self.mode is not None:
            changes["mode"] = self.mode
        if self.threshold is not None:
            changes["threshold"] = max(self.threshold, policy.threshold)
        return replace(policy, **changes) if changes else policy


def read_controls(headers: Mapping[str, str]) -> Controls:
    """Parse the cache headers; raise RequestError 400 naming a malformed one."""
    directives = _directives(headers.get("cache-control", ""))
    directives |= _directives(headers.get("x-thrifty-cache-control", ""))
    off = "off" in directives
    return Controls(
        lookup=not (off or "no-cache" in directives),
        store=not (off or "no-store" in directives),
        ttl_s=_ttl(headers.get("x-thrifty-cache-ttl")),
        mode=_mode(headers.get("x-thrifty-cache-mode")),
        threshold=_threshold(headers.get("x-thrifty-cache-threshold")),
        namespace=_namespace(headers.get("x-thrifty-cache-namespace")),
    )


def key_identity(extra: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """Name the key a request used: its virtual key id, else a hash of its credential.

    The hash keeps provider keys out of storage while still separating the
    callers that use different keys.
    """
    key_id = extra.get("key_id")
    if isinstance(key_id, str) and key_id:
        return key_id
    for name in _CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return "anonymous"


def _directives(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _ttl(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise RequestError(
            400,
            f"X-Thrifty-Cache-TTL is {value!r}; give a whole number of seconds above zero",
            param="X-Thrifty-Cache-TTL",
        )
    return int(value)


def _mode(value: str | None) -> str | None:
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in ("exact", "semantic"):
        raise RequestError(
            400,
            f"X-Thrifty-Cache-Mode is {value!r}; use exact or semantic",
            param="X-Thrifty-Cache-Mode",
        )
    return mode


def _threshold(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0 < threshold <= 1:
        raise RequestError(
            400,
            f"X-Thrifty-Cache-Threshold is {value!r}; give a similarity above 0 and at most 1",
            param="X-Thrifty-Cache-Threshold",
        )
    return threshold


def _namespace(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > MAX_NAMESPACE_LENGTH:
        raise RequestError(
            400,
            f"X-Thrifty-Cache-Namespace is {len(name)} characters long; "
            f"give a name of 1 to {MAX_NAMESPACE_LENGTH} characters",
            param="X-Thrifty-Cache-Namespace",
        )
    return name
