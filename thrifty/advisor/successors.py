"""Newer models of the same family, for the model-update lever.

Each entry maps a model to the newer model its provider offers in the same
family and role. The advisor suggests a move only when the successor prices
the same tokens lower; it never claims the quality is the same.
"""

from __future__ import annotations

SUCCESSORS: dict[str, str] = {
    "gpt-4": "gpt-4o",
    "gpt-4-turbo": "gpt-4o",
    "gpt-4-1106-preview": "gpt-4o",
    "gpt-4-0125-preview": "gpt-4o",
    "gpt-3.5-turbo": "gpt-4o-mini",
    "gpt-4o": "gpt-4.1",
    "gpt-4o-mini": "gpt-4.1-mini",
    "o1": "o3",
    "o1-mini": "o4-mini",
    "o3-mini": "o4-mini",
    "claude-3-opus-20240229": "claude-opus-4-1",
    "claude-3-opus-latest": "claude-opus-4-1",
    "claude-opus-4-0": "claude-opus-4-1",
    "claude-3-haiku-20240307": "claude-3-5-haiku-latest",
    "gemini-1.5-pro": "gemini-2.5-pro",
    "gemini-1.5-flash": "gemini-2.5-flash",
}
