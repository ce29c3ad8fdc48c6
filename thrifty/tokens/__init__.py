"""Offline token counting for estimates before a request is sent."""

from thrifty.tokens.counting import count_chat_messages, count_text, message_text
from thrifty.tokens.encoding import (
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    preload_encodings,
)

__all__ = [
    "count_chat_messages",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "message_text",
    "preload_encodings",
]
