"""The gateway step for provider prompt caching: cache-friendly bodies and fingerprints.

For features listed in ``cache.prompt_caching.features`` it adds Anthropic
breakpoints or an OpenAI ``prompt_cache_key`` (see ``prompt_layout``). For
every request it can also record a fingerprint of the prompt in
``record.details["prompt"]``, which ``thrifty cache advise`` reads to find
prefixes that repeat without being cached.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from thrifty.cache.config import PromptCachingConfig
from thrifty.cache.prompt_layout import (
    PrefixRecurrence,
    add_anthropic_breakpoints,
    fingerprint,
    prompt_cache_key,
)
from thrifty.gateway.metering import Call
from thrifty.gateway.pipeline import Reply
from thrifty.ledger.record import RequestRecord

logger = logging.getLogger(__name__)

EXTRA_KEY = "prompt_fingerprint"
_PROMPT_ENDPOINTS = frozenset({"chat.completions", "responses", "messages"})


class PromptCachingStep:
    """Make requests of opted-in features cache-friendly; fingerprint every prompt."""

    name = "prompt_caching"

    def __init__(self, config: PromptCachingConfig) -> None:
        self.config = config
        self.recurrence = PrefixRecurrence()

    async def prepare(
        self, call: Call, request: Request, body: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        endpoint = call.endpoint.name
        if endpoint not in _PROMPT_ENDPOINTS:
            return body
        if self.config.fingerprints:
            call.extra[EXTRA_KEY] = fingerprint(endpoint, body)
        if not self.config.applies_to(call.attribution.feature):
            return body
        if endpoint == "messages":
            if self.config.anthropic_breakpoints:
                changed = add_anthropic_breakpoints(body, self.recurrence)
                return body if changed is None else changed
            return body
        return self._with_cache_key(call, body)

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        found = call.extra.get(EXTRA_KEY)
        if found is not None and record.cache_status not in ("hit", "semantic-hit"):
            record.details["prompt"] = found.to_json(scale_to=record.input_tokens or None)

    async def close(self) -> None:
        return None

    def _with_cache_key(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        if "prompt_cache_key" in body or self.config.openai_cache_key == "off":
            return body
        attribution = call.attribution
        key = prompt_cache_key(
            self.config.openai_cache_key, attribution.feature, attribution.session
        )
        return body if key is None else {**body, "prompt_cache_key": key}
