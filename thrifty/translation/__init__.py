"""Requests and responses translated between provider API formats.

The gateway uses a translation when the model a request goes to is served
by a provider whose API differs from the endpoint the client called: an
OpenAI SDK calling ``anthropic/claude-haiku-4-5`` through
``/v1/chat/completions``, or a route whose candidates span providers. The
usage is metered from the provider's native response before translation.
"""

from thrifty.translation.chat_to_gemini import chat_to_gemini
from thrifty.translation.chat_to_messages import DEFAULT_MAX_TOKENS, chat_to_messages
from thrifty.translation.gemini_replies import GeminiToChatStream, gemini_to_chat_completion
from thrifty.translation.messages_to_chat import messages_to_chat
from thrifty.translation.responses import chat_completion_to_message, message_to_chat_completion
from thrifty.translation.streams import ChatToMessagesStream, MessagesToChatStream, StreamTranslator
from thrifty.translation.translations import (
    ANTHROPIC_MESSAGES,
    ENDPOINT_NAMES,
    GEMINI_GENERATE,
    OPENAI_CHAT,
    ApiFormat,
    Translation,
    details,
    translation_between,
)

__all__ = [
    "ANTHROPIC_MESSAGES",
    "DEFAULT_MAX_TOKENS",
    "ENDPOINT_NAMES",
    "GEMINI_GENERATE",
    "OPENAI_CHAT",
    "ApiFormat",
    "ChatToMessagesStream",
    "GeminiToChatStream",
    "MessagesToChatStream",
    "StreamTranslator",
    "Translation",
    "chat_completion_to_message",
    "chat_to_gemini",
    "chat_to_messages",
    "details",
    "gemini_to_chat_completion",
    "message_to_chat_completion",
    "messages_to_chat",
    "translation_between",
]
