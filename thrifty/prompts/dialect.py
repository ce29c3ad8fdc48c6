"""The request shapes the transforms read and edit, behind one small interface.

Transforms work on the provider's own JSON body, edited in place, so every
field they do not understand reaches the provider unchanged. A ``Dialect``
finds the text for them (``TextSlot``), splits the conversation into entries
with roles and tool calls (``Entry``), and counts each part's input tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from thrifty.errors import PromptError

# The gateway's endpoint names (``thrifty.gateway.endpoints``) of the APIs
# whose prompts can be optimized.
Api = Literal["chat.completions", "messages", "responses"]
API_NAMES: tuple[Api, ...] = ("chat.completions", "messages", "responses")

# ``other`` is an item with no role of its own, such as a Responses API
# reasoning item. It belongs with the assistant side of a turn.
Role = Literal["system", "user", "assistant", "tool", "other"]
SlotKind = Literal["text", "tool_result", "tool_arguments"]

TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})

# Counts the tokens of one text with the request's encoding.
TextCounter = Callable[[str], int]


@dataclass(slots=True)
class TextSlot:
    """One editable string of a request body: ``container[key]``.

    ``entry`` is the index of the conversation item that contains it, or None
    for a top-level system prompt. ``final_user`` marks text of the final
    user message and ``last_part`` its last text part.
    """

    container: dict[str, Any]
    key: str
    role: Role
    kind: SlotKind
    entry: int | None
    final_user: bool = False
    last_part: bool = False

    @property
    def text(self) -> str:
        value = self.container[self.key]
        assert isinstance(value, str)
        return value

    def set(self, text: str) -> None:
        self.container[self.key] = text


@dataclass(frozen=True, slots=True)
class Entry:
    """One conversation item: its role, the tool calls it makes and the ones it returns results for.

    ``starts_turn`` is true for a user message of the user's own, as opposed
    to one that only carries tool results.
    """

    index: int
    role: Role
    calls: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    starts_turn: bool = False


class Dialect(ABC):
    """One API's request shape."""

    api: Api
    provider: str
    # Tokens a conversation item costs beyond its text (role and turn markers).
    entry_overhead: int

    @abstractmethod
    def items(self, body: dict[str, Any]) -> list[Any] | None:
        """Return the body's list of conversation items (edited in place), or None."""

    @abstractmethod
    def entry(self, index: int, item: Any) -> Entry:
        """Describe one conversation item."""

    @abstractmethod
    def item_slots(self, index: int, item: Any) -> list[TextSlot]:
        """Return the text slots of one conversation item."""

    @abstractmethod
    def system_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        """Return the text slots of the top-level system prompt, if the API has one."""

    @abstractmethod
    def item_tokens(self, item: Any, count: TextCounter) -> int:
        """Count one conversation item's input tokens."""

    @abstractmethod
    def system_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        """Count the top-level system prompt's input tokens."""

    @abstractmethod
    def tool_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        """Count the tool definitions' input tokens."""

    @abstractmethod
    def fixed_overhead(self, body: dict[str, Any]) -> int:
        """Tokens the request costs whatever its content (reply priming)."""

    @abstractmethod
    def insert_context(self, body: dict[str, Any], before: int, text: str) -> bool:
        """Place system text just before item ``before``; return False if the API cannot.

        The cache-friendly layout moves text that varies per request there, so
        that everything before it is the same from one request to the next.
        """

    def tools(self, body: dict[str, Any]) -> list[Any]:
        tools = body.get("tools")
        return tools if isinstance(tools, list) else []

    def normalize(self, body: dict[str, Any]) -> None:
        """Restore rules the API enforces after items were dropped (no-op by default)."""
        return

    def entries(self, body: dict[str, Any]) -> list[Entry]:
        items = self.items(body) or []
        return [self.entry(index, item) for index, item in enumerate(items)]

    def final_user_index(self, body: dict[str, Any]) -> int | None:
        """Return the index of the last user message of the user's own, if any."""
        items = self.items(body) or []
        for index in range(len(items) - 1, -1, -1):
            if self.entry(index, items[index]).starts_turn:
                return index
        return None

    def final_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        """Return the text slots of the final user message, marked as such."""
        final = self.final_user_index(body)
        if final is None:
            return [slot for slot in self.slots(body) if slot.final_user]
        slots = self.item_slots(final, (self.items(body) or [])[final])
        mark_final(slots)
        return slots

    def slots(self, body: dict[str, Any]) -> list[TextSlot]:
        """Return every text slot of the body in prompt order, final user text marked."""
        slots = self.system_slots(body)
        final = self.final_user_index(body)
        for index, item in enumerate(self.items(body) or []):
            item_slots = self.item_slots(index, item)
            if index == final:
                mark_final(item_slots)
            slots += item_slots
        return slots

    def total_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        """Count the request's input tokens (see each dialect for the rule)."""
        total = self.fixed_overhead(body)
        total += self.system_tokens(body, count) + self.tool_tokens(body, count)
        for item in self.items(body) or []:
            total += self.item_tokens(item, count)
        return total


