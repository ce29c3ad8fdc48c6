"""Provider responses mapped into one normalized ``Usage``."""

from thrifty.usage.anthropic import usage_from_anthropic
from thrifty.usage.bedrock import usage_from_bedrock_converse
from thrifty.usage.endpoints import (
    ENDPOINTS,
    ServedInfo,
    served_from_response,
    usage_from_response,
)
from thrifty.usage.gemini import usage_from_gemini
from thrifty.usage.model import Usage
from thrifty.usage.openai import (
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_images,
    usage_from_openai_responses,
)
from thrifty.usage.stream import (
    AnthropicStreamTracker,
    GeminiStreamTracker,
    OpenAIChatStreamTracker,
    OpenAIResponsesStreamTracker,
    StreamUsageTracker,
    tracker_for,
)

__all__ = [
    "ENDPOINTS",
    "AnthropicStreamTracker",
    "GeminiStreamTracker",
    "OpenAIChatStreamTracker",
    "OpenAIResponsesStreamTracker",
    "ServedInfo",
    "StreamUsageTracker",
    "Usage",
    "served_from_response",
    "tracker_for",
    "usage_from_anthropic",
    "usage_from_bedrock_converse",
    "usage_from_gemini",
    "usage_from_openai_chat",
    "usage_from_openai_embeddings",
    "usage_from_openai_images",
    "usage_from_openai_responses",
    "usage_from_response",
]
