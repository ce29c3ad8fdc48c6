"""Readers for public LLM traffic traces, prompt synthesis and trace replay."""

from thrifty.traces.readers import FORMATS, TraceFormat, detect_format, read_trace
from thrifty.traces.replay import (
    COST_HEADER,
    ReplaySummary,
    RequestResult,
    api_base_url,
    replay,
)
from thrifty.traces.rows import BLOCK_TOKENS, TraceRow
from thrifty.traces.synthesis import ChatPrompt, PromptBuilder

__all__ = [
    "BLOCK_TOKENS",
    "COST_HEADER",
    "FORMATS",
    "ChatPrompt",
    "PromptBuilder",
    "ReplaySummary",
    "RequestResult",
    "TraceFormat",
    "TraceRow",
    "api_base_url",
    "detect_format",
    "read_trace",
    "replay",
]
