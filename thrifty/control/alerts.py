"""Alerts: events about spend and control changes, sent to webhooks, Slack and the log.

Delivery runs in a background task with its own queue, so raising an alert
never waits on the network. Each sink gets every alert, with up to
``max_attempts`` tries and exponential backoff between them. A webhook
receives the event as JSON, signed with HMAC-SHA256 over the exact body in
``X-Thrifty-Signature: sha256=HEX`` when the sink has a secret; a Slack sink
receives ``{"text": ...}``, the payload Slack's incoming webhooks accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from thrifty.control.config import AlertSettings, AlertSink

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-thrifty-signature"

# Event names.
THRESHOLD_CROSSED = "budget.threshold_crossed"
BUDGET_EXHAUSTED = "budget.exhausted"
PROJECTED_OVERSPEND = "budget.projected_overspend"
CUTOFF_ON = "cutoff.on"
CUTOFF_OFF = "cutoff.off"
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
UNPRICED_MODEL = "model.unpriced"


@dataclass(frozen=True, slots=True)
class Alert:
    """One event: its name, a sentence for people, and JSON-ready details."""

    event: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "message": self.message,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "details": self.details,
        }


def sign(body: bytes, secret: bytes) -> str:
    """Return the signature header value of a webhook body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class AlertDispatcher:
    """Queue alerts and deliver them to every sink in the background."""

    def __init__(
        self, settings: AlertSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=settings.queue_size)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self.delivered = 0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.settings.timeout_s, transport=self._transport)
        self._task = asyncio.create_task(self._run(), name="thrifty-alerts")

    async def stop(self) -> None:
        """Deliver what is queued (each sink tried once more at most), then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=self.settings.timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def raise_alert(self, alert: Alert) -> None:
        """Queue an alert; when the queue is full the alert is dropped and counted."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 100 == 0:
                logger.warning(
                    "alert queue full: dropped %d alerts so far, the latest %s",
                    self._dropped,
                    alert.event,
                )

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await asyncio.gather(*(self._deliver(sink, alert) for sink in self.settings.sinks))
            finally:
                self._queue.task_done()

    async def _deliver(self, sink: AlertSink, alert: Alert) -> None:
        if sink.kind == "log":
            logger.warning("alert %s: %s", alert.event, alert.message)
            self.delivered += 1
            return
        body, headers = _request(sink, alert)
        delay = self.settings.backoff_s
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                assert self._client is not None
                response = await self._client.post(str(sink.url), content=body, headers=headers)
                if response.status_code < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.settings.max_attempts:
                logger.error(
                    "alert %s to %s failed after %d attempts: %s",
                    alert.event,
                    sink.url,
                    attempt,
                    problem,
                )
                return
            logger.warning(
                "alert %s to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                alert.event,
                sink.url,
                attempt,
                self.settings.max_attempts,
                problem,
                delay,
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay *= 2


def _request(sink: AlertSink, alert: Alert) -> tuple[bytes, dict[str, str]]:
    headers = {"content-type": "application/json"}
    if sink.kind == "slack":
        return orjson.dumps({"text": f"[thrifty] {alert.message}"}), headers
    body = orjson.dumps(alert.payload())
    secret = sink.secret()
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    return body, headers
