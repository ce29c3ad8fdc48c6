"""The interface every transform implements, and what it is given to work with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from thrifty.prompts.counting import TokenCounter
from thrifty.prompts.dialect import Dialect
from thrifty.prompts.protect import Protection
from thrifty.prompts.settings import Settings


@dataclass(frozen=True, slots=True)
class Context:
    """The request's dialect, token counter, protection rules and feature settings."""

    dialect: Dialect
    counter: TokenCounter
    protection: Protection
    settings: Settings


class Transform(Protocol):
    """One prompt transform. ``lossless`` ones keep everything the model could use."""

    name: str
    lossless: bool

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        """Edit the body in place; return counts of what changed (``{"messages_dropped": 2}``).

        Every edit must be counted: when all counts are zero (other than the
        report-only keys of ``thrifty.prompts.pipeline.REPORT_ONLY_KEYS``),
        the body is taken as unchanged and not counted again.

        Protected text (``context.protection``) must stay byte-identical, and
        an item holding protected text must not be dropped.
        """
        ...


def protected_items(body: dict[str, Any], context: Context) -> set[int]:
    """Return the indices of conversation items that hold protected text."""
    indices: set[int] = set()
    if context.protection.patterns:
        for slot in context.dialect.slots(body):
            if slot.entry is not None and context.protection.spans(slot.text):
                indices.add(slot.entry)
    final = context.dialect.final_user_index(body)
    if final is not None and context.protection.final_user != "none":
        indices.add(final)
    return indices
