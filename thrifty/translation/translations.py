"""One request's translation: its request body, response and stream, both ways.

A ``Translation`` is made per request, because what the request asked
(JSON mode, the usage chunk) decides how its response is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from thrifty.errors import RequestError
from thrifty.translation.chat_to_gemini import chat_to_gemini, gemini_path
from thrifty.translation.chat_to_messages import chat_to_messages
from thrifty.translation.checks import as_text
from thrifty.translation.gemini_replies import GeminiToChatStream, gemini_to_chat_completion
from thrifty.translation.messages_to_chat import messages_to_chat
from thrifty.translation.responses import chat_completion_to_message, message_to_chat_completion
from thrifty.translation.streams import ChatToMessagesStream, MessagesToChatStream, StreamTranslator

ApiFormat = Literal["openai.chat", "anthropic.messages", "gemini.generate"]

OPENAI_CHAT: ApiFormat = "openai.chat"
ANTHROPIC_MESSAGES: ApiFormat = "anthropic.messages"
GEMINI_GENERATE: ApiFormat = "gemini.generate"

# The usage parser's endpoint name and the path of each format's native endpoint.
ENDPOINT_NAMES: dict[ApiFormat, str] = {
    OPENAI_CHAT: "chat.completions",
    ANTHROPIC_MESSAGES: "messages",
    GEMINI_GENERATE: "gemini",
}
PATHS: dict[ApiFormat, str] = {
    OPENAI_CHAT: "/v1/chat/completions",
    ANTHROPIC_MESSAGES: "/v1/messages",
}


class Translation(Protocol):
    """Serve a client of one API format from a provider of another.

    ``request`` must be called first: it returns the body to send to
    ``path`` and keeps what the response translation needs to know.
    """

    source: ApiFormat
    target: ApiFormat
    path: str

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def response(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def stream(self) -> StreamTranslator: ...


class ChatViaMessages:
    """An OpenAI Chat Completions client served by the Anthropic Messages API."""

    source: ApiFormat = OPENAI_CHAT
    target: ApiFormat = ANTHROPIC_MESSAGES

    def __init__(self) -> None:
        self.path = PATHS[ANTHROPIC_MESSAGES]
        self._json_tool: str | None = None
        self._include_usage = False

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        translated = chat_to_messages(body)
        self._json_tool = translated.json_tool
        self._include_usage = translated.include_usage
        return translated.body

    def response(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return message_to_chat_completion(body, self._json_tool)

    def stream(self) -> StreamTranslator:
        return MessagesToChatStream(include_usage=self._include_usage, json_tool=self._json_tool)


class MessagesViaChat:
    """An Anthropic Messages client served by the OpenAI Chat Completions API."""

    source: ApiFormat = ANTHROPIC_MESSAGES
    target: ApiFormat = OPENAI_CHAT

    def __init__(self) -> None:
        self.path = PATHS[OPENAI_CHAT]

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return messages_to_chat(body)

    def response(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return chat_completion_to_message(body)

    def stream(self) -> StreamTranslator:
        return ChatToMessagesStream()


class ChatViaGemini:
    """An OpenAI Chat Completions client served by the Gemini API.

    ``path`` names the model and the method, so it is set by ``request``.
    """

    source: ApiFormat = OPENAI_CHAT
    target: ApiFormat = GEMINI_GENERATE

    def __init__(self) -> None:
        self.path = ""
        self._include_usage = False

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        translated = chat_to_gemini(body)
        stream = body.get("stream") is True
        options = body.get("stream_options")
        self._include_usage = (
            stream and isinstance(options, Mapping) and options.get("include_usage") is True
        )
        self.path = gemini_path(as_text(body.get("model"), "model"), stream=stream)
        return translated

    def response(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return gemini_to_chat_completion(body)

    def stream(self) -> StreamTranslator:
        return GeminiToChatStream(include_usage=self._include_usage)


_TRANSLATIONS: dict[
    tuple[ApiFormat, ApiFormat], type[ChatViaMessages | MessagesViaChat | ChatViaGemini]
] = {
    (OPENAI_CHAT, ANTHROPIC_MESSAGES): ChatViaMessages,
    (ANTHROPIC_MESSAGES, OPENAI_CHAT): MessagesViaChat,
    (OPENAI_CHAT, GEMINI_GENERATE): ChatViaGemini,
}


def translation_between(source: str, target: str, *, model: str) -> Translation:
    """Return a new translation from the client's format to the provider's.

    Raises RequestError (400) when no translation between the two exists,
    naming the model that asked for it.
    """
    translation = _TRANSLATIONS.get((source, target))  # type: ignore[arg-type]
    if translation is None:
        served_from = [PATHS[client] for client, provider in _TRANSLATIONS if provider == target]
        raise RequestError(
            400,
            f"model '{model}' is served through the {target} API, and requests to the "
            f"{source} endpoint cannot be translated to it; call {' or '.join(served_from)} "
            "instead, or pick a model of this endpoint's provider",
            param="model",
        )
    return translation()


def details(translation: Translation) -> dict[str, str]:
    """Return the ledger's description of a translation: the client's and the provider's format."""
    return {"from": translation.source, "to": translation.target}
