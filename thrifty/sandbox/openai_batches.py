"""OpenAI's Batch API: create, retrieve, cancel and list batches of an uploaded file.

A batch moves through ``validating``, ``in_progress``, ``finalizing`` and
``completed``. It ends ``expired`` when requests expired, ``cancelled`` after
``cancelling``, and ``failed`` when its input file is invalid. Results go to
an output file (successes) and an error file (errors and expired requests),
each line in OpenAI's shape, in an order that is not the input order.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.batches import (
    BatchItem,
    Executor,
    ItemResult,
    SandboxBatch,
    Snapshot,
    page,
)
from thrifty.sandbox.catalog import find_model
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.openai_chat import batch_chat_completion
from thrifty.sandbox.openai_embeddings import embeddings_body
from thrifty.sandbox.openai_files import find_file, query_limit
from thrifty.sandbox.openai_responses import batch_response
from thrifty.sandbox.prompt_cache import OpenAIPromptCache
from thrifty.sandbox.settings import SandboxSettings
from thrifty.sandbox.state import admit, sandbox_state
from thrifty.sandbox.wire import json_response, read_json_object

# Endpoints OpenAI's Batch API accepts, and the ones the sandbox can run.
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
)
SANDBOX_ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")

# Limits of one batch input file, from OpenAI's Batch API reference.
MAX_REQUESTS = 50_000
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_METADATA_PAIRS = 16
LIST_LIMIT_MAX = 100

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


async def create_batch(request: Request) -> Response:
    admission = await admit(request, "openai")
    body = await read_json_object(request)
    endpoint = _endpoint(body.get("endpoint"))
    if body.get("completion_window") != "24h":
        raise ApiError(
            400,
            f"Invalid value for 'completion_window': {body.get('completion_window')!r}. "
            "Supported values are: '24h'.",
            param="completion_window",
        )
    input_file_id = body.get("input_file_id")
    if not isinstance(input_file_id, str) or not input_file_id:
        raise ApiError(400, "Missing required parameter: 'input_file_id'.", param="input_file_id")
    stored = find_file(request, input_file_id)
    if stored.purpose != "batch":
        raise ApiError(
            400,
            f"File {input_file_id} was uploaded with purpose '{stored.purpose}'; "
            "a batch input file needs purpose 'batch'.",
            param="input_file_id",
        )

    state = sandbox_state(request)
    settings = state.settings
    items, errors = read_input_file(stored.content, endpoint)
    batch = SandboxBatch(
        "batch_" + uuid.uuid4().hex,
        "openai",
        endpoint,
        items,
        settings=settings,
        executor=_executor(endpoint, settings),
        seed=state.batches.next_seed(settings.seed),
        errors=errors,
        input_file_id=input_file_id,
        metadata=_metadata(body.get("metadata")),
    )
    state.batches.batches[batch.id] = batch
    return json_response(await batch_json(request, batch, created=True), admission.headers)


async def retrieve_batch(request: Request) -> Response:
    admission = await admit(request, "openai")
    return json_response(await batch_json(request, _find(request)), admission.headers)


async def cancel_batch(request: Request) -> Response:
    admission = await admit(request, "openai")
    batch = _find(request)
    batch.cancel(batch.settings.clock())
    return json_response(await batch_json(request, batch), admission.headers)


async def list_batches(request: Request) -> Response:
    admission = await admit(request, "openai")
    registry = sandbox_state(request).batches
    ids = [batch.id for batch in registry.newest_first("openai")]
    limit = query_limit(request, default=20, maximum=LIST_LIMIT_MAX)
    selected, has_more = page(
        ids, after=request.query_params.get("after"), before=None, limit=limit
    )
    data = [await batch_json(request, registry.batches[batch_id]) for batch_id in selected]
    body = {
        "object": "list",
        "data": data,
        "first_id": selected[0] if selected else None,
        "last_id": selected[-1] if selected else None,
        "has_more": has_more,
    }
    return json_response(body, admission.headers)


def read_input_file(content: bytes, endpoint: str) -> tuple[list[BatchItem], list[dict[str, Any]]]:
    """Parse a batch input file; return its requests and the errors OpenAI would report.

    NOTE: the error codes are the sandbox's own; OpenAI does not publish the
    codes its file validation reports.
    """
    items: list[BatchItem] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    if len(content) > MAX_INPUT_BYTES:
        errors.append(
            _line_error("file_too_large", f"The file exceeds {MAX_INPUT_BYTES} bytes.", None)
        )
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        item, problem = _parse_line(raw, endpoint, seen)
        if problem is not None:
            errors.append(_line_error(problem[0], problem[1], number))
            continue
        assert item is not None
        line_model = str(item.body["model"])
        model = model or line_model
        if line_model != model:
            message = f"Model '{line_model}' differs from '{model}'; a batch takes one model."
            errors.append(_line_error("mismatched_model", message, number))
            continue
        items.append(item)
    if len(items) > MAX_REQUESTS:
        message = f"The file has {len(items)} requests; the limit is {MAX_REQUESTS}."
        errors.append(_line_error("too_many_requests", message, None))
    if not items and not errors:
        errors.append(_line_error("empty_file", "The input file has no requests.", None))
    return items, errors


def _parse_line(
    raw: bytes, endpoint: str, seen: set[str]
) -> tuple[BatchItem | None, tuple[str, str] | None]:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, ("invalid_json_line", "This line is not valid JSON.")
    problem = _identity_problem(line, seen) or _request_problem(line, endpoint)
    if problem is not None:
        return None, problem
    return BatchItem(line["custom_id"], line["body"]), None


def _identity_problem(line: Any, seen: set[str]) -> tuple[str, str] | None:
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not a JSON object."
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_custom_id", "The line has no 'custom_id' string."
    if custom_id in seen:
        return "duplicate_custom_id", f"The custom_id '{custom_id}' is not unique."
    seen.add(custom_id)
    return None


def _request_problem(line: dict[str, Any], endpoint: str) -> tuple[str, str] | None:
    if line.get("method") != "POST":
        return "invalid_method", "The 'method' must be 'POST'."
    if line.get("url") != endpoint:
        return "mismatched_url", f"The 'url' must be the batch's endpoint, {endpoint}."
    body = line.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "missing_model", "The 'body' must be an object with a 'model' string."
    return None


def _line_error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


async def batch_json(
    request: Request, batch: SandboxBatch, *, created: bool = False
) -> dict[str, Any]:
    """Bring a batch up to date and return it in OpenAI's shape.

    A batch just ``created`` is reported as validating, as OpenAI reports it.
    """
    snapshot = await _snapshot(batch, created=created)
    if snapshot.ended and not batch.outputs_written:
        await asyncio.to_thread(_write_outputs, request, batch)
    counts = batch.outcome_counts()
    status = snapshot.phase
    if status == "completed" and counts["expired"]:
        status = "expired"
    times = {name: int(batch.wall_time(moment)) for name, moment in snapshot.times.items()}
    if status == "expired" and "completed" in times:
        times["expired"] = times.pop("completed")
    validated = snapshot.phase not in ("validating", "failed")
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": _model(batch),
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": times.get("in_progress"),
        "expires_at": int(batch.created_at + batch.settings.batch_completion_window_s),
        "finalizing_at": times.get("finalizing"),
        "completed_at": times.get("completed"),
        "failed_at": times.get("failed"),
        "expired_at": times.get("expired"),
        "cancelling_at": times.get("cancelling"),
        "cancelled_at": times.get("cancelled"),
        "request_counts": {
            "total": len(batch.items) if validated else 0,
            "completed": counts["succeeded"],
            "failed": counts["errored"] + counts["expired"],
        },
        "usage": _usage_totals(batch.results) if snapshot.ended else None,
        "metadata": batch.metadata,
    }


async def _snapshot(batch: SandboxBatch, *, created: bool) -> Snapshot:
    if created:
        return Snapshot("validating", 0, {})
    return await asyncio.to_thread(batch.process, batch.settings.clock())


def _write_outputs(request: Request, batch: SandboxBatch) -> None:
    """Store the output and error files of an ended batch, once.

    NOTE: requests a cancellation stopped appear in neither file; OpenAI's
    documentation does not say whether its error file lists them.
    """
    with batch.lock:
        if not batch.outputs_written:
            _store_outputs(request, batch)


def _store_outputs(request: Request, batch: SandboxBatch) -> None:
    successes: list[bytes] = []
    failures: list[bytes] = []
    for number, result in enumerate(batch.results):
        line_id = f"batch_req_{batch.id.removeprefix('batch_')}_{number}"
        if result.outcome == "succeeded":
            successes.append(orjson.dumps(_output_line(line_id, result)))
        elif result.outcome in ("errored", "expired"):
            failures.append(orjson.dumps(_output_line(line_id, result)))
    # OpenAI does not keep input order in these files; neither does the sandbox.
    order = random.Random(batch.id)
    order.shuffle(successes)
    order.shuffle(failures)
    registry = sandbox_state(request).batches
    if successes:
        name = f"{batch.id}_output.jsonl"
        batch.output_file_id = registry.add_file(name, "batch_output", _jsonl(successes)).id
    if failures:
        name = f"{batch.id}_error.jsonl"
        batch.error_file_id = registry.add_file(name, "batch_output", _jsonl(failures)).id
    batch.outputs_written = True


def _output_line(line_id: str, result: ItemResult) -> dict[str, Any]:
    if result.outcome == "expired":
        error = {"code": "batch_expired", "message": EXPIRED_MESSAGE}
        return {"id": line_id, "custom_id": result.custom_id, "response": None, "error": error}
    response = {
        "status_code": result.status_code,
        "request_id": f"req_{line_id.removeprefix('batch_req_')}",
        "body": result.body,
    }
    return {"id": line_id, "custom_id": result.custom_id, "response": response, "error": None}


def _jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _usage_totals(results: list[ItemResult]) -> dict[str, Any]:
    input_tokens = cached = output_tokens = reasoning = 0
    for result in results:
        usage = (result.body or {}).get("usage") if result.outcome == "succeeded" else None
        if not isinstance(usage, Mapping):
            continue
        input_tokens += int(usage.get("prompt_tokens", usage.get("input_tokens", 0)))
        output_tokens += int(usage.get("completion_tokens", usage.get("output_tokens", 0)))
        input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        output_details = usage.get("completion_tokens_details") or usage.get(
            "output_tokens_details"
        )
        cached += int((input_details or {}).get("cached_tokens", 0))
        reasoning += int((output_details or {}).get("reasoning_tokens", 0))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def _endpoint(value: object) -> str:
    if value not in BATCH_ENDPOINTS:
        raise ApiError(
            400,
            f"Invalid value for 'endpoint': {value!r}. Supported values are: "
            + ", ".join(f"'{endpoint}'" for endpoint in BATCH_ENDPOINTS)
            + ".",
            param="endpoint",
        )
    endpoint = str(value)
    if endpoint not in SANDBOX_ENDPOINTS:
        raise ApiError(
            400,
            f"The sandbox runs batches for {', '.join(SANDBOX_ENDPOINTS)}, not {endpoint}.",
            param="endpoint",
        )
    return endpoint


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) > MAX_METADATA_PAIRS:
        raise ApiError(
            400,
            f"Invalid 'metadata': expected an object of at most {MAX_METADATA_PAIRS} pairs.",
            param="metadata",
        )
    if not all(isinstance(key, str) and isinstance(item, str) for key, item in value.items()):
        raise ApiError(
            400, "Invalid 'metadata': keys and values must be strings.", param="metadata"
        )
    return dict(value)


def _model(batch: SandboxBatch) -> str | None:
    return str(batch.items[0].body["model"]) if batch.items else None


def _find(request: Request) -> SandboxBatch:
    batch_id = str(request.path_params["batch_id"])
    batch = sandbox_state(request).batches.batches.get(batch_id)
    if batch is None or batch.family != "openai":
        raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    return batch


def _executor(endpoint: str, settings: SandboxSettings) -> Executor:
    """Return the function that runs one request of a batch, with the batch's own prompt cache."""
    cache = OpenAIPromptCache(
        settings.openai_cache_ttl_s, settings.prompt_cache_max_entries, settings.clock
    )

    def run(body: Mapping[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if settings.reject_unknown_models and find_model(str(model)) is None:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if endpoint == "/v1/chat/completions":
            return batch_chat_completion(body, settings, cache)
        if endpoint == "/v1/responses":
            return batch_response(body, settings, cache)
        return embeddings_body(body)

    return run
