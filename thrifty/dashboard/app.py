"""The dashboard's Starlette router: static pages, the login form and JSON data endpoints.

The gateway mounts it at ``/ui``. It reads the running gateway's ledger
(``app.state.thrifty.ledger``) and cost engine, so it serves data only
after the gateway has started. Every data endpoint returns JSON, or CSV
with ``format=csv``. Charts use plotly.js from the ``plotly`` Python
package, served from ``/ui/vendor/plotly.min.js``: nothing is fetched from
another host at run time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from thrifty.config import GatewayConfig
from thrifty.control.config import ControlConfig
from thrifty.dashboard import csv_export, queries, savings, spender_queries, unit_costs
from thrifty.dashboard.advice import advice_view
from thrifty.dashboard.auth import DashboardAuth
from thrifty.dashboard.batches import batches_view
from thrifty.dashboard.budgets import budgets_view, control_events
from thrifty.dashboard.config import DashboardConfig
from thrifty.dashboard.login import (
    AUTH_SCOPE_KEY,
    ROLE_SCOPE_KEY,
    LoginRequired,
    login_form,
    login_submit,
    logout,
)
from thrifty.dashboard.view import STACK_DIMENSIONS, View, choice, parse_view, positive_int
from thrifty.errors import LedgerError, ReportError, RequestError
from thrifty.ledger import Ledger
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOP_DIMENSIONS = (
    "feature",
    "model",
    "team",
    "key",
    "project",
    "provider",
    "user",
    "session",
    "service_tier",
    "endpoint",
)
MAX_TOP_LIMIT = 500


def plotly_js_path() -> Path:
    """Return plotly.min.js as shipped in the ``plotly`` package's data."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def create_dashboard(config: GatewayConfig) -> LoginRequired:
    """Build the dashboard app for a gateway configuration, behind its login check."""
    settings = config.sections.get("dashboard")
    dashboard = settings if isinstance(settings, DashboardConfig) else DashboardConfig()
    control = config.sections.get("control")
    control = control if isinstance(control, ControlConfig) else ControlConfig()
    auth = DashboardAuth(
        master_key=control.master_key(),
        read_only_key=dashboard.read_only_key(),
        session_s=dashboard.session_hours * 3600,
    )
    if not dashboard.enabled:
        return LoginRequired(Router(routes=[], default=_disabled), auth)
    endpoints = _Endpoints(config, dashboard, control)
    routes: list[BaseRoute] = [
        Route("/", _page("index.html"), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/vendor/plotly.min.js", _plotly, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/api/me", endpoints.me, methods=["GET"]),
        Route("/api/overview", endpoints.overview, methods=["GET"]),
        Route("/api/series", endpoints.series, methods=["GET"]),
        Route("/api/top", endpoints.top, methods=["GET"]),
        Route("/api/savings", endpoints.savings, methods=["GET"]),
        Route("/api/unit-costs", endpoints.unit_costs, methods=["GET"]),
        Route("/api/spenders", endpoints.spenders, methods=["GET"]),
        Route("/api/requests", endpoints.recent, methods=["GET"]),
        Route("/api/requests/{request_id}", endpoints.request, methods=["GET"]),
        Route("/api/sessions/{session}", endpoints.session, methods=["GET"]),
        Route("/api/budgets", endpoints.budgets, methods=["GET"]),
        Route("/api/control", endpoints.control_events, methods=["GET"]),
        Route("/api/batches", endpoints.batches, methods=["GET"]),
        Route("/api/advice", endpoints.advice, methods=["GET"]),
    ]
    router = Router(routes=routes, default=_not_found)
    return LoginRequired(router, auth)


def _page(name: str) -> Callable[[Request], Any]:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / name, headers={"cache-control": "no-cache"})

    return page


async def _plotly(request: Request) -> Response:
    return FileResponse(
        plotly_js_path(),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=86400"},
    )


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    response = _error(404, f"no dashboard page or endpoint at {path}; the dashboard starts at /ui/")
    await response(scope, receive, send)


async def _disabled(scope: Any, receive: Any, send: Any) -> None:
    response = _error(404, "the dashboard is disabled: dashboard.enabled is false in thrifty.yaml")
    await response(scope, receive, send)


