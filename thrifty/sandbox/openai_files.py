"""OpenAI's Files API: upload, list, retrieve, delete and download files.

Files live in the sandbox's memory for as long as the app runs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.batches import StoredFile, page
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.multipart import parse_form
from thrifty.sandbox.state import admit, sandbox_state
from thrifty.sandbox.wire import json_response

# Purposes the Files API accepts on upload.
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# OpenAI's limit on one uploaded file.
MAX_FILE_BYTES = 512 * 1024 * 1024
# Batch input files expire 30 days after upload unless the request sets another time.
BATCH_FILE_LIFETIME_S = 30 * 86_400
LIST_LIMIT_MAX = 10_000


async def upload_file(request: Request) -> Response:
    admission = await admit(request, "openai")
    form = parse_form(await request.body(), request.headers.get("content-type", ""))
    upload = form.get("file")
    if upload is None or upload.filename is None:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    purpose_field = form.get("purpose")
    purpose = purpose_field.content.decode("utf-8", "replace") if purpose_field else ""
    if purpose not in UPLOAD_PURPOSES:
        raise ApiError(
            400,
            f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
            + ", ".join(f"'{name}'" for name in UPLOAD_PURPOSES)
            + ".",
            param="purpose",
        )
    if len(upload.content) > MAX_FILE_BYTES:
        raise ApiError(413, f"File is too large: the limit is {MAX_FILE_BYTES} bytes.")
    if purpose == "batch" and not upload.filename.endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")

    lifetime = BATCH_FILE_LIFETIME_S if purpose == "batch" else None
    stored = sandbox_state(request).batches.add_file(
        upload.filename, purpose, upload.content, lifetime_s=lifetime
    )
    return json_response(stored.to_json(), admission.headers)


async def list_files(request: Request) -> Response:
    admission = await admit(request, "openai")
    query = request.query_params
    purpose = query.get("purpose")
    # A copy first: batch threads may add output files meanwhile.
    stored_files = list(reversed(sandbox_state(request).batches.files.values()))
    files = [stored for stored in stored_files if purpose is None or stored.purpose == purpose]
    if query.get("order") == "asc":
        files.reverse()
    by_id = {stored.id: stored for stored in files}
    limit = query_limit(request, default=LIST_LIMIT_MAX, maximum=LIST_LIMIT_MAX)
    ids, has_more = page(list(by_id), after=query.get("after"), before=None, limit=limit)
    body = {
        "object": "list",
        "data": [by_id[file_id].to_json() for file_id in ids],
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "has_more": has_more,
    }
    return json_response(body, admission.headers)


async def retrieve_file(request: Request) -> Response:
    admission = await admit(request, "openai")
    return json_response(find_file(request).to_json(), admission.headers)


async def delete_file(request: Request) -> Response:
    admission = await admit(request, "openai")
    stored = find_file(request)
    del sandbox_state(request).batches.files[stored.id]
    return json_response({"id": stored.id, "object": "file", "deleted": True}, admission.headers)


async def file_content(request: Request) -> Response:
    admission = await admit(request, "openai")
    stored = find_file(request)
    return Response(
        stored.content, media_type="application/octet-stream", headers=admission.headers
    )


def find_file(request: Request, file_id: str | None = None) -> StoredFile:
    """Return a stored file by id (the path's ``file_id`` unless given); raise 404 if absent."""
    wanted = file_id if file_id is not None else str(request.path_params["file_id"])
    stored = sandbox_state(request).batches.files.get(wanted)
    if stored is None:
        raise ApiError(404, f"No such File object: {wanted}", param="id")
    return stored


def query_limit(request: Request, *, default: int, maximum: int) -> int:
    """Return the ``limit`` query parameter, from 1 to ``maximum``; raise 400 otherwise."""
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise ApiError(
            400,
            f"Invalid 'limit': {raw!r}. Expected an integer from 1 to {maximum}.",
            param="limit",
        )
    return limit
