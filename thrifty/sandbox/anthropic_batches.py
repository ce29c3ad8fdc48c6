"""Anthropic's Message Batches API: create, retrieve, list, cancel, delete and results.

A batch is ``in_progress``, then ``canceling`` if it was canceled, then
``ended``. Its request counts stay at ``processing`` until it ends, as
Anthropic reports them. Each request's params are checked when it runs, so
an invalid one ends ``errored``. Results come as JSON lines in an order that
is not the input order.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.anthropic_messages import batch_message
from thrifty.sandbox.batches import (
    BatchItem,
    Executor,
    ItemResult,
    SandboxBatch,
    Snapshot,
    page,
)
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.openai_files import query_limit
from thrifty.sandbox.prompt_cache import AnthropicPromptCache
from thrifty.sandbox.settings import SandboxSettings
from thrifty.sandbox.state import admit, sandbox_state
from thrifty.sandbox.wire import json_response, read_json_object

# Limits of one Message Batch, from Anthropic's batch processing guide.
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LIST_LIMIT_MAX = 1000

_PHASES = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "canceling",
}


async def create_message_batch(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"Request exceeds the maximum size of {MAX_BODY_BYTES} bytes.")
    items = _items(await read_json_object(request))

    state = sandbox_state(request)
    settings = state.settings
    batch = SandboxBatch(
        "msgbatch_" + uuid.uuid4().hex[:24],
        "anthropic",
        "/v1/messages",
        items,
        settings=settings,
        executor=_executor(settings),
        seed=state.batches.next_seed(settings.seed),
    )
    state.batches.batches[batch.id] = batch
    return json_response(await message_batch_json(request, batch, created=True), admission.headers)


async def retrieve_message_batch(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    return json_response(await message_batch_json(request, _find(request)), admission.headers)


async def cancel_message_batch(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    batch = _find(request)
    batch.cancel(batch.settings.clock())
    return json_response(await message_batch_json(request, batch), admission.headers)


async def delete_message_batch(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    batch = _find(request)
    snapshot = await asyncio.to_thread(batch.process, batch.settings.clock())
    if not snapshot.ended:
        raise ApiError(
            400,
            f"Batch {batch.id} is still processing; cancel it, and delete it once it has ended.",
        )
    del sandbox_state(request).batches.batches[batch.id]
    return json_response({"id": batch.id, "type": "message_batch_deleted"}, admission.headers)


async def list_message_batches(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    registry = sandbox_state(request).batches
    ids = [batch.id for batch in registry.newest_first("anthropic")]
    query = request.query_params
    limit = query_limit(request, default=20, maximum=LIST_LIMIT_MAX)
    selected, has_more = page(
        ids, after=query.get("after_id"), before=query.get("before_id"), limit=limit
    )
    data = [await message_batch_json(request, registry.batches[batch_id]) for batch_id in selected]
    body = {
        "data": data,
        "has_more": has_more,
        "first_id": selected[0] if selected else None,
        "last_id": selected[-1] if selected else None,
    }
    return json_response(body, admission.headers)


async def message_batch_results(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    batch = _find(request)
    snapshot = await asyncio.to_thread(batch.process, batch.settings.clock())
    if not snapshot.ended:
        raise ApiError(
            404,
            f"Batch {batch.id} has no results yet: it is still {_PHASES[snapshot.phase]}.",
        )
    content = await asyncio.to_thread(_results_file, batch)
    return Response(content, media_type="application/binary", headers=admission.headers)


async def message_batch_json(
    request: Request, batch: SandboxBatch, *, created: bool = False
) -> dict[str, Any]:
    """Bring a batch up to date and return it in Anthropic's shape.

    A batch just ``created`` is reported as in progress with nothing processed yet.
    """
    if created:
        snapshot = Snapshot("in_progress", 0, {})
    else:
        snapshot = await asyncio.to_thread(batch.process, batch.settings.clock())
    counts = batch.outcome_counts()
    ended = snapshot.ended
    end_time = next(
        (
            snapshot.times[name]
            for name in ("completed", "expired", "cancelled")
            if name in snapshot.times
        ),
        None,
    )
    results_url = None
    if ended:
        base = str(request.base_url).rstrip("/")
        results_url = f"{base}/v1/messages/batches/{batch.id}/results"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": "ended" if ended else _PHASES[snapshot.phase],
        "request_counts": {
            "processing": 0 if ended else len(batch.items),
            "succeeded": counts["succeeded"] if ended else 0,
            "errored": counts["errored"] if ended else 0,
            "canceled": counts["canceled"] if ended else 0,
            "expired": counts["expired"] if ended else 0,
        },
        "ended_at": None if end_time is None else _rfc3339(batch.wall_time(end_time)),
        "created_at": _rfc3339(batch.created_at),
        "expires_at": _rfc3339(batch.created_at + batch.settings.batch_completion_window_s),
        "archived_at": None,
        "cancel_initiated_at": None
        if batch.cancel_clock is None
        else _rfc3339(batch.wall_time(batch.cancel_clock)),
        "results_url": results_url,
    }


def _items(body: Mapping[str, Any]) -> list[BatchItem]:
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "requests: Field required: a non-empty list of requests")
    if len(requests) > MAX_REQUESTS:
        raise ApiError(
            400, f"requests: a batch takes at most {MAX_REQUESTS} requests, got {len(requests)}"
        )
    items: list[BatchItem] = []
    seen: set[str] = set()
    for index, entry in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(entry, Mapping):
            raise ApiError(400, f"{where}: Input should be an object")
        custom_id = entry.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise ApiError(
                400,
                f"{where}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'",
            )
        if custom_id in seen:
            raise ApiError(400, f"{where}.custom_id: Duplicate custom_id '{custom_id}'")
        seen.add(custom_id)
        params = entry.get("params")
        if not isinstance(params, Mapping):
            raise ApiError(400, f"{where}.params: Field required")
        items.append(BatchItem(custom_id, params))
    return items


def _results_file(batch: SandboxBatch) -> bytes:
    lines = [orjson.dumps(_result_line(result)) for result in batch.results]
    # Anthropic does not keep input order in the results; neither does the sandbox.
    random.Random(batch.id).shuffle(lines)
    return b"\n".join(lines) + b"\n"


def _result_line(result: ItemResult) -> dict[str, Any]:
    outcome: dict[str, Any] = {"type": result.outcome}
    if result.outcome == "succeeded":
        outcome["message"] = result.body
    elif result.outcome == "errored":
        outcome["error"] = result.body
    return {"custom_id": result.custom_id, "result": outcome}


def _rfc3339(unix_seconds: float) -> str:
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _find(request: Request) -> SandboxBatch:
    batch_id = str(request.path_params["batch_id"])
    batch = sandbox_state(request).batches.batches.get(batch_id)
    if batch is None or batch.family != "anthropic":
        raise ApiError(404, f"message_batch {batch_id} not found")
    return batch


def _executor(settings: SandboxSettings) -> Executor:
    cache = AnthropicPromptCache(settings.prompt_cache_max_entries, settings.clock)

    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        return batch_message(params, settings, cache)

    return run