class _Endpoints:
    """The data endpoints; each reads the ledger in a worker thread."""

    def __init__(
        self, config: GatewayConfig, dashboard: DashboardConfig, control: ControlConfig
    ) -> None:
        self.config = config
        self.dashboard = dashboard
        self.control = control

    async def me(self, request: Request) -> Response:
        auth = request.scope.get(AUTH_SCOPE_KEY)
        required = isinstance(auth, DashboardAuth) and auth.required
        return _json({"role": request.scope.get(ROLE_SCOPE_KEY), "login_required": required})

    async def overview(self, request: Request) -> Response:
        view = _view(request)
        stack = choice(request.query_params, "stack", STACK_DIMENSIONS, "model")
        return await _answer(request, lambda ledger: queries.overview(ledger, view, stack))

    async def series(self, request: Request) -> Response:
        view = _view(request)
        stack = choice(request.query_params, "stack", STACK_DIMENSIONS, "model")
        return await _answer(
            request,
            lambda ledger: queries.spend_series(ledger, view, stack),
            csv_export.series_rows,
        )

    async def top(self, request: Request) -> Response:
        view = _view(request)
        dimension = choice(request.query_params, "dimension", TOP_DIMENSIONS, "feature")
        limit = positive_int(request.query_params, "limit", 20, MAX_TOP_LIMIT)

        def work(ledger: Ledger) -> dict[str, Any]:
            return {
                "view": view.public(),
                "dimension": dimension,
                "rows": _top_rows(ledger, view, dimension, limit),
            }

        return await _answer(request, work, csv_export.table_rows("rows"))

    async def savings(self, request: Request) -> Response:
        view = _view(request)
        engine = _engine(request)
        providers = self.config.providers

        def price_provider(name: str) -> str:
            provider = providers.get(name)
            return name if provider is None else provider.price_provider

        return await _answer(
            request,
            lambda ledger: savings.savings(ledger, view, engine, price_provider),
            csv_export.table_rows("features"),
        )

    async def unit_costs(self, request: Request) -> Response:
        view = _view(request)
        of = choice(request.query_params, "of", ("feature", "conversation"), "feature")
        compute = (
            unit_costs.feature_call_costs if of == "feature" else unit_costs.conversation_costs
        )
        return await _answer(request, lambda ledger: compute(ledger, view), csv_export.unit_rows)

    async def spenders(self, request: Request) -> Response:
        view = _view(request)
        kind = choice(request.query_params, "dimension", ("user", "customer"), "user")
        dimension = "user" if kind == "user" else f"tag:{self.dashboard.customer_tag}"
        limit = positive_int(request.query_params, "limit", 10, 100)
        return await _answer(
            request,
            lambda ledger: unit_costs.top_spenders(ledger, view, dimension, limit),
            csv_export.spender_rows,
        )

    async def recent(self, request: Request) -> Response:
        view = _view(request)
        limit = positive_int(request.query_params, "limit", queries.RECENT_REQUESTS, 1000)
        return await _answer(
            request,
            lambda ledger: {
                "view": view.public(),
                "rows": queries.recent_requests(ledger, view, limit),
            },
            csv_export.table_rows("rows"),
        )

    async def request(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        ledger = _ledger(request)
        found = await asyncio.to_thread(queries.request_view, ledger, request_id)
        if found is None:
            return _error(404, f"no request with id {request_id!r} is recorded in the ledger")
        return _json(found)

    async def session(self, request: Request) -> Response:
        session = request.path_params["session"]
        return await _answer(
            request,
            lambda ledger: queries.session_view(ledger, session),
            csv_export.table_rows("requests"),
        )

    async def budgets(self, request: Request) -> Response:
        now = datetime.now(UTC)
        return await _answer(
            request,
            lambda ledger: budgets_view(ledger, now, self.control),
            csv_export.table_rows("budgets"),
        )

    async def control_events(self, request: Request) -> Response:
        return await _answer(request, control_events)

    async def batches(self, request: Request) -> Response:
        return await _answer(request, batches_view, csv_export.table_rows("jobs"))

    async def advice(self, request: Request) -> Response:
        view = _view(request)
        engine = _engine(request)
        now = datetime.now(UTC)
        return await _answer(request, lambda ledger: advice_view(ledger, view, engine, now))


def _top_rows(ledger: Ledger, view: View, dimension: str, limit: int) -> list[dict[str, Any]]:
    """Return the top list of ``dimension``, from the spender rollups where they answer it."""
    if dimension == "user" and spender_queries.user_rollup_usable(view):
        return spender_queries.top_users(ledger, view, limit)
    if dimension == "session":
        sessions = spender_queries.top_sessions(ledger, view, limit)
        if sessions is not None:
            return sessions
    return queries.top_rows(ledger.report(view.query([dimension], limit=limit)))


def _view(request: Request) -> View:
    params = request.query_params
    return parse_view(_single_values(params), params.getlist("tag"), datetime.now(UTC))


def _single_values(params: QueryParams) -> dict[str, str]:
    return {key: params[key] for key in params}


async def _answer(
    request: Request,
    work: Callable[[Ledger], dict[str, Any]],
    csv_rows: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
) -> Response:
    """Run ``work`` on the ledger in a thread and return its JSON, or CSV on request."""
    wants_csv = request.query_params.get("format") == "csv"
    if wants_csv and csv_rows is None:
        return _error(400, f"{request.url.path} has no CSV form; drop format=csv")
    ledger = _ledger(request)
    try:
        data = await asyncio.to_thread(work, ledger)
    except ReportError as exc:
        return _error(400, str(exc))
    except LedgerError as exc:
        logger.warning("dashboard query on %s failed: %s", request.url.path, exc)
        return _error(503, str(exc))
    if wants_csv and csv_rows is not None:
        return csv_export.csv_response(csv_rows(data), request.url.path)
    return _json(data)


def _ledger(request: Request) -> Ledger:
    state = getattr(request.app.state, "thrifty", None)
    ledger = getattr(state, "ledger", None)
    if not isinstance(ledger, Ledger):
        raise RequestError(
            503, "the gateway has not opened its ledger yet; retry once it has started"
        )
    return ledger


def _engine(request: Request) -> CostEngine:
    state = getattr(request.app.state, "thrifty", None)
    engine = getattr(getattr(state, "gateway", None), "engine", None)
    return engine if isinstance(engine, CostEngine) else CostEngine()


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _error(status: int, message: str, param: str | None = None) -> Response:
    return _json({"error": {"message": message, "param": param}}, status)
