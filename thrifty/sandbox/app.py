"""The sandbox ASGI app: OpenAI, Anthropic and Gemini endpoints, errors in each provider's shape."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.sandbox.anthropic_batches import (
    cancel_message_batch,
    create_message_batch,
    delete_message_batch,
    list_message_batches,
    message_batch_results,
    retrieve_message_batch,
)
from thrifty.sandbox.anthropic_messages import count_tokens, create_message
from thrifty.sandbox.errors import ApiError, error_response, family_for, route_path
from thrifty.sandbox.gemini import generate_content
from thrifty.sandbox.models import list_models, retrieve_model
from thrifty.sandbox.openai_batches import cancel_batch, create_batch, list_batches, retrieve_batch
from thrifty.sandbox.openai_chat import chat_completions
from thrifty.sandbox.openai_embeddings import create_embeddings
from thrifty.sandbox.openai_files import (
    delete_file,
    file_content,
    list_files,
    retrieve_file,
    upload_file,
)
from thrifty.sandbox.openai_responses import create_response
from thrifty.sandbox.settings import SandboxSettings
from thrifty.sandbox.state import SandboxState

logger = logging.getLogger(__name__)

ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/embeddings", create_embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/files", upload_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route("/v1/messages/batches", create_message_batch, methods=["POST"]),
    Route("/v1/messages/batches", list_message_batches, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", retrieve_message_batch, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", delete_message_batch, methods=["DELETE"]),
    Route("/v1/messages/batches/{batch_id}/cancel", cancel_message_batch, methods=["POST"]),
    Route("/v1/messages/batches/{batch_id}/results", message_batch_results, methods=["GET"]),
    Route("/v1beta/models/{target:path}", generate_content, methods=["POST"]),
]


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """Build the provider emulator; each app has its own prompt caches."""
    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected_error,
        },
    )
    app.state.sandbox = SandboxState(settings or SandboxSettings())
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    # Debug level: rejections are the sandbox's job, and benchmarks send many.
    logger.debug(
        "rejected %s %s with %d: %s", request.method, route_path(request), exc.status, exc.message
    )
    return error_response(exc, family_for(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Return routing errors (unknown path, wrong method) in the provider's error shape."""
    assert isinstance(exc, HTTPException)
    family = family_for(request)
    where = f"{request.method} {route_path(request)}"
    logger.info("no route for %s (%d)", where, exc.status_code)
    if exc.status_code == 404:
        message = f"Invalid URL ({where})" if family == "openai" else f"Not Found: {where}"
    elif exc.status_code == 405:
        message = f"Method not allowed ({where})"
    else:
        message = str(exc.detail)
    return error_response(ApiError(exc.status_code, message), family)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Close a request whose client disconnected before its body was read."""
    logger.info("client left during %s %s", request.method, route_path(request))
    return Response(status_code=400)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Return a provider-shaped 500 for a sandbox bug, with the traceback in the log only."""
    logger.error(
        "sandbox request %s %s failed: %r", request.method, route_path(request), exc, exc_info=exc
    )
    error = ApiError(500, "The sandbox failed while processing your request; see its log.")
    return error_response(error, family_for(request))
