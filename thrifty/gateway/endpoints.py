"""The provider endpoints the gateway serves and how each is metered."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.config import ProviderKind


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One metered endpoint.

    ``name`` is the usage parser's endpoint name (``chat.completions``...),
    ``kind`` the API family that decides the upstream and the error format.
    """

    path: str
    name: str
    kind: ProviderKind
    streams: bool


CHAT_COMPLETIONS = Endpoint("/v1/chat/completions", "chat.completions", "openai", streams=True)
RESPONSES = Endpoint("/v1/responses", "responses", "openai", streams=True)
EMBEDDINGS = Endpoint("/v1/embeddings", "embeddings", "openai", streams=False)
MESSAGES = Endpoint("/v1/messages", "messages", "anthropic", streams=True)

METERED_ENDPOINTS: tuple[Endpoint, ...] = (CHAT_COMPLETIONS, RESPONSES, EMBEDDINGS, MESSAGES)
