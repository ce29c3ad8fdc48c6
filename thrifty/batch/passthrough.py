"""The gateway's pass-through of the files and batches APIs, and the watcher of client batches.

``/v1/files`` and ``/v1/batches`` go to the OpenAI-format provider and
``/v1/messages/batches`` to the Anthropic one, bodies streamed both ways.
When a client creates a batch through the gateway, the batch becomes a
watched job (source ``gateway``), attributed from the request's
``X-Thrifty-*`` headers and metadata. The watcher polls it and, once it
ends, records every result in the ledger at batch rates.

A provider without ``api_key_env`` takes the client's own credentials, so
the watcher keeps the credentials of the request that created each batch,
in memory only. After a restart such a batch is polled again once its
client retrieves it through the gateway.

Key checks on these routes are the control middleware's
(``thrifty.control.middleware``). NOTE: no budget is reserved for a batch:
its cost is known only when its results are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from thrifty.batch.config import BatchConfig
from thrifty.batch.manager import BatchManager
from thrifty.batch.providers import BatchApi, ProviderBatch, anthropic_batch, api_for, openai_batch
from thrifty.batch.store import Job
from thrifty.config import GatewayConfig, ProviderConfig, ProviderKind
from thrifty.errors import BatchError, RequestError, ThriftyError, UpstreamError
from thrifty.gateway.attribution import attribute
from thrifty.gateway.error_responses import error_response
from thrifty.gateway.proxy import response_headers
from thrifty.gateway.upstream import UpstreamClient, upstream_headers
from thrifty.ledger import Ledger
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

PATHS = ("/v1/files", "/v1/batches", "/v1/messages/batches")
_CREATE_PATHS = {"/v1/batches": "openai", "/v1/messages/batches": "anthropic"}
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "anthropic-version")
_CHUNK_BYTES = 64 * 1024


class BatchPassthrough:
    """Forward batch and file requests to the provider, and record the batches clients create."""

    def __init__(
        self, config: GatewayConfig, ledger: Ledger, engine: CostEngine, client: UpstreamClient
    ) -> None:
        self.config = config
        self.settings: BatchConfig = config.sections.get("batch") or BatchConfig()
        self.client = client
        self.manager = BatchManager(
            config.db_url, ledger=ledger, engine=engine, api_factory=self._api_for
        )
        self._credentials: dict[str, dict[str, str]] = {}
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.watch:
            self._task = asyncio.create_task(self._watch(), name="thrifty-batch-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.manager.close()

    async def handle(self, request: Request) -> Response:
        """Forward one request to the provider of its API family."""
        kind: ProviderKind = (
            "anthropic" if request.url.path.startswith("/v1/messages") else "openai"
        )
        try:
            provider = self.config.provider_for_kind(kind)
            headers = _forwarded_headers(provider, request)
            body = await _forwarded_body(request)
        except ThriftyError as exc:
            status = exc.status if isinstance(exc, RequestError) else 500
            return error_response(kind, status, str(exc))
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            upstream = await self.client.send(request.method, provider, path, body, headers)
        except UpstreamError as exc:
            return error_response(kind, 504 if exc.timed_out else 502, str(exc))

        content_type = upstream.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            return _streamed(upstream)
        content = await upstream.read()
        if upstream.status == 200:
            content = await self._observe(request, provider, body, content)
        return Response(
            content,
            status_code=upstream.status,
            headers=response_headers(upstream),
            media_type=content_type,
        )

    async def refresh_watched(self) -> None:
        """Poll every watched batch the gateway can authenticate for, once."""
        async with self._lock:
            jobs = await asyncio.to_thread(
                self.manager.store.list_jobs, limit=1000, active_only=True, source="gateway"
            )
            for job in jobs:
                if job.api_key_env is None and job.job_id not in self._credentials:
                    continue
                try:
                    await asyncio.to_thread(self.manager.refresh, job.job_id)
                except ThriftyError as exc:
                    logger.warning("watched job %s: refresh failed: %s", job.job_id, exc)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.poll_interval_s)
            self._wakeup.clear()
            await self.refresh_watched()

    async def _observe(
        self, request: Request, provider: ProviderConfig, body: Any, content: bytes
    ) -> bytes:
        """Watch a batch just created, note one that ended, and point result URLs here."""
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            return content
        if not isinstance(value, dict):
            return content
        path = request.url.path
        if request.method == "POST" and path in _CREATE_PATHS:
            await self._start_watching(request, provider, body, value)
        elif request.method == "GET" and _is_batch_path(path):
            await self._note_retrieved(request, provider, value)
        if provider.kind == "anthropic":
            return orjson.dumps(_local_results_urls(value, str(request.base_url)))
        return content

    async def _start_watching(
        self, request: Request, provider: ProviderConfig, body: Any, value: dict[str, Any]
    ) -> None:
        batch = _batch(provider.kind, value)
        if batch is None:
            return
        created = _json_object(body) if isinstance(body, bytes) else {}
        attribution = attribute(request.headers, created)
        endpoint = str(created.get("endpoint") or "/v1/messages")
        job = await asyncio.to_thread(
            self.manager.watch,
            provider,
            batch,
            endpoint,
            team=attribution.team,
            project=attribution.project,
            user=attribution.user,
            feature=attribution.feature,
            session=attribution.session,
            tags=attribution.tags,
        )
        self._remember_credentials(job, request)

    async def _note_retrieved(
        self, request: Request, provider: ProviderConfig, value: dict[str, Any]
    ) -> None:
        batch = _batch(provider.kind, value)
        if batch is None:
            return
        job_id = await asyncio.to_thread(self.manager.store.job_of_batch, batch.id)
        if job_id is None:
            return
        job = await asyncio.to_thread(self.manager.store.require_job, job_id)
        self._remember_credentials(job, request)
        if batch.ended:
            self._wakeup.set()

    def _remember_credentials(self, job: Job, request: Request) -> None:
        if job.api_key_env is not None:
            return
        credentials = {
            name: request.headers[name] for name in _CREDENTIAL_HEADERS if name in request.headers
        }
        if credentials:
            self._credentials[job.job_id] = credentials

    def _api_for(self, job: Job) -> BatchApi:
        if job.api_key_env is not None:
            return api_for(job.provider_config())
        credentials = self._credentials.get(job.job_id)
        if credentials is None:
            raise BatchError(
                f"watched job {job.job_id} has no credentials since the gateway restarted; "
                "it is polled again when its client retrieves the batch through the gateway"
            )
        return api_for(job.provider_config(), headers=credentials)


def _forwarded_headers(provider: ProviderConfig, request: Request) -> dict[str, str]:
    headers = upstream_headers(provider, request.headers)
    content_type = request.headers.get("content-type")
    if content_type:
        headers["content-type"] = content_type
    else:
        headers.pop("content-type", None)
    length = request.headers.get("content-length")
    if length:
        headers["content-length"] = length
    return headers


async def _forwarded_body(request: Request) -> bytes | AsyncIterator[bytes] | None:
    """Return the body to forward: read whole for a batch creation, streamed otherwise."""
    if request.method in ("GET", "DELETE", "HEAD"):
        return None
    if request.url.path == "/v1/batches":
        try:
            return await request.body()
        except ClientDisconnect as exc:
            raise RequestError(400, "the client disconnected before sending the body") from exc
    return _client_chunks(request)


async def _client_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _streamed(upstream: aiohttp.ClientResponse) -> Response:
    """Stream a file download or a results file back to the client as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK_BYTES):
                yield chunk
        finally:
            upstream.release()

    return StreamingResponse(
        chunks(),
        status_code=upstream.status,
        headers=response_headers(upstream),
        media_type=upstream.headers.get("content-type", "application/octet-stream"),
    )


def _is_batch_path(path: str) -> bool:
    """Return whether a path names one batch: /v1/batches/ID or /v1/messages/batches/ID."""
    for prefix in ("/v1/batches/", "/v1/messages/batches/"):
        rest = path.removeprefix(prefix)
        if rest != path and rest and "/" not in rest:
            return True
    return False


def _batch(kind: ProviderKind, value: Mapping[str, Any]) -> ProviderBatch | None:
    expected = "message_batch" if kind == "anthropic" else "batch"
    if value.get("type", value.get("object")) != expected or not value.get("id"):
        return None
    return anthropic_batch(value) if kind == "anthropic" else openai_batch(value)


def _local_results_urls(value: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Point Anthropic ``results_url`` values at the gateway, so results pass through it too."""
    data = value.get("data")
    items = data if isinstance(data, list) else [value]
    for item in items:
        if isinstance(item, dict) and item.get("results_url") and item.get("id"):
            item["results_url"] = f"{base_url.rstrip('/')}/v1/messages/batches/{item['id']}/results"
    return value


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
