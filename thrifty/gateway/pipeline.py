"""Optional pipeline steps between reading a request and calling the provider.

The gateway runs its steps in order (admission, cache lookup, prompt
optimization, routing, tier choice) on every metered request. A step may
change the body to forward, answer the client itself (a cache hit, a budget
refusal), and see the call's record before it is submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from thrifty.gateway.metering import Call
from thrifty.ledger.record import RequestRecord


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer a step gives instead of calling the provider.

    ``record`` is the ledger record of that answer (a cache hit has one with
    cost 0; a refusal before any provider call has none).
    """

    response: Response
    record: RequestRecord | None = None


class Step(Protocol):
    """One stage of the request pipeline."""

    name: str

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        """Return the body to forward (the same object when unchanged), or a Reply."""
        ...

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        """See a call's record before it is submitted.

        ``content`` is the whole response body of a buffered response and None
        for a stream or a failed call.
        """
        ...


async def run_prepare(
    steps: Sequence[Step], call: Call, request: Request, body: dict[str, Any]
) -> tuple[dict[str, Any], Reply | None]:
    """Run each step's ``prepare`` in order until one replies."""
    for step in steps:
        outcome = await step.prepare(call, request, body)
        if isinstance(outcome, Reply):
            return body, outcome
        body = outcome
    return body, None


def run_finish(
    steps: Sequence[Step], call: Call, record: RequestRecord, content: bytes | None
) -> None:
    for step in steps:
        step.finish(call, record, content)


async def start_steps(steps: Sequence[Step]) -> None:
    """Await each step's optional ``start()``, in pipeline order."""
    for step in steps:
        start = getattr(step, "start", None)
        if start is not None:
            await start()


async def stop_steps(steps: Sequence[Step]) -> None:
    """Await each step's optional ``stop()`` (or ``close()``), in reverse pipeline order.

    A synchronous ``shutdown()`` (the tracing step's) is called too.
    """
    for step in reversed(steps):
        stop = getattr(step, "stop", None) or getattr(step, "close", None)
        if stop is not None:
            await stop()
        shutdown = getattr(step, "shutdown", None)
        if shutdown is not None:
            shutdown()
