"""Error bodies in the format each API family's clients expect.

OpenAI clients parse ``{"error": {"message", "type", "param", "code"}}``;
Anthropic clients parse ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from thrifty.config import ProviderKind

# Anthropic names its error types after the status; OpenAI uses a few broad ones.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


def error_response(
    kind: ProviderKind,
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build an error response in the format of the API family ``kind``."""
    if kind == "anthropic":
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        body = {
            "error": {
                "message": message,
                "type": error_type or _openai_type(status),
                "param": param,
                "code": None,
            }
        }
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _openai_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    return "invalid_request_error"
