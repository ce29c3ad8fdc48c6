"""Context trimming: fit a conversation into a token budget.

Trimming works from the oldest content to the newest, in three passes that
each stop once the request fits:

1. shorten old tool results to their first tokens, with a note saying how
   many tokens were removed;
2. drop old tool call exchanges: an assistant message that calls tools
   together with the messages that carry every result;
3. drop old user turns whole: a user message and everything up to the next.

A tool call is never separated from its result, so the conversation stays
valid for the API. System messages, the first turn, the final user message
and any message holding protected text are kept. A request that still does
not fit is sent as trimmed, with ``over_budget`` set in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thrifty.prompts.dialect import Entry
from thrifty.prompts.transform import Context, protected_items

SHORTENED_NOTE = "[thrifty: {removed} tokens of this tool result removed to fit the context budget]"


@dataclass(frozen=True, slots=True)
class Exchange:
    """Item indices of one tool call exchange, and which of them carry results."""

    indices: tuple[int, ...]
    results: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Turn:
    """Item indices of one user turn: the user message and everything up to the next."""

    indices: tuple[int, ...]


class Trim:
    name = "trim"
    lossless = False

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        changes = {
            "tool_results_shortened": 0,
            "exchanges_dropped": 0,
            "turns_dropped": 0,
            "over_budget": 0,
        }
        budget = context.settings.trim.max_input_tokens
        if budget is None:
            return changes
        items = context.dialect.items(body)
        state = _State(body, context, budget)
        if state.fits():
            return changes
        if items:
            changes["tool_results_shortened"] = state.shorten_tool_results()
            changes["exchanges_dropped"] = state.drop_exchanges()
            changes["turns_dropped"] = state.drop_turns()
            items[:] = [item for index, item in enumerate(items) if index not in state.dropped]
            if state.dropped:
                context.dialect.normalize(body)
        changes["over_budget"] = int(not state.fits())
        return changes


class _State:
    """The conversation being trimmed: per-item token counts and what was dropped."""

    def __init__(self, body: dict[str, Any], context: Context, budget: int) -> None:
        self.body = body
        self.context = context
        self.budget = budget
        self.settings = context.settings.trim
        self.items = context.dialect.items(body) or []
        self.tokens = [context.counter.item(item) for item in self.items]
        self.total = context.counter.body(body)
        self.protected = protected_items(body, context)
        self.dropped: set[int] = set()
        entries = context.dialect.entries(body)
        self.turns = split_turns(entries)
        self.exchanges = [
            exchange for turn in self.turns for exchange in split_exchanges(turn, entries)
        ]
        recent = self.settings.keep_recent_exchanges
        self.old_exchanges = self.exchanges[: max(len(self.exchanges) - recent, 0)]

    def fits(self) -> bool:
        return self.total <= self.budget

    def shorten_tool_results(self) -> int:
        shortened = 0
        for exchange in self.old_exchanges:
            for index in exchange.results:
                if self.fits():
                    return shortened
                if index not in self.protected and self._shorten(index):
                    shortened += 1
        return shortened

    def drop_exchanges(self) -> int:
        # The first turn is kept whole, unless it is the only one: an agent
        # loop is one long turn, and its old tool calls are what can go.
        first_turn = set(self.turns[0].indices) if len(self.turns) > 1 else set()
        dropped = 0
        for exchange in self.old_exchanges:
            if self.fits():
                break
            if not set(exchange.indices) & (self.protected | first_turn):
                self._drop(exchange.indices)
                dropped += 1
        return dropped

    def drop_turns(self) -> int:
        keep_recent = max(self.settings.keep_recent_turns, 1)
        dropped = 0
        for turn in self.turns[1 : max(len(self.turns) - keep_recent, 1)]:
            if self.fits():
                break
            if not set(turn.indices) & self.protected:
                self._drop(turn.indices)
                dropped += 1
        return dropped

    def _drop(self, indices: tuple[int, ...]) -> None:
        for index in indices:
            if index not in self.dropped:
                self.dropped.add(index)
                self.total -= self.tokens[index]

    def _shorten(self, index: int) -> bool:
        dialect, counter = self.context.dialect, self.context.counter
        keep = self.settings.tool_result_tokens
        changed = False
        for slot in dialect.item_slots(index, self.items[index]):
            if slot.kind != "tool_result" or self.context.protection.touches(slot):
                continue
            tokens = counter.text(slot.text)
            removed = tokens - keep
            note = SHORTENED_NOTE.format(removed=removed)
            if removed <= counter.text(note) + 1:
                continue
            head = counter.truncate(slot.text, keep) if keep else ""
            slot.set(f"{head}\n{note}" if head else note)
            changed = True
        if changed:
            before = self.tokens[index]
            self.tokens[index] = counter.item(self.items[index])
            self.total -= before - self.tokens[index]
        return changed


def split_turns(entries: list[Entry]) -> list[Turn]:
    """Group conversation items into user turns; items before the first turn are left out.

    System messages inside a turn are left out too: they are always kept.
    """
    turns: list[list[int]] = []
    for entry in entries:
        if entry.starts_turn:
            turns.append([])
        if turns and entry.role != "system":
            turns[-1].append(entry.index)
    return [Turn(tuple(indices)) for indices in turns]


def split_exchanges(turn: Turn, entries: list[Entry]) -> list[Exchange]:
    """Return a turn's complete tool call exchanges, oldest first.

    An exchange runs from an assistant-side item through the results of its
    calls. A group that lacks a result for one of its calls, or carries a
    result for a call made elsewhere, is not an exchange and is never
    dropped on its own.
    """
    groups: list[list[Entry]] = []
    seen_results = False
    for index in turn.indices[1:]:
        entry = entries[index]
        if entry.role == "tool":
            if groups:
                groups[-1].append(entry)
                seen_results = True
            continue
        if not groups or seen_results:
            groups.append([])
            seen_results = False
        groups[-1].append(entry)
    return [exchange for group in groups if (exchange := _as_exchange(group)) is not None]


def _as_exchange(group: list[Entry]) -> Exchange | None:
    calls = {call for entry in group for call in entry.calls}
    results = {result for entry in group for result in entry.results}
    if not calls or calls != results:
        return None
    return Exchange(
        indices=tuple(entry.index for entry in group),
        results=tuple(entry.index for entry in group if entry.results),
    )
