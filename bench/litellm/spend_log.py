"""A LiteLLM proxy callback that appends each call's spend log row to a JSON lines file.

LiteLLM keeps its spend logs in PostgreSQL through Prisma. Where the Prisma
engines cannot be installed (no internet), this callback is the closest job
LiteLLM can do offline: for every call it builds LiteLLM's own standard
logging payload (model, tokens, ``response_cost``) and appends it as one line
to ``$LITELLM_SPEND_LOG``, as Thrifty appends each record to its spool.

Loaded by ``config.yaml`` (``callbacks: spend_log.handler``) in the LiteLLM
virtualenv; it is not part of Thrifty.
"""

from __future__ import annotations

import json
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger  # type: ignore[import-not-found]


class SpendLog(CustomLogger):  # type: ignore[misc]
    """Append one JSON line per successful or failed call."""

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("LITELLM_SPEND_LOG", "litellm-spend.jsonl")
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _append(self, kwargs: dict[str, Any], status: str) -> None:
        payload = kwargs.get("standard_logging_object") or {}
        row = {
            "status": status,
            "request_id": payload.get("id"),
            "model": payload.get("model"),
            "prompt_tokens": payload.get("prompt_tokens"),
            "completion_tokens": payload.get("completion_tokens"),
            "response_cost": kwargs.get("response_cost", payload.get("response_cost")),
            "start_time": payload.get("startTime"),
            "end_time": payload.get("endTime"),
        }
        os.write(self._fd, json.dumps(row, default=str).encode() + b"\n")

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._append(kwargs, "success")

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._append(kwargs, "failure")


handler = SpendLog()
