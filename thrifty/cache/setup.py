"""Building the cache's gateway steps from ``GatewayConfig.sections["cache"]``."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from thrifty.cache.cache import ResponseCache
from thrifty.cache.config import CacheConfig
from thrifty.cache.prompt_step import PromptCachingStep
from thrifty.cache.redis_tier import RedisTier
from thrifty.cache.step import ResponseCacheStep
from thrifty.cache.store import open_store
from thrifty.config import GatewayConfig
from thrifty.errors import CacheError, ConfigError
from thrifty.gateway.pipeline import Step

if TYPE_CHECKING:
    from thrifty.cache.embedders import Embedder

logger = logging.getLogger(__name__)


def cache_steps(config: GatewayConfig) -> list[Step]:
    """Return the response cache step, then the prompt caching step, as configured."""
    cache_config = config.sections.get("cache")
    if not isinstance(cache_config, CacheConfig):
        return []
    steps: list[Step] = [ResponseCacheStep(cache_config, *open_cache(cache_config, config.db_url))]
    if cache_config.prompt_caching is not None:
        steps.append(PromptCachingStep(cache_config.prompt_caching))
    return steps


def open_cache(
    config: CacheConfig, default_url: str, *, embedder: Embedder | None = None
) -> tuple[ResponseCache, Embedder | None]:
    """Open the store and tiers, load the embedder and rebuild the vector index."""
    index = None
    if config.uses_semantic:
        _require_numpy()
        from thrifty.cache.embedders import create_embedder
        from thrifty.cache.index import VectorIndex

        index = VectorIndex()
        if embedder is None:
            try:
                embedder = create_embedder(
                    config.semantic.embedder,
                    model=config.semantic.model,
                    gateway_url=config.semantic.gateway_url,
                )
            except CacheError as exc:
                raise ConfigError(f"cache.semantic.embedder: {exc}") from exc
    redis = None
    if config.storage.redis_url is not None:
        redis = RedisTier(
            config.storage.redis_url,
            prefix=config.storage.redis_prefix,
            ttl_s=config.storage.redis_ttl_s,
        )
    cache = ResponseCache(
        open_store(config.storage.url or default_url),
        redis=redis,
        index=index,
        embedder_name=embedder.name if embedder is not None else None,
        max_entries=config.max_entries,
        max_bytes=config.max_bytes,
    )
    cache.rebuild_index()
    return cache, embedder


def _require_numpy() -> None:
    try:
        importlib.import_module("numpy")
    except ImportError as exc:
        raise ConfigError(
            "the semantic cache (cache.mode: semantic) needs numpy for its vector index; "
            "install it with pip install 'thrifty[embeddings]'"
        ) from exc
