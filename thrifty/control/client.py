"""A client of the admin API, for the ``thrifty keys|budgets|cutoff`` commands."""

from __future__ import annotations

import os
from typing import Any

import httpx
import orjson

from thrifty.control.config import MASTER_KEY_ENV
from thrifty.errors import ControlError

GATEWAY_URL_ENV = "THRIFTY_GATEWAY_URL"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:4000"


class AdminClient:
    """Calls ``/thrifty/admin`` on a running gateway with the master key."""

    def __init__(
        self,
        gateway_url: str | None = None,
        master_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.gateway_url = (
            gateway_url or os.environ.get(GATEWAY_URL_ENV) or DEFAULT_GATEWAY_URL
        ).rstrip("/")
        key = master_key or os.environ.get(MASTER_KEY_ENV)
        if not key:
            raise ControlError(
                f"the admin commands need the master key; export ${MASTER_KEY_ENV} "
                "with the gateway's master key"
            )
        self._client = httpx.Client(
            base_url=f"{self.gateway_url}/thrifty/admin",
            headers={"authorization": f"Bearer {key}"},
            timeout=30.0,
            transport=transport,
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one admin request; raise ControlError with the gateway's message on failure."""
        try:
            response = self._client.request(
                method, path, content=None if body is None else orjson.dumps(body)
            )
        except httpx.HTTPError as exc:
            raise ControlError(
                f"could not reach the gateway's admin API at {self.gateway_url}: {exc}; "
                f"check that it runs, or pass --gateway / set ${GATEWAY_URL_ENV}"
            ) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            message = answer.get("error", {}).get("message") if isinstance(answer, dict) else None
            raise ControlError(
                f"the gateway rejected {method} {path} ({response.status_code}): "
                f"{message or response.text[:200]}"
            )
        return answer

    def close(self) -> None:
        self._client.close()
