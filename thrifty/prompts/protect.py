"""Protected text: what no transform may change.

By default the final user message is protected: the question the model
must answer reaches it byte for byte. ``final_user: last_part`` protects only
that message's last text part, so documents sent as earlier parts of the
same message can still be compressed. ``none`` protects nothing by default.
Each pattern in ``patterns`` (a regular expression) protects the text it
matches wherever it appears, and a message holding such text is never
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from thrifty.prompts.dialect import TextSlot

FinalUserMode = Literal["message", "last_part", "none"]
FINAL_USER_MODES: tuple[FinalUserMode, ...] = ("message", "last_part", "none")


@dataclass(frozen=True, slots=True)
class Protection:
    final_user: FinalUserMode = "message"
    patterns: tuple[re.Pattern[str], ...] = ()

    def covers_slot(self, slot: TextSlot) -> bool:
        """Return whether the whole slot is protected."""
        if not slot.final_user or self.final_user == "none":
            return False
        return self.final_user == "message" or slot.last_part

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Return the (start, end) offsets of the pattern matches in ``text``."""
        found: list[tuple[int, int]] = []
        for pattern in self.patterns:
            found += [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
        return sorted(found)

    def touches(self, slot: TextSlot) -> bool:
        """Return whether any of the slot's text is protected."""
        return self.covers_slot(slot) or bool(self.spans(slot.text))
