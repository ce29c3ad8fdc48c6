"""Splitting a server-sent event stream into events without re-encoding them.

The gateway forwards each event's original bytes and reads its ``data``
payload to meter it, so the client receives exactly what the provider sent.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEPARATORS = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One complete event: its bytes as received (with the blank line) and its fields."""

    raw: bytes
    name: str | None
    data: bytes


class EventSplitter:
    """Collect chunks and return each event once it is complete."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            end = _event_end(self._buffer)
            if end < 0:
                return events
            raw, self._buffer = self._buffer[:end], self._buffer[end:]
            events.append(parse_event(raw))

    def remainder(self) -> bytes:
        """Return bytes of an unfinished event (a stream cut mid-event)."""
        return self._buffer


def parse_event(raw: bytes) -> Event:
    name: str | None = None
    data_lines: list[bytes] = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            data_lines.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return Event(raw=raw, name=name, data=b"\n".join(data_lines))


def _event_end(buffer: bytes) -> int:
    """Return the index just past the first event's blank line, or -1."""
    best = -1
    for separator in _SEPARATORS:
        index = buffer.find(separator)
        if index >= 0 and (best < 0 or index + len(separator) < best):
            best = index + len(separator)
    return best
