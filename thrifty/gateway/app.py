"""The gateway's ASGI application: routes, start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from thrifty.batch.passthrough import PATHS as BATCH_PATHS
from thrifty.batch.passthrough import BatchPassthrough
from thrifty.config import GatewayConfig, ProviderKind
from thrifty.errors import UpstreamError
from thrifty.gateway.endpoints import METERED_ENDPOINTS, Endpoint
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.pipeline import Step, start_steps, stop_steps
from thrifty.gateway.proxy import Gateway, response_headers
from thrifty.gateway.runtime import tune_runtime
from thrifty.gateway.steps import Resources, build_steps
from thrifty.gateway.upstream import UpstreamClient, upstream_headers
from thrifty.ledger import Ledger, RecordWriter, Spool, open_ledger
from thrifty.ledger.serialize import record_to_dict
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import preload_encodings

logger = logging.getLogger(__name__)

SANDBOX_MOUNT = "/sandbox"
DASHBOARD_MOUNT = "/ui"


def create_app(config: GatewayConfig, *, tune: bool = False) -> Starlette:
    """Build the gateway app; the ledger, writer and upstream session open at start-up.

    ``tune`` applies ``thrifty.gateway.runtime.tune_runtime`` once started: for a
    process that runs only the gateway, not for one that embeds it.
    """
    state = _State(config, tune=tune)
    routes: list[BaseRoute] = [
        Route(endpoint.path, partial(state.metered, endpoint), methods=["POST"])
        for endpoint in METERED_ENDPOINTS
    ]
    routes += [
        Route("/v1/models", state.models, methods=["GET"]),
        Route("/health", state.health, methods=["GET"]),
        Route("/thrifty/requests/{request_id}", state.request_record, methods=["GET"]),
        Route("/metrics", state.metrics, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]
    # Files and batches pass through to the providers; batches clients create are recorded.
    for prefix in BATCH_PATHS:
        routes.append(Route(prefix, state.batch_api, methods=["GET", "POST"]))
        routes.append(
            Route(f"{prefix}/{{rest:path}}", state.batch_api, methods=["GET", "POST", "DELETE"])
        )
    # Virtual keys, budgets and cutoffs: the admin API and the check of non-metered /v1 routes.
    from thrifty.control.admin import ADMIN_MOUNT, admin_router
    from thrifty.control.middleware import ControlMiddleware

    routes.append(Mount(ADMIN_MOUNT, app=admin_router(state.running_steps)))
    # The web dashboard; it reads state.ledger once the gateway has started.
    from thrifty.dashboard.app import create_dashboard

    routes.append(Mount(DASHBOARD_MOUNT, app=create_dashboard(config)))
    if config.sandbox:
        from thrifty.sandbox.app import create_app as create_sandbox

        routes.append(Mount(SANDBOX_MOUNT, app=create_sandbox()))
    app = Starlette(
        routes=routes,
        lifespan=state.lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        middleware=[Middleware(ControlMiddleware, steps=state.running_steps)],
    )
    app.state.thrifty = state
    return app


class _State:
    """What the running gateway holds: the pipeline and the resources it uses."""

    def __init__(self, config: GatewayConfig, *, tune: bool = False) -> None:
        self.config = config
        self.tune = tune
        self.gateway: Gateway | None = None
        self.ledger: Ledger | None = None
        self.batch_passthrough: BatchPassthrough | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        config = self.config
        # Token counts (estimates, and the mounted sandbox) need the encodings loaded.
        await asyncio.to_thread(preload_encodings)
        ledger = await asyncio.to_thread(open_ledger, config.db_url)
        spool = Spool(config.spool_dir / "spool.jsonl", fsync=config.spool_fsync)
        writer = RecordWriter(ledger, spool)
        await writer.start()
        client = UpstreamClient(config)
        await client.start()
        engine = CostEngine.from_config(config.sections.get("prices"))
        steps = build_steps(Resources(config, ledger, engine, client, writer))
        await start_steps(steps)
        self.ledger = ledger
        self.gateway = Gateway(config, engine, writer, client, steps)
        self.batch_passthrough = BatchPassthrough(config, ledger, engine, client)
        await self.batch_passthrough.start()
        logger.info(
            "gateway started: ledger %s, providers %s",
            _safe_url(config.db_url),
            ", ".join(config.providers),
        )
        if self.tune:
            tune_runtime()
        try:
            yield
        finally:
            await self.batch_passthrough.stop()
            await stop_steps(steps)
            await writer.stop()
            await client.close()
            ledger.close()
            logger.info("gateway stopped")

    def running_steps(self) -> tuple[Step, ...]:
        """Return the pipeline's steps once started (none before start-up)."""
        return () if self.gateway is None else self.gateway.steps

    async def metered(self, endpoint: Endpoint, request: Request) -> Response:
        assert self.gateway is not None
        writer = self.gateway.writer
        if self.config.spool_full == "reject" and not writer.accepting():
            # Serving the request would leave its record in memory only.
            return error_response(
                endpoint.kind,
                503,
                f"the gateway cannot record requests right now ({writer.spool_error}); "
                "free space where gateway.spool_dir points and retry, or set "
                "gateway.spool_full: fail_open to serve requests while their records "
                "are kept in memory only",
                error_type="server_error",
                headers={"retry-after": "1"},
            )
        return await self.gateway.handle(request, endpoint)

    async def batch_api(self, request: Request) -> Response:
        """Pass a files or batches request through to its provider (not metered itself)."""
        assert self.batch_passthrough is not None
        return await self.batch_passthrough.handle(request)

    async def models(self, request: Request) -> Response:
        """List models as the default OpenAI-format provider lists them (not metered)."""
        assert self.gateway is not None
        provider = self.config.provider_for_kind("openai")
        try:
            headers = upstream_headers(provider, request.headers)
            upstream = await self.gateway.client.send("GET", provider, "/v1/models", None, headers)
        except UpstreamError as exc:
            return error_response("openai", 504 if exc.timed_out else 502, str(exc))
        content = await upstream.read()
        return Response(
            content,
            status_code=upstream.status,
            headers=response_headers(upstream),
            media_type=upstream.headers.get("content-type", "application/json"),
        )

    async def health(self, request: Request) -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        """Serve the Prometheus metrics of the pipeline (thrifty.integrations.metrics)."""
        from thrifty.integrations.metrics import metrics_response

        assert self.gateway is not None
        return metrics_response(self.gateway.steps, request.headers)

    async def request_record(self, request: Request) -> Response:
        assert self.gateway is not None
        request_id = request.path_params["request_id"]
        record = await asyncio.to_thread(self.gateway.writer.lookup, request_id)
        if record is None:
            return error_response(
                "openai",
                404,
                f"no request with id '{request_id}' is recorded; "
                "use the X-Thrifty-Request-Id header of a response",
            )
        return Response(orjson.dumps(record_to_dict(record)), media_type="application/json")


async def _openapi(request: Request) -> Response:
    from thrifty.gateway.openapi import openapi_spec

    return Response(orjson.dumps(openapi_spec()), media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _kind_of_path(request.url.path)
    if exc.status_code == 404:
        message = (
            f"unknown endpoint {request.method} {request.url.path}; the gateway serves "
            "/v1/chat/completions, /v1/responses, /v1/embeddings, /v1/models and /v1/messages"
        )
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(kind, exc.status_code, message)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        _kind_of_path(request.url.path),
        500,
        "the gateway failed on this request; the error is in its log",
    )


def _kind_of_path(path: str) -> ProviderKind:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def _safe_url(url: str) -> str:
    """Return a database URL with any password removed, for logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable url>"


def gateway_of(app: Starlette) -> Gateway:
    """Return the running pipeline of an app made by ``create_app`` (after start-up)."""
    state = app.state.thrifty
    assert isinstance(state, _State)
    if state.gateway is None:
        raise RuntimeError("the gateway app has not started; run it under a server first")
    return state.gateway
