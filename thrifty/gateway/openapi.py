"""The gateway's OpenAPI 3.1 description, served at ``/openapi.json``.

It is written by hand from the routes in ``thrifty.gateway.app`` and
``thrifty.control.admin``: the metered provider endpoints (whose bodies
pass through to the provider, so only the fields the gateway reads are
described), the request lookup, health, metrics, and the admin API. A test
checks that every route the app serves is described here, except the files
and batches routes, which pass the providers' own APIs through unchanged, and
the dashboard under ``/ui``.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from thrifty.gateway.endpoints import METERED_ENDPOINTS, Endpoint

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_ERROR_STATUSES = ("400", "401", "403", "404", "413", "429", "500", "502", "503", "504")
_THRIFTY_HEADERS = {
    "X-Thrifty-Request-Id": "The id of the request's ledger record.",
    "X-Thrifty-Cost-USD": "The request's cost in USD, a decimal string (not for streams).",
}
_ATTRIBUTION_HEADERS = ("Team", "Project", "User", "Feature", "Session", "Tags")


def openapi_spec() -> dict[str, Any]:
    """Return the OpenAPI description of every route the gateway serves."""
    paths: dict[str, Any] = {endpoint.path: _metered(endpoint) for endpoint in METERED_ENDPOINTS}
    paths.update(_gateway_paths())
    paths.update(_admin_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Thrifty gateway",
            "version": version("thrifty"),
            "description": (
                "A metering proxy for LLM provider APIs. The /v1 endpoints take and "
                "return the provider's own formats; errors the gateway raises itself "
                "use the same formats."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {"OpenAIError": OPENAI_ERROR, "AnthropicError": ANTHROPIC_ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


def _errors(kind: str, statuses: tuple[str, ...] = _ERROR_STATUSES) -> dict[str, Any]:
    schema = {
        "$ref": f"#/components/schemas/{'AnthropicError' if kind == 'anthropic' else 'OpenAIError'}"
    }
    return {
        status: {
            "description": "An error in the provider's format.",
            "content": {"application/json": {"schema": schema}},
        }
        for status in statuses
    }


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _metered(endpoint: Endpoint) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "model": {"type": "string", "minLength": 1},
        "metadata": {"type": "object"},
    }
    if endpoint.streams:
        properties["stream"] = {"type": "boolean"}
    if endpoint.kind == "openai":
        properties["user"] = {"type": "string"}
    parameters = [
        {
            "name": f"X-Thrifty-{name}",
            "in": "header",
            "required": False,
            "description": "Attribution of the request's spend (Tags: key=value,key=value).",
            "schema": {"type": "string", "maxLength": 256},
        }
        for name in _ATTRIBUTION_HEADERS
    ]
    ok = _json_response("The provider's response, passed through.")
    ok["headers"] = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in _THRIFTY_HEADERS.items()
    }
    if endpoint.streams:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": f"Forward a {endpoint.name} request to its provider, metered.",
            "operationId": f"metered_{endpoint.name.replace('.', '_')}",
            "security": [{"bearer": []}, {"apiKey": []}, {}],
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["model"],
                            "properties": properties,
                            "additionalProperties": True,
                        }
                    }
                },
            },
            "responses": {"200": ok, **_errors(endpoint.kind)},
        }
    }


def _gateway_paths() -> dict[str, Any]:
    record = {
        "type": "object",
        "required": ["request_id"],
        "properties": {
            "request_id": {"type": "string"},
            "cost_usd": {"type": ["string", "null"]},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
        },
    }
    return {
        "/v1/models": {
            "get": {
                "summary": "List the default OpenAI-format provider's models (not metered).",
                "operationId": "list_models",
                "responses": {
                    "200": _json_response("The provider's model list."),
                    **_errors("openai", ("401", "502", "504")),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Report that the gateway is up.",
                "operationId": "health",
                "responses": {"200": _json_response('Always {"status": "ok"}.')},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This description.",
                "operationId": "openapi",
                "responses": {"200": _json_response("The OpenAPI 3.1 document.")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of the pipeline.",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Metrics in the Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/thrifty/requests/{request_id}": {
            "get": {
                "summary": "Look up one request's ledger record by its X-Thrifty-Request-Id.",
                "operationId": "request_record",
                "parameters": [
                    {
                        "name": "request_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json_response("The record.", record),
                    **_errors("openai", ("404",)),
                },
            }
        },
    }


_SCOPE = {"type": "string", "description": "all, or KIND:VALUE (key:ID, team:T, tag:k=v...)."}
_MONEY = {"type": ["string", "number"], "description": "USD, as a decimal string."}
_KEY_FIELDS = {
    "name": {"type": "string"},
    "team": {"type": ["string", "null"]},
    "project": {"type": ["string", "null"]},
    "user": {"type": ["string", "null"]},
    "feature": {"type": ["string", "null"]},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    "allowed_models": {"type": "array", "items": {"type": "string"}},
    "allowed_providers": {"type": "array", "items": {"type": "string"}},
    "allowed_tiers": {"type": "array", "items": {"type": "string"}},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "rpm": {"type": ["integer", "null"], "minimum": 1},
    "tpm": {"type": ["integer", "null"], "minimum": 1},
}
_BUDGET_FIELDS = {
    "scope": _SCOPE,
    "limit_usd": _MONEY,
    "period": {
        "type": "string",
        "description": "daily, weekly, monthly, quarterly, lifetime or rolling:24h.",
    },
    "thresholds": {"type": ["array", "null"], "items": {"type": "number"}},
}


def _admin(
    summary: str,
    operation_id: str,
    body: dict[str, Any] | None = None,
    *,
    path_id: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "security": [{"bearer": []}, {"apiKey": []}],
        "responses": {
            "200": _json_response("The result."),
            **_errors("openai", ("400", "401", "403")),
        },
    }
    if path_id is not None:
        operation["parameters"] = [
            {"name": path_id, "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": body, "additionalProperties": False}
                }
            },
        }
    return operation


def _admin_paths() -> dict[str, Any]:
    prefix = "/thrifty/admin"
    new_key = {
        **_KEY_FIELDS,
        "budgets": {"type": "array", "items": {"type": "object", "properties": _BUDGET_FIELDS}},
    }
    cutoff = {"scope": _SCOPE, "reason": {"type": ["string", "null"]}}
    rate = {"scope": _SCOPE, "rpm": _KEY_FIELDS["rpm"], "tpm": _KEY_FIELDS["tpm"]}
    audit = _admin("List the audit log, newest first.", "admin_audit")
    audit["parameters"] = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
        }
    ]
    return {
        f"{prefix}/keys": {
            "get": _admin("List virtual keys (never their secrets).", "admin_list_keys"),
            "post": _admin(
                "Create a virtual key; the response contains its secret, shown once.",
                "admin_create_key",
                new_key,
            ),
        },
        f"{prefix}/keys/{{key_id}}": {
            "get": _admin("Show a virtual key.", "admin_show_key", path_id="key_id"),
            "patch": _admin(
                "Change a virtual key.", "admin_update_key", _KEY_FIELDS, path_id="key_id"
            ),
        },
        f"{prefix}/keys/{{key_id}}/revoke": {
            "post": _admin("Revoke a virtual key.", "admin_revoke_key", path_id="key_id"),
        },
        f"{prefix}/budgets": {
            "get": _admin("List budgets with their spend.", "admin_list_budgets"),
            "post": _admin("Create a budget.", "admin_create_budget", _BUDGET_FIELDS),
        },
        f"{prefix}/budgets/{{budget_id}}": {
            "get": _admin("Show a budget and its spend.", "admin_show_budget", path_id="budget_id"),
            "patch": _admin(
                "Change a budget.",
                "admin_update_budget",
                {key: value for key, value in _BUDGET_FIELDS.items() if key != "scope"},
                path_id="budget_id",
            ),
            "delete": _admin("Delete a budget.", "admin_delete_budget", path_id="budget_id"),
        },
        f"{prefix}/rate-limits": {
            "get": _admin("List rate limits.", "admin_list_rate_limits"),
            "put": _admin("Set a scope's rate limits.", "admin_set_rate_limit", rate),
        },
        f"{prefix}/cutoffs": {
            "get": _admin("List cutoffs.", "admin_list_cutoffs"),
            "post": _admin("Stop every request in a scope.", "admin_cutoff_on", cutoff),
        },
        f"{prefix}/cutoffs/off": {
            "post": _admin("Lift a scope's cutoff.", "admin_cutoff_off", cutoff),
        },
        f"{prefix}/audit": {"get": audit},
    }
