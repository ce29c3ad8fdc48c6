"""The gateway's cache lookup step: answer from the response cache, or store the answer.

On a hit the step replies itself: the cached body (or its event stream, when
the request streams) with ``X-Thrifty-Cache: hit`` or ``semantic-hit``, and
one ledger record with cost 0 whose ``details["cache"]`` names the call that
produced the answer and what that call cost. On a miss it notes the keys in
``call.extra`` so that ``finish`` can store the provider's answer, and marks
the record ``miss``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.cache.cache import ResponseCache
from thrifty.cache.config import CacheConfig, Policy
from thrifty.cache.controls import Controls, key_identity, read_controls
from thrifty.cache.embedders import Embedder, EmbedOrigin
from thrifty.cache.entry import CacheEntry
from thrifty.cache.keys import CACHEABLE_ENDPOINTS, RequestKey, Uncacheable, request_key
from thrifty.cache.streams import assemble_stream, stream_events
from thrifty.errors import CacheError
from thrifty.gateway.metering import Call, build_record
from thrifty.gateway.pipeline import Reply
from thrifty.gateway.proxy import thrifty_headers
from thrifty.gateway.streaming import CAPTURE_STREAM
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.usage import Usage, served_from_response

logger = logging.getLogger(__name__)

EXTRA_KEY = "cache"


@dataclass(slots=True)
class CallState:
    """What the step decided for one request, kept in ``call.extra["cache"]``."""

    key: RequestKey
    policy: Policy
    store: bool
    vector: Any = None
    embedding_request_id: str | None = None
    replied: bool = False


class ResponseCacheStep:
    """Exact, then semantic, lookup before the provider call; storage after it."""

    name = "cache"

    def __init__(
        self, config: CacheConfig, cache: ResponseCache, embedder: Embedder | None = None
    ) -> None:
        self.config = config
        self.cache = cache
        self.embedder = embedder

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        if call.endpoint.name not in CACHEABLE_ENDPOINTS:
            return body
        controls = read_controls(request.headers)
        state = self._start(call, request, body, controls)
        if state is None:
            return body
        call.extra[EXTRA_KEY] = state
        if state.store and call.streamed:
            call.extra[CAPTURE_STREAM] = True  # so finish() gets the streamed answer to store
        key, policy = state.key, state.policy
        if controls.lookup:
            entry = await self.cache.get(key.entry_id)
            if entry is not None:
                return self._reply(call, body, entry, "hit", None)
        if self._semantic(policy, key):
            await self._embed(call, request, state)
            if controls.lookup and state.vector is not None and key.query_text is not None:
                match = await self.cache.find_similar(
                    key.partition, state.vector, key.query_text, policy.threshold
                )
                if match is not None:
                    return self._reply(call, body, match.entry, "semantic-hit", match.similarity)
        return body

    def _start(
        self, call: Call, request: Request, body: dict[str, Any], controls: Controls
    ) -> CallState | None:
        """Decide whether the cache takes part in a request; None when it does not."""
        identity = key_identity(call.extra, request.headers)
        policy = controls.apply(self.config.policy_for(_attributes(call, identity)))
        if not policy.enabled or not (controls.lookup or controls.store):
            return None
        key = request_key(
            namespace=self._namespace(call, identity, controls),
            provider=call.target.provider.name,
            endpoint=call.endpoint.name,
            model=call.target.model,
            body=body,
        )
        if isinstance(key, Uncacheable):
            logger.debug("request %s not cached: %s", call.request_id, key.reason)
            return None
        if key.sampled and not policy.cache_sampled:
            return None
        return CallState(key=key, policy=policy, store=controls.store)

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        state = call.extra.get(EXTRA_KEY)
        if not isinstance(state, CallState) or state.replied:
            return
        record.cache_status = "miss"
        details: dict[str, Any] = {"status": "miss", "entry_id": state.key.entry_id}
        if state.embedding_request_id is not None:
            details["embedding_request_id"] = state.embedding_request_id
        stored = state.store and self._store(call, record, content, state)
        details["stored"] = stored
        record.details[EXTRA_KEY] = details

    async def close(self) -> None:
        """Apply queued writes and close the tiers and the embedder."""
        if self.embedder is not None:
            await self.embedder.aclose()
        if self.cache.redis is not None:
            await self.cache.redis.aclose()
        self.cache.close()

    def _namespace(self, call: Call, identity: str, controls: Controls) -> str:
        parts: list[str] = []
        for dimension in self.config.namespace:
            value = identity if dimension == "key" else getattr(call.attribution, dimension)
            # An unknown team, project, user or feature must not pool strangers together.
            parts.append(f"{dimension}={value}" if value else f"key={identity}")
        if controls.namespace is not None:
            parts.append(f"custom={controls.namespace}")
        return "|".join(dict.fromkeys(parts))

    def _semantic(self, policy: Policy, key: RequestKey) -> bool:
        return (
            policy.mode == "semantic"
            and self.embedder is not None
            and self.cache.index is not None
            and key.query_text is not None
        )

    async def _embed(self, call: Call, request: Request, state: CallState) -> None:
        assert self.embedder is not None
        assert state.key.query_text is not None
        attribution = call.attribution
        origin = EmbedOrigin(
            base_url=f"{request.url.scheme}://{request.url.netloc}",
            headers=request.headers,
            attribution={
                "team": attribution.team,
                "project": attribution.project,
                "user": attribution.user,
                "feature": attribution.feature,
                "session": attribution.session,
            },
        )
        try:
            embeddings = await self.embedder.embed([state.key.query_text], origin)
        except CacheError as exc:
            logger.warning(
                "request %s: embedding failed, using the exact cache only: %s",
                call.request_id,
                exc,
            )
            return
        state.vector = embeddings.vectors[0]
        state.embedding_request_id = embeddings.request_id

    def _reply(
        self,
        call: Call,
        body: dict[str, Any],
        entry: CacheEntry,
        status: str,
        similarity: float | None,
    ) -> Reply:
        self.cache.note_hit(entry.entry_id)
        record = self._hit_record(call, entry, status, similarity)
        headers = thrifty_headers(record)
        headers["x-thrifty-cache"] = status
        if similarity is not None:
            headers["x-thrifty-cache-similarity"] = f"{similarity:.4f}"
        headers["x-thrifty-overhead-ms"] = f"{(time.perf_counter() - call.started) * 1000:.3f}"
        if call.streamed:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            events = stream_events(
                entry.endpoint, orjson.loads(entry.response), include_usage=include_usage
            )
            headers["cache-control"] = "no-cache"
            response = Response(b"".join(events), headers=headers, media_type="text/event-stream")
        else:
            response = Response(entry.response, headers=headers, media_type="application/json")
        return Reply(response, record)

    def _hit_record(
        self, call: Call, entry: CacheEntry, status: str, similarity: float | None
    ) -> RequestRecord:
        cost = Cost(
            provider=call.target.provider.price_provider,
            model_requested=call.model_requested,
            model=None,
            service_tier="default",
            batch=False,
            cost_usd=Decimal(0),
        )
        record = build_record(
            call,
            status=200,
            usage=Usage(),
            cost=cost,
            model_served=entry.model,
            tier_served=None,
            ended=time.perf_counter(),
        )
        record.cache_status = status
        details: dict[str, Any] = {
            "status": status,
            "entry_id": entry.entry_id,
            "original_request_id": entry.request_id,
            "saved_usd": entry.cost_usd,
            "saved_input_tokens": entry.input_tokens,
            "saved_output_tokens": entry.output_tokens,
            "stored_at": entry.created_at.isoformat(),
        }
        if similarity is not None:
            details["similarity"] = round(similarity, 6)
        state = call.extra.get(EXTRA_KEY)
        if isinstance(state, CallState):
            # The gateway passes this record to finish() too; it is not a miss.
            state.replied = True
            if state.embedding_request_id is not None:
                details["embedding_request_id"] = state.embedding_request_id
        record.details[EXTRA_KEY] = details
        return record

    def _store(
        self, call: Call, record: RequestRecord, content: bytes | None, state: CallState
    ) -> bool:
        if record.http_status != 200 or record.error_type is not None or content is None:
            return False
        if call.streamed:
            assembled = assemble_stream(call.endpoint.name, content)
            if assembled is None:
                return False
            content = orjson.dumps(assembled)
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(parsed, dict):
            return False
        self.cache.put(self._entry(call, record, content, parsed, state))
        return True

    def _entry(
        self,
        call: Call,
        record: RequestRecord,
        content: bytes,
        parsed: dict[str, Any],
        state: CallState,
    ) -> CacheEntry:
        now = self.cache.clock()
        key = state.key
        vector_bytes: bytes | None = None
        if state.vector is not None:
            # numpy is needed only with the semantic cache, so it is imported only then.
            from thrifty.cache.index import vector_to_bytes

            vector_bytes = vector_to_bytes(state.vector)
        served = served_from_response(call.endpoint.name, parsed)
        return CacheEntry(
            entry_id=key.entry_id,
            namespace=key.namespace,
            partition=key.partition,
            provider=call.target.provider.name,
            endpoint=call.endpoint.name,
            model=served.model or call.target.model,
            response=content,
            request_id=record.request_id,
            cost_usd=record.cost_usd,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            feature=call.attribution.feature,
            query_text=key.query_text if vector_bytes is not None else None,
            embedder=self.embedder.name if vector_bytes is not None and self.embedder else None,
            vector=vector_bytes,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=state.policy.ttl_s),
        )


def _attributes(call: Call, identity: str) -> dict[str, str | None]:
    """The request's values for the ``match`` fields of cache rules."""
    attribution = call.attribution
    return {
        "key": identity,
        "team": attribution.team,
        "project": attribution.project,
        "user": attribution.user,
        "feature": attribution.feature,
        "route": call.endpoint.path,
        "model": call.model_requested,
    }
