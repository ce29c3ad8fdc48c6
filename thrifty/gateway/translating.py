"""The gateway's side of translation: when a call needs one, and what it sends.

A call needs a translation when its target provider speaks another API
than the endpoint the client called. It is chosen once, after the pipeline
steps, because routing may change the target. The usage is metered from the
provider's native response, which is then translated for the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from thrifty.config import ProviderKind
from thrifty.errors import TranslationError, UsageError
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.metering import Call
from thrifty.gateway.upstream import upstream_headers
from thrifty.translation import (
    ANTHROPIC_MESSAGES,
    ENDPOINT_NAMES,
    GEMINI_GENERATE,
    OPENAI_CHAT,
    ApiFormat,
    Translation,
    translation_between,
)

logger = logging.getLogger(__name__)

_KIND_FORMATS: dict[ProviderKind, ApiFormat] = {
    "openai": OPENAI_CHAT,
    "anthropic": ANTHROPIC_MESSAGES,
    "gemini": GEMINI_GENERATE,
}
_ENDPOINT_FORMATS: dict[str, ApiFormat] = {
    "chat.completions": OPENAI_CHAT,
    "messages": ANTHROPIC_MESSAGES,
}


def choose_translation(call: Call) -> Translation | None:
    """Set ``call.translation`` when the target's API differs from the endpoint's.

    Raises RequestError when the endpoint cannot be translated to the target's API.
    """
    kind = call.target.provider.kind
    if kind == call.endpoint.kind:
        return None
    source = _ENDPOINT_FORMATS.get(call.endpoint.name, call.endpoint.name)
    call.translation = translation_between(source, _KIND_FORMATS[kind], model=call.model_requested)
    return call.translation


def translate_request(
    call: Call, body: Mapping[str, Any], incoming: Mapping[str, str]
) -> tuple[bytes, dict[str, str]]:
    """Choose the call's translation; return the body and headers to send to the target.

    Raises RequestError when the request cannot be translated.
    """
    translation = choose_translation(call)
    assert translation is not None, "translate_request() needs a target of another API kind"
    provider = call.target.provider
    payload = orjson.dumps(translation.request({**body, "model": call.target.model}))
    headers = upstream_headers(provider, incoming)
    if provider.api_key_env is None:
        swap_credentials(provider.kind, headers)
    return payload, headers


def metered_endpoint(call: Call) -> str:
    """Return the usage parser's endpoint name for the call's native upstream response."""
    if call.translation is None:
        return call.endpoint.name
    return ENDPOINT_NAMES[call.translation.target]


def upstream_path(call: Call) -> str:
    return call.endpoint.path if call.translation is None else call.translation.path


def swap_credentials(kind: ProviderKind, headers: dict[str, str]) -> None:
    """Move a passed-through client key into the header the target provider reads.

    Only for providers without a key of their own: the OpenAI SDK sends
    ``Authorization: Bearer``, the Anthropic SDK ``x-api-key``, and the Gemini
    API reads ``x-goog-api-key``.
    """
    names = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}
    name = names.get(kind)
    if name is not None and name not in headers:
        scheme, _, key = headers.pop("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key:
            headers[name] = key
    elif kind == "openai" and "authorization" not in headers:
        key = headers.pop("x-api-key", "")
        if key:
            headers["authorization"] = f"Bearer {key}"


def translated_response(call: Call, status: int, content: bytes) -> tuple[int, bytes]:
    """Return the status and body of a native response written in the client's format.

    A success is translated; an error keeps its status and the provider's
    message in the client's error shape. A success that cannot be translated
    becomes a 502 error.
    """
    assert call.translation is not None
    body = _loads(content)
    if status != 200:
        return status, bytes(_client_error(call, status, body).body)
    try:
        return status, orjson.dumps(call.translation.response(body))
    except (TranslationError, UsageError) as exc:
        logger.warning("request %s: the response could not be translated: %s", call.request_id, exc)
        message = f"the response of '{call.target.provider.name}' could not be translated: {exc}"
        error = error_response(call.endpoint.kind, 502, message, error_type="server_error")
        return 502, bytes(error.body)


def _client_error(call: Call, status: int, body: Mapping[str, Any]) -> Response:
    error = body.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    if not isinstance(message, str) or not message:
        message = f"upstream '{call.target.provider.name}' answered HTTP {status}"
    error_type = error.get("type") if isinstance(error, Mapping) else None
    return error_response(
        call.endpoint.kind,
        status,
        message,
        error_type=error_type if isinstance(error_type, str) else None,
    )


def _loads(content: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, Mapping) else {}
