"""One ledger row: everything known about one upstream call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    """The durable record of one request through the gateway.

    Token fields follow ``thrifty.usage.Usage``. ``cost_usd`` is ``None`` when
    the request could not be priced, and ``unpriced`` is then true.
    ``cost_breakdown`` maps token classes to USD. Times are timezone-aware UTC.
    ``upstream_ms`` is the time spent waiting on the provider and
    ``overhead_ms`` the time the gateway itself added. ``details`` maps a
    feature (``"cache"``, ``"route"``, ``"prompts"``...) to its JSON-ready
    annotations of the request; money in it is written as decimal strings.
    """

    request_id: str
    started_at: datetime
    provider: str
    endpoint: str
    model_requested: str
    first_token_at: datetime | None = None
    ended_at: datetime | None = None
    model_served: str | None = None
    model_priced: str | None = None
    streamed: bool = False
    http_status: int = 0
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: Decimal | None = None
    cost_breakdown: dict[str, Decimal] = field(default_factory=dict)
    unpriced: bool = False
    service_tier_requested: str | None = None
    service_tier_served: str | None = None
    key_id: str | None = None
    team: str | None = None
    project: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    cache_status: str | None = None
    upstream_ms: float | None = None
    overhead_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
