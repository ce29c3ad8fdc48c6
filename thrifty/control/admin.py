"""The admin API under ``/thrifty/admin``: keys, budgets, rate limits, cutoffs, audit.

Every route needs the master key, compared in constant time, as
``Authorization: Bearer KEY`` or ``x-api-key``. Request and response bodies are JSON;
money is a decimal string. A created key's secret is in the creation answer
only: it is stored as a hash.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from thrifty.control import alerts, requests
from thrifty.control.alerts import Alert
from thrifty.control.counters import from_nano
from thrifty.control.model import Budget, Cutoff, RateLimit, VirtualKey
from thrifty.control.plane import ControlPlane, presented_secret
from thrifty.control.scopes import Scope
from thrifty.control.secrets import hash_secret, new_key_id, new_secret, same_secret, shown_prefix
from thrifty.control.step import AdmissionStep
from thrifty.errors import ControlError
from thrifty.gateway.error_responses import error_response

logger = logging.getLogger(__name__)

ADMIN_MOUNT = "/thrifty/admin"
ACTOR = "master"

Handler = Callable[[ControlPlane, Request], Awaitable[Response]]


def admin_router(steps: Callable[[], Sequence[object]]) -> Router:
    """Build the admin routes; ``steps`` returns the running pipeline's steps."""

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            plane = _plane(steps())
            if plane is None or plane.master_key is None:
                return _error(
                    403,
                    "the admin API is off because no master key is set; set "
                    "$THRIFTY_MASTER_KEY (or control.master_key_env) and restart the gateway",
                )
            secret = presented_secret(request.headers)
            if secret is None or not same_secret(secret, plane.master_key):
                return _error(
                    401, "the admin API needs the master key as 'Authorization: Bearer KEY'"
                )
            try:
                return await handler(plane, request)
            except ControlError as exc:
                return _error(400, str(exc))

        return endpoint

    routes = [
        Route("/keys", guarded(list_keys), methods=["GET"]),
        Route("/keys", guarded(create_key), methods=["POST"]),
        Route("/keys/{key_id}", guarded(show_key), methods=["GET"]),
        Route("/keys/{key_id}", guarded(update_key), methods=["PATCH"]),
        Route("/keys/{key_id}/revoke", guarded(revoke_key), methods=["POST"]),
        Route("/budgets", guarded(list_budgets), methods=["GET"]),
        Route("/budgets", guarded(create_budget), methods=["POST"]),
        Route("/budgets/{budget_id}", guarded(show_budget), methods=["GET"]),
        Route("/budgets/{budget_id}", guarded(update_budget), methods=["PATCH"]),
        Route("/budgets/{budget_id}", guarded(delete_budget), methods=["DELETE"]),
        Route("/rate-limits", guarded(list_rate_limits), methods=["GET"]),
        Route("/rate-limits", guarded(set_rate_limit), methods=["PUT"]),
        Route("/cutoffs", guarded(list_cutoffs), methods=["GET"]),
        Route("/cutoffs", guarded(cutoff_on), methods=["POST"]),
        Route("/cutoffs/off", guarded(cutoff_off), methods=["POST"]),
        Route("/audit", guarded(audit_log), methods=["GET"]),
    ]
    return Router(routes=routes)


def _plane(steps: Sequence[object]) -> ControlPlane | None:
    for step in steps:
        if isinstance(step, AdmissionStep):
            return step.plane
    return None


# Keys


async def list_keys(plane: ControlPlane, request: Request) -> Response:
    keys = sorted(plane.snapshot.keys_by_hash.values(), key=lambda key: key.created_at)
    return _json({"keys": [key.public() for key in keys]})


async def create_key(plane: ControlPlane, request: Request) -> Response:
    body = await _body(request)
    requests.check_fields(body, requests.KEY_FIELDS | {"budgets"}, "a new key")
    secret = new_secret()
    now = datetime.now(UTC)
    key = _key_fields(
        VirtualKey(
            key_id=new_key_id(),
            key_hash=hash_secret(secret),
            prefix=shown_prefix(secret),
            created_at=now,
        ),
        body,
    )
    budgets = [_new_budget(item, Scope("key", key.key_id), now) for item in _budget_list(body)]
    limit = _key_rate_limit(key, body, now)

    await asyncio.to_thread(plane.store.create_key, key, ACTOR)
    for budget in budgets:
        await asyncio.to_thread(plane.store.create_budget, budget, ACTOR)
    if limit is not None:
        await asyncio.to_thread(plane.store.set_rate_limit, limit, ACTOR)
    await plane.changed()
    plane.raise_alert(Alert(alerts.KEY_CREATED, f"virtual key {key.key_id} created", key.public()))
    logger.info("virtual key %s created", key.key_id)
    answer = {"key": secret, **_key_view(plane, key)}
    return _json(answer, status=201)


async def show_key(plane: ControlPlane, request: Request) -> Response:
    key = _find_key(plane, request)
    return _json(_key_view(plane, key))


