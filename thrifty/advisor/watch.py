"""The gateway's periodic advisor check: anomalies and projected overspend, alerted once.

``AlertWatch`` runs ``find_alerts`` on the gateway's ledger every
``interval_s`` and raises the new findings through the control plane's
alert dispatcher, deduplicated with its budget counters (Redis when
replicas share it, so one replica's alert is not sent again by another).
``AdvisorAlertStep`` runs the watch for the gateway's lifetime; it is a
pipeline step only for its ``start`` and ``stop``, and passes every request
through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request

from thrifty.advisor.alerting import Once, find_alerts, raise_new
from thrifty.control.alerts import Alert
from thrifty.control.plane import ControlPlane, utc_now
from thrifty.errors import ThriftyError
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.ledger import Ledger
from thrifty.ledger.record import RequestRecord

logger = logging.getLogger(__name__)

# Anomalies are judged on whole hours, so a check every 5 minutes alerts a
# jump at most 5 minutes after its hour ends.
DEFAULT_INTERVAL_S = 300.0


class AlertWatch:
    """Check the ledger every ``interval_s``; the first check is one interval after start."""

    def __init__(
        self,
        ledger: Ledger,
        once: Once,
        raise_alert: Callable[[Alert], None],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ledger = ledger
        self.once = once
        self.raise_alert = raise_alert
        self.interval_s = interval_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="thrifty-advisor-alerts")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def check(self) -> list[Alert]:
        """Run one check now; return the alerts it raised."""
        findings = await asyncio.to_thread(find_alerts, self.ledger, self.clock())
        return await raise_new(findings, self.once, self.raise_alert)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except (ThriftyError, OSError, TimeoutError) as exc:
                logger.warning(
                    "advisor alert check failed: %s; retrying in %.0f s", exc, self.interval_s
                )


class AdvisorAlertStep:
    """Run an ``AlertWatch`` with the gateway; requests pass through it unchanged."""

    name = "advisor_alerts"

    def __init__(self, watch: AlertWatch) -> None:
        self.watch = watch

    async def start(self) -> None:
        await self.watch.start()

    async def stop(self) -> None:
        await self.watch.stop()

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        return body

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        return None


def advisor_alert_step(ledger: Ledger, plane: ControlPlane) -> AdvisorAlertStep:
    """Return the step that alerts through ``plane``'s sinks, deduplicated by its counters."""
    watch = AlertWatch(ledger, plane.counters, plane.raise_alert, clock=plane.clock)
    return AdvisorAlertStep(watch)
