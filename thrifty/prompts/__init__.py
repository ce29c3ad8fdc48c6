"""Prompt optimization: fewer input tokens for the same answer.

``optimize(body, settings)`` runs a feature's transforms on one OpenAI chat,
Anthropic messages or OpenAI Responses request body and reports the input
tokens each removed. The gateway step lives in ``thrifty.prompts.step`` and
the offline analysis in ``thrifty.prompts.analyze``.
"""

from thrifty.prompts.config import PromptsConfig, parse_prompts_config
from thrifty.prompts.pipeline import Optimization, TransformReport, optimize
from thrifty.prompts.protect import Protection
from thrifty.prompts.settings import (
    TRANSFORMS,
    CompressSettings,
    DedupeSettings,
    LayoutSettings,
    Settings,
    TrimSettings,
)

__all__ = [
    "TRANSFORMS",
    "CompressSettings",
    "DedupeSettings",
    "LayoutSettings",
    "Optimization",
    "PromptsConfig",
    "Protection",
    "Settings",
    "TransformReport",
    "TrimSettings",
    "optimize",
    "parse_prompts_config",
]