async def update_key(plane: ControlPlane, request: Request) -> Response:
    key = _find_key(plane, request)
    body = await _body(request)
    requests.check_fields(body, requests.KEY_FIELDS, "a key update")
    updated = _key_fields(key, body, partial=True)
    await asyncio.to_thread(plane.store.update_key, updated, ACTOR, _loggable(body))
    if "rpm" in body or "tpm" in body:
        current = plane.snapshot.rate_limits.get(Scope("key", key.key_id))
        rpm = current.rpm if current else None
        tpm = current.tpm if current else None
        if "rpm" in body:
            rpm = requests.limit(body, "rpm")
        if "tpm" in body:
            tpm = requests.limit(body, "tpm")
        limit = RateLimit(Scope("key", key.key_id), rpm, tpm, datetime.now(UTC))
        await asyncio.to_thread(plane.store.set_rate_limit, limit, ACTOR)
    await plane.changed()
    return _json(_key_view(plane, updated))


async def revoke_key(plane: ControlPlane, request: Request) -> Response:
    key = _find_key(plane, request)
    now = datetime.now(UTC)
    if key.revoked_at is None:
        await asyncio.to_thread(plane.store.revoke_key, key.key_id, now, ACTOR)
        await plane.changed()
        plane.raise_alert(
            Alert(alerts.KEY_REVOKED, f"virtual key {key.key_id} revoked", {"key_id": key.key_id})
        )
        logger.info("virtual key %s revoked", key.key_id)
    return _json(_key_view(plane, replace(key, revoked_at=key.revoked_at or now)))


# Budgets


async def list_budgets(plane: ControlPlane, request: Request) -> Response:
    views = [await _budget_view(plane, budget) for budget in plane.snapshot.budgets]
    return _json({"budgets": views})


async def create_budget(plane: ControlPlane, request: Request) -> Response:
    body = await _body(request)
    requests.check_fields(
        body, frozenset({"scope", "limit_usd", "period", "thresholds"}), "a budget"
    )
    budget = _new_budget(body, requests.scope(body), datetime.now(UTC))
    await asyncio.to_thread(plane.store.create_budget, budget, ACTOR)
    await plane.changed()
    return _json(await _budget_view(plane, budget), status=201)


async def show_budget(plane: ControlPlane, request: Request) -> Response:
    return _json(await _budget_view(plane, _find_budget(plane, request)))


async def update_budget(plane: ControlPlane, request: Request) -> Response:
    budget = _find_budget(plane, request)
    body = await _body(request)
    requests.check_fields(body, frozenset({"limit_usd", "period", "thresholds"}), "a budget update")
    updated = replace(
        budget,
        limit_usd=requests.money(body["limit_usd"], "limit_usd")
        if "limit_usd" in body
        else budget.limit_usd,
        period=requests.period(body) if "period" in body else budget.period,
        thresholds=requests.thresholds(body["thresholds"])
        if "thresholds" in body
        else budget.thresholds,
    )
    await asyncio.to_thread(plane.store.update_budget, updated, ACTOR)
    await plane.changed()
    return _json(await _budget_view(plane, updated))


async def delete_budget(plane: ControlPlane, request: Request) -> Response:
    budget = _find_budget(plane, request)
    await asyncio.to_thread(plane.store.delete_budget, budget.budget_id, ACTOR)
    await plane.changed()
    return _json({"deleted": budget.budget_id})


# Rate limits


async def list_rate_limits(plane: ControlPlane, request: Request) -> Response:
    limits = sorted(plane.snapshot.rate_limits.values(), key=lambda limit: str(limit.scope))
    return _json({"rate_limits": [limit.public() for limit in limits]})


async def set_rate_limit(plane: ControlPlane, request: Request) -> Response:
    body = await _body(request)
    requests.check_fields(body, frozenset({"scope", "rpm", "tpm"}), "a rate limit")
    limit = RateLimit(
        requests.scope(body),
        requests.limit(body, "rpm"),
        requests.limit(body, "tpm"),
        datetime.now(UTC),
    )
    await asyncio.to_thread(plane.store.set_rate_limit, limit, ACTOR)
    await plane.changed()
    return _json(limit.public())


# Cutoffs and audit


async def list_cutoffs(plane: ControlPlane, request: Request) -> Response:
    cutoffs = sorted(plane.snapshot.cutoffs.values(), key=lambda cutoff: str(cutoff.scope))
    return _json({"cutoffs": [cutoff.public() for cutoff in cutoffs]})


