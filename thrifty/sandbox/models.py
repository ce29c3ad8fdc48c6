"""GET /v1/models and /v1/models/{id}, in OpenAI's shape or, for Anthropic clients, Anthropic's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.catalog import KNOWN_MODELS, MODEL_CREATED, CatalogModel, find_model
from thrifty.sandbox.errors import ApiError, family_for
from thrifty.sandbox.state import admit
from thrifty.sandbox.wire import json_response


async def list_models(request: Request) -> Response:
    admission = await admit(request, family_for(request))
    if admission.family == "anthropic":
        listed = [
            _anthropic_model(model) for model in KNOWN_MODELS if model.provider == "anthropic"
        ]
        body: dict[str, Any] = {
            "data": listed,
            "has_more": False,
            "first_id": listed[0]["id"],
            "last_id": listed[-1]["id"],
        }
    else:
        body = {"object": "list", "data": [_openai_model(model) for model in KNOWN_MODELS]}
    return json_response(body, admission.headers)


async def retrieve_model(request: Request) -> Response:
    admission = await admit(request, family_for(request))
    model_id = str(request.path_params["model_id"])
    model = find_model(model_id)
    if model is None:
        raise ApiError(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    body = _anthropic_model(model) if admission.family == "anthropic" else _openai_model(model)
    return json_response(body, admission.headers)


def _openai_model(model: CatalogModel) -> dict[str, Any]:
    owner = "anthropic" if model.provider == "anthropic" else "openai"
    return {"id": model.id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def _anthropic_model(model: CatalogModel) -> dict[str, Any]:
    created = datetime.fromtimestamp(MODEL_CREATED, tz=UTC).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": model.id, "display_name": model.id, "created_at": created}
