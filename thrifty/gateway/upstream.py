"""Calls to the providers: which one serves a request, with which headers.

One aiohttp session is shared by every request; it keeps connections to
each provider open between calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass

import aiohttp

from thrifty.config import GatewayConfig, ProviderConfig, ProviderKind
from thrifty.errors import UpstreamError

logger = logging.getLogger(__name__)

# Request headers that describe the client's connection or Thrifty itself and
# are not forwarded. Credentials are replaced when the provider has its own key.
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "accept-encoding",
    }
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})

# Response headers that belong to the upstream connection, not the response.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "date",
        "server",
    }
)

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the provider and the model name it is sent with."""

    provider: ProviderConfig
    model: str
    renamed: bool


def resolve_target(config: GatewayConfig, kind: ProviderKind, model: str) -> Target:
    """Pick the provider for a model: a ``provider/`` prefix, else the kind's default.

    The prefix may name a provider of another API kind than the endpoint's
    (``anthropic/claude-haiku-4-5`` on ``/v1/chat/completions``); the gateway
    then translates the request (``thrifty.gateway.translating``).
    """
    prefix, sep, rest = model.partition("/")
    if sep and rest:
        provider = config.providers.get(prefix)
        if provider is not None:
            return Target(provider, rest, renamed=True)
    return Target(config.provider_for_kind(kind), model, renamed=False)


def upstream_headers(provider: ProviderConfig, incoming: Mapping[str, str]) -> dict[str, str]:
    """Build the headers sent upstream from the client's headers."""
    key = provider.api_key()
    headers: dict[str, str] = {}
    for name, value in incoming.items():
        lowered = name.lower()
        if lowered in _DROPPED_REQUEST_HEADERS or lowered.startswith("x-thrifty-"):
            continue
        if key is not None and lowered in _CREDENTIAL_HEADERS:
            continue
        headers[lowered] = value
    # Responses are read and metered here, so ask for them uncompressed.
    headers["accept-encoding"] = "identity"
    headers["content-type"] = "application/json"
    if provider.kind == "anthropic":
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if key is not None:
            headers["x-api-key"] = key
    elif provider.kind == "gemini":
        if key is not None:
            headers["x-goog-api-key"] = key
    elif key is not None:
        headers["authorization"] = f"Bearer {key}"
    return headers


class UpstreamClient:
    """The shared aiohttp session and the retry policy for connection failures."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._config.upstream_connect_timeout_s,
            sock_read=self._config.upstream_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        provider: ProviderConfig,
        path: str,
        body: bytes | AsyncIterable[bytes] | None,
        headers: dict[str, str],
        *,
        timeout_s: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; retry only when no connection could be made.

        A request that reached the provider is never sent twice, because the
        provider may already have billed it. ``timeout_s`` replaces the
        configured read timeout for this request (Flex calls wait longer).
        """
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        url = provider.base_url + path
        attempts = self._config.connect_retries + 1
        read_timeout_s = self._config.upstream_timeout_s if timeout_s is None else timeout_s
        timeout = None
        if timeout_s is not None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self._config.upstream_connect_timeout_s, sock_read=timeout_s
            )
        for attempt in range(1, attempts + 1):
            try:
                if timeout is not None:
                    return await self._session.request(
                        method, url, data=body, headers=headers, timeout=timeout
                    )
                return await self._session.request(method, url, data=body, headers=headers)
            except aiohttp.ClientConnectorError as exc:
                if attempt == attempts:
                    raise UpstreamError(
                        provider.name,
                        f"upstream '{provider.name}' at {provider.base_url} is unreachable "
                        f"({exc.os_error.strerror or exc.os_error}) after {attempts} attempts; "
                        "check its base_url and that it is running",
                    ) from exc
                logger.warning(
                    "upstream %s unreachable (attempt %d of %d): %s",
                    provider.name,
                    attempt,
                    attempts,
                    exc,
                )
                await asyncio.sleep(0.05 * 2**attempt)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise UpstreamError(
                    provider.name,
                    f"upstream '{provider.name}' did not answer within "
                    f"{read_timeout_s:g} s; retry, or raise "
                    "gateway.upstream_timeout_s in thrifty.yaml",
                    timed_out=True,
                ) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError(
                    provider.name, f"upstream '{provider.name}' failed: {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")
