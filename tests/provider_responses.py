"""Response bodies in the providers' real shapes, shared by the usage, pricing and CLI tests.

Field names follow the official SDK types (``openai.types.CompletionUsage``,
``openai.types.responses.ResponseUsage``, ``anthropic.types.Usage``) and the
Gemini API reference for ``usageMetadata``. ``assert_sdk_fields`` checks a
body against an SDK model, so a misspelt field fails a test.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

OPENAI_CHAT_CACHED: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The invoice total is $1,284.50.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

OPENAI_CHAT_REASONING: dict[str, Any] = {
    "id": "chatcmpl-CAz5XH0ZwYJbFRm0xiNvo9Gq6rNvd",
    "object": "chat.completion",
    "created": 1756300000,
    "model": "gpt-5-2025-08-07",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "42", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 1500,
        "total_tokens": 2700,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 1280,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "flex",
    "system_fingerprint": None,
}

OPENAI_RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "service_tier": "default",
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 3000,
        "input_tokens_details": {"cached_tokens": 2048},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 3900,
    },
}

OPENAI_EMBEDDINGS: dict[str, Any] = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [{"type": "text", "text": "Here is the summary of the contract."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 1500,
        "cache_read_input_tokens": 8000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 500},
        "output_tokens": 400,
        "service_tier": "standard",
    },
}

ANTHROPIC_THINKING_SEARCH: dict[str, Any] = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": "The match ended 2-1."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12000,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 2000,
        "output_tokens_details": {"thinking_tokens": 1500},
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
        "service_tier": "batch",
    },
}

GEMINI_THINKING: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "parts": [{"text": "The capital of Australia is Canberra."}],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12000,
        "candidatesTokenCount": 400,
        "totalTokenCount": 13650,
        "cachedContentTokenCount": 8000,
        "thoughtsTokenCount": 1250,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 8000}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 400}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
}


def assert_sdk_fields(payload: Mapping[str, Any], model: type[BaseModel], path: str = "") -> None:
    """Assert that every key of ``payload`` is a field of the SDK ``model``, recursively."""
    for key, value in payload.items():
        assert key in model.model_fields, f"{path}{key} is not a field of {model.__name__}"
        nested = _model_of(model.model_fields[key].annotation)
        if nested is not None and isinstance(value, Mapping):
            assert_sdk_fields(value, nested, f"{path}{key}.")


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _model_of(argument)
            if found is not None:
                return found
    return None