async def cutoff_on(plane: ControlPlane, request: Request) -> Response:
    body = await _body(request)
    requests.check_fields(body, frozenset({"scope", "reason"}), "a cutoff")
    cutoff = Cutoff(requests.scope(body), datetime.now(UTC), requests.optional_text(body, "reason"))
    await asyncio.to_thread(plane.store.cutoff_on, cutoff, ACTOR)
    await plane.changed()
    logger.warning("cutoff on for %s: %s", cutoff.scope, cutoff.reason or "no reason given")
    plane.raise_alert(
        Alert(
            alerts.CUTOFF_ON,
            f"cutoff on for {cutoff.scope}: {cutoff.reason or 'no reason given'}",
            cutoff.public(),
        )
    )
    return _json(cutoff.public(), status=201)


async def cutoff_off(plane: ControlPlane, request: Request) -> Response:
    body = await _body(request)
    requests.check_fields(body, frozenset({"scope", "reason"}), "a cutoff")
    scope = requests.scope(body)
    reason = requests.optional_text(body, "reason")
    was_on = await asyncio.to_thread(plane.store.cutoff_off, scope, ACTOR, reason)
    await plane.changed()
    if was_on:
        logger.warning("cutoff off for %s", scope)
        plane.raise_alert(
            Alert(
                alerts.CUTOFF_OFF,
                f"cutoff off for {scope}",
                {"scope": str(scope), "reason": reason},
            )
        )
    return _json({"scope": str(scope), "was_on": was_on})


async def audit_log(plane: ControlPlane, request: Request) -> Response:
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise ControlError(f"limit is {raw!r}; give a number from 1 to 10000")
    entries = await asyncio.to_thread(plane.store.audit_log, int(raw))
    return _json({"entries": entries})


# Helpers


def _key_fields(key: VirtualKey, body: dict[str, Any], *, partial: bool = False) -> VirtualKey:
    changes: dict[str, Any] = {}
    for name in ("name", "team", "project", "user", "feature"):
        if not partial or name in body:
            changes[name] = requests.optional_text(body, name)
    if not partial or "tags" in body:
        changes["tags"] = requests.tags(body)
    for name in ("allowed_models", "allowed_providers"):
        if not partial or name in body:
            changes[name] = requests.text_list(body, name)
    if not partial or "allowed_tiers" in body:
        changes["allowed_tiers"] = requests.tiers(body)
    if not partial or "expires_at" in body:
        changes["expires_at"] = requests.timestamp(body, "expires_at")
    return replace(key, **changes)


def _key_rate_limit(key: VirtualKey, body: dict[str, Any], now: datetime) -> RateLimit | None:
    rpm, tpm = requests.limit(body, "rpm"), requests.limit(body, "tpm")
    if rpm is None and tpm is None:
        return None
    return RateLimit(Scope("key", key.key_id), rpm, tpm, now)


def _budget_list(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("budgets", [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ControlError(f"'budgets' is {value!r}; give a list of {{limit_usd, period}} objects")
    return value


def _new_budget(body: dict[str, Any], scope: Scope, now: datetime) -> Budget:
    requests.check_fields(
        body, frozenset({"scope", "limit_usd", "period", "thresholds"}), "a budget"
    )
    if "limit_usd" not in body:
        raise ControlError("a budget needs 'limit_usd', its limit in USD such as \"100.00\"")
    return Budget(
        budget_id="bud_" + secrets.token_hex(6),
        scope=scope,
        limit_usd=requests.money(body["limit_usd"], "limit_usd"),
        period=requests.period(body),
        created_at=now,
        thresholds=requests.thresholds(body.get("thresholds")),
    )


def _key_view(plane: ControlPlane, key: VirtualKey) -> dict[str, Any]:
    scope = Scope("key", key.key_id)
    limit = plane.snapshot.rate_limits.get(scope)
    budgets = [budget.public() for budget in plane.snapshot.budgets if budget.scope == scope]
    return {
        **key.public(),
        "budgets": budgets,
        "rpm": None if limit is None else limit.rpm,
        "tpm": None if limit is None else limit.tpm,
    }


async def _budget_view(plane: ControlPlane, budget: Budget) -> dict[str, Any]:
    view = budget.public()
    status = await plane.budget_status(budget)
    if status is not None:
        view["window"] = status.window
        view["spent_usd"] = format(from_nano(status.spent), "f")
        view["reserved_usd"] = format(from_nano(status.reserved), "f")
        view["resets_at"] = status.resets_at
    return view


def _find_key(plane: ControlPlane, request: Request) -> VirtualKey:
    key_id = request.path_params["key_id"]
    key = plane.snapshot.key(key_id)
    if key is None:
        raise ControlError(f"no virtual key with id {key_id!r}; list them with `thrifty keys list`")
    return key


def _find_budget(plane: ControlPlane, request: Request) -> Budget:
    budget_id = request.path_params["budget_id"]
    for budget in plane.snapshot.budgets:
        if budget.budget_id == budget_id:
            return budget
    raise ControlError(f"no budget with id {budget_id!r}; list them with `thrifty budgets list`")


def _loggable(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name in requests.KEY_FIELDS}


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ControlError("the request body must be a JSON object")
    return body


def _json(body: object, *, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return error_response("openai", status, message)
