"""HTTP errors in the JSON shape of each provider.

OpenAI's shape is ``{"error": {"message", "type", "param", "code"}}`` and
Anthropic's is ``{"type": "error", "error": {"type", "message"}, "request_id"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.errors import SandboxError

Family = Literal["openai", "anthropic"]

# The error ``type`` Anthropic documents for each status; other 4xx codes use
# invalid_request_error and other 5xx codes api_error.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class ApiError(SandboxError):
    """A request the sandbox rejects with an HTTP error, as the provider would.

    ``error_type`` overrides the type that follows from the status; ``param``
    and ``code`` appear in OpenAI's shape only.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def request_id_header(family: Family) -> str:
    return "request-id" if family == "anthropic" else "x-request-id"


def route_path(request: Request) -> str:
    """Return the request path below the sandbox's mount point."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def family_for(request: Request) -> Family:
    """Return the error shape for a request: Anthropic's for its paths and clients."""
    path = route_path(request)
    if path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return "anthropic"
    return "openai"


def error_body(error: ApiError, family: Family, request_id: str) -> dict[str, Any]:
    if family == "anthropic":
        return {
            "type": "error",
            "error": {
                "type": error.error_type or _anthropic_type(error.status),
                "message": error.message,
            },
            "request_id": request_id,
        }
    return {
        "error": {
            "message": error.message,
            "type": error.error_type or _openai_type(error.status),
            "param": error.param,
            "code": error.code,
        }
    }


def error_response(error: ApiError, family: Family) -> Response:
    request_id = new_request_id()
    headers = {request_id_header(family): request_id, **error.headers}
    return Response(
        orjson.dumps(error_body(error, family, request_id)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def _openai_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _anthropic_type(status: int) -> str:
    known = _ANTHROPIC_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"
