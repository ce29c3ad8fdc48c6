"""Thrifty: meter, price, attribute and cut what you spend on LLM APIs.

``thrifty.track(client, feature=..., user=...)`` wraps an ``openai`` or
``anthropic`` client so that each call is recorded to the ledger with its
cost (see ``thrifty.integrations.track``). It is imported on first use, so
``import thrifty`` stays cheap for the CLI and the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.integrations.track import Tracker, track

__all__ = ["Tracker", "track"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from thrifty.integrations import track as module

        return getattr(module, name)
    raise AttributeError(f"module 'thrifty' has no attribute {name!r}")
