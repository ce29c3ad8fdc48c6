"""One cached answer and what it cost the first time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(slots=True)
class CacheEntry:
    """A stored response, keyed by ``entry_id`` (the request's exact key).

    ``response`` is the provider's whole response body as it was received.
    ``request_id`` names the call that produced it and ``cost_usd`` what that
    call cost, None when it was unpriced. ``query_text``, ``embedder`` and
    ``vector`` are set for entries the semantic cache can find: the vector is
    the embedding of ``query_text`` as little-endian float32 values.
    """

    entry_id: str
    namespace: str
    partition: str
    provider: str
    endpoint: str
    model: str
    response: bytes
    request_id: str
    created_at: datetime
    expires_at: datetime
    cost_usd: Decimal | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    feature: str | None = None
    query_text: str | None = None
    embedder: str | None = None
    vector: bytes | None = None
    hits: int = 0
    last_used_at: datetime | None = None

    @property
    def size_bytes(self) -> int:
        """Bytes of payload stored for the entry: response, query text and vector."""
        text = len(self.query_text.encode()) if self.query_text else 0
        return len(self.response) + text + len(self.vector or b"")

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now