def mark_final(slots: list[TextSlot]) -> None:
    for slot in slots:
        slot.final_user = True
    text_slots = [slot for slot in slots if slot.kind == "text"]
    if text_slots:
        text_slots[-1].last_part = True


def content_slots(
    content_owner: dict[str, Any], key: str, role: Role, kind: SlotKind, entry: int | None
) -> list[TextSlot]:
    """Return the slots of a ``content`` value: a string or a list of text parts."""
    content = content_owner.get(key)
    if isinstance(content, str):
        return [TextSlot(content_owner, key, role, kind, entry)]
    slots: list[TextSlot] = []
    if isinstance(content, list):
        for part in content:
            if is_text_part(part):
                slots.append(TextSlot(part, "text", role, kind, entry))
    return slots


def is_text_part(part: object) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") in TEXT_PART_TYPES
        and isinstance(part.get("text"), str)
    )


def parts_text(content: object) -> str:
    """Join the text of a content value (string or parts) as the token counters do."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if is_text_part(part))
    return ""


def detect_api(body: Mapping[str, Any]) -> Api:
    """Guess which API a request body is for, from its fields.

    A body with ``input`` and no ``messages`` is a Responses API request. A
    ``messages`` body is Anthropic's when it has a top-level ``system``, a
    ``claude`` model, or Anthropic-only content blocks; otherwise OpenAI chat.
    """
    if "messages" not in body:
        if "input" in body:
            return "responses"
        raise PromptError(
            "the request body has neither 'messages' nor 'input'; "
            "give an OpenAI chat, Anthropic messages or OpenAI Responses request"
        )
    model = body.get("model")
    if "system" in body or (isinstance(model, str) and "claude" in model.lower()):
        return "messages"
    messages = body.get("messages")
    if isinstance(messages, list) and any(_has_anthropic_blocks(m) for m in messages):
        return "messages"
    return "chat.completions"


_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})


def _has_anthropic_blocks(message: object) -> bool:
    if not isinstance(message, Mapping):
        return False
    content = message.get("content")
    if not isinstance(content, list):
        return False
    return any(
        isinstance(part, Mapping) and part.get("type") in _ANTHROPIC_BLOCKS for part in content
    )


@cache
def dialect_for(api: Api) -> Dialect:
    """Return the dialect of an API by its endpoint name."""
    from thrifty.prompts.anthropic import AnthropicMessages
    from thrifty.prompts.openai_chat import OpenAIChat
    from thrifty.prompts.responses import OpenAIResponses

    dialects: dict[Api, Dialect] = {
        "chat.completions": OpenAIChat(),
        "messages": AnthropicMessages(),
        "responses": OpenAIResponses(),
    }
    return dialects[api]
