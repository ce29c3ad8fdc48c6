"""Login to the dashboard: the master key or a read-only key, then a signed session cookie.

Once a master key or a read-only dashboard key is set, every dashboard page,
asset and data endpoint but the login form needs a session. The login form
compares the key it is given with each configured key in constant time. A
session cookie is ``v1.ROLE.EXPIRES.NONCE.SIGNATURE``, signed with HMAC-SHA256
under a key derived from the master key and the read-only key, so changing
either key ends every session, and gateway replicas with the same keys
accept each other's sessions. The cookie is HttpOnly, SameSite=Strict and
scoped to ``/ui``; it is Secure when the request came over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["admin", "viewer"]
COOKIE_NAME = "thrifty_dashboard"
COOKIE_PATH = "/ui"
# Failed logins allowed per client address in one window before it must wait.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000
_VERSION = "v1"


@dataclass
class DashboardAuth:
    """The configured keys, and the sessions and login attempts checked against them."""

    master_key: str | None
    read_only_key: str | None
    session_s: float = 12 * 3600
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    @property
    def required(self) -> bool:
        """Whether a login is needed: true once either key is set."""
        return self.master_key is not None or self.read_only_key is not None

    def role_for_key(self, key: str) -> Role | None:
        """Return the role a key logs in as, or None; every configured key is compared."""
        candidate = key.encode()
        admin = _same(candidate, self.master_key)
        viewer = _same(candidate, self.read_only_key)
        if admin:
            return "admin"
        return "viewer" if viewer else None

    def new_session(self, role: Role, now: float | None = None) -> str:
        """Return a signed session token for ``role`` that expires after ``session_s``."""
        expires = int((time.time() if now is None else now) + self.session_s)
        payload = f"{_VERSION}.{role}.{expires}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._sign(payload)}"

    def session_role(self, token: str | None, now: float | None = None) -> Role | None:
        """Return the role of a valid, unexpired session token, or None."""
        if not token or not self.required:
            return None
        payload, _, signature = token.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        _, role, expires, _ = parts
        if not expires.isdigit() or int(expires) <= (time.time() if now is None else now):
            return None
        if role == "admin":
            return "admin"
        return "viewer" if role == "viewer" else None

    def allow_attempt(self, client: str, now: float | None = None) -> bool:
        """Return False while ``client`` has ``MAX_FAILURES`` failed logins in the window."""
        moment = time.monotonic() if now is None else now
        failures = self._failures.get(client)
        if failures is None:
            return True
        while failures and failures[0] <= moment - FAILURE_WINDOW_S:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return True
        return len(failures) < MAX_FAILURES

    def record_failure(self, client: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
            # Forget the client tracked longest, so many addresses cannot grow this without bound.
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque()).append(moment)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._signing_key(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _signing_key(self) -> bytes:
        material = "\n".join(
            ("thrifty dashboard session", self.master_key or "", self.read_only_key or "")
        )
        return hashlib.sha256(material.encode()).digest()


def _same(candidate: bytes, expected: str | None) -> bool:
    if expected is None:
        # Compare anyway, so the time taken does not tell which keys are set.
        hmac.compare_digest(candidate, candidate)
        return False
    return hmac.compare_digest(candidate, expected.encode())
