"""Virtual key secrets: generated at random, shown once, stored as a SHA-256 hash.

A secret carries 256 random bits, so a fast hash is enough: no password
stretching is needed against a guess that has 2**256 possibilities.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "sk-thrifty-"  # noqa: S105 - the public start of every key
SHOWN_PREFIX_LENGTH = len(SECRET_PREFIX) + 6


def new_secret() -> str:
    """Return a new virtual key secret: ``sk-thrifty-`` and 43 URL-safe characters."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """Return a short public id for a key, for logs and reports: ``key_`` and 12 hex digits."""
    return "key_" + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def shown_prefix(secret: str) -> str:
    """Return the start of a secret that listings show, so people can tell keys apart."""
    return secret[:SHOWN_PREFIX_LENGTH]


def same_secret(given: str, expected: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
