"""Input token counts of request bodies, in total and by part of the prompt.

Counts are offline estimates under each dialect's rule (see
``thrifty.prompts.openai_chat``, ``anthropic`` and ``responses``). Texts are
encoded once and remembered, so counting a body again after a transform
costs little more than encoding the strings it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thrifty.prompts.dialect import Dialect, TextSlot
from thrifty.prompts.retrieval import retrieved_spans
from thrifty.tokens import encoding_name_for_model, get_encoding

ANTHROPIC_ENCODING = "o200k_base"


@lru_cache(maxsize=16384)
def _encoded_length(encoding_name: str, text: str) -> int:
    return len(get_encoding(encoding_name).encode(text, disallowed_special=()))


class TokenCounter:
    """Counts tokens of texts and bodies with one model's encoding."""

    def __init__(self, dialect: Dialect, model: str) -> None:
        self.dialect = dialect
        self.encoding_name = (
            ANTHROPIC_ENCODING
            if dialect.provider == "anthropic"
            else encoding_name_for_model(model)
        )

    def text(self, text: str) -> int:
        if not text:
            return 0
        return _encoded_length(self.encoding_name, text)

    def body(self, body: dict[str, Any]) -> int:
        return self.dialect.total_tokens(body, self.text)

    def item(self, item: Any) -> int:
        return self.dialect.item_tokens(item, self.text)

    def truncate(self, text: str, tokens: int) -> str:
        """Return the longest prefix of ``text`` that is at most ``tokens`` tokens."""
        encoding = get_encoding(self.encoding_name)
        encoded = encoding.encode(text, disallowed_special=())
        if len(encoded) <= tokens:
            return text
        prefix = encoding.decode(encoded[:tokens])
        # A cut inside a multi-byte character decodes to U+FFFD; drop it.
        return prefix.rstrip("\ufffd")


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A request's input tokens by part of the prompt; the parts add up to ``input_tokens``.

    ``user`` is the final user message (and the reply priming), ``history``
    every other message, tool calls and results included. ``retrieved`` is
    text inside retrieval markup (``<document>``, ``<context>``...) wherever
    it appears, taken out of the part that contains it.
    """

    system: int = 0
    tools: int = 0
    history: int = 0
    retrieved: int = 0
    user: int = 0

    @property
    def input_tokens(self) -> int:
        return self.system + self.tools + self.history + self.retrieved + self.user

    def as_dict(self) -> dict[str, int]:
        return {
            "system": self.system,
            "tools": self.tools,
            "history": self.history,
            "retrieved": self.retrieved,
            "user": self.user,
        }

    def __add__(self, other: Breakdown) -> Breakdown:
        return Breakdown(
            self.system + other.system,
            self.tools + other.tools,
            self.history + other.history,
            self.retrieved + other.retrieved,
            self.user + other.user,
        )


def breakdown(body: dict[str, Any], counter: TokenCounter) -> Breakdown:
    """Split a request's input tokens into system, tools, history, retrieved and user."""
    dialect = counter.dialect
    total = counter.body(body)
    tools = dialect.tool_tokens(body, counter.text)
    system = dialect.system_tokens(body, counter.text)
    final = dialect.final_user_index(body)
    items = dialect.items(body) or []
    user = 0
    for entry in dialect.entries(body):
        tokens = counter.item(items[entry.index])
        if entry.role == "system":
            system += tokens
        elif entry.index == final:
            user += tokens
    if final is None and not items:
        # A Responses API request whose input is one string.
        user = total - tools - system
    else:
        user += dialect.fixed_overhead(body)
    history = total - tools - system - user

    retrieved = {"system": 0, "history": 0, "user": 0}
    for slot in dialect.slots(body):
        found = sum(counter.text(slot.text[start:end]) for start, end in retrieved_spans(slot.text))
        if found:
            retrieved[_part_of(slot)] += found
    # A region counted alone can have a token or two more than its share of
    # the whole text, because of its edges. Never move more than the part has.
    retrieved["system"] = min(retrieved["system"], system)
    retrieved["history"] = min(retrieved["history"], history)
    retrieved["user"] = min(retrieved["user"], user)
    return Breakdown(
        system=system - retrieved["system"],
        tools=tools,
        history=history - retrieved["history"],
        retrieved=sum(retrieved.values()),
        user=user - retrieved["user"],
    )


def _part_of(slot: TextSlot) -> str:
    if slot.role == "system":
        return "system"
    return "user" if slot.final_user else "history"
