"""Per-request faults and pacing, set by ``X-Sandbox-Fault`` and ``X-Sandbox-Latency``.

``X-Sandbox-Fault`` takes items separated by commas or semicolons:

- ``status=CODE``: respond with that HTTP status (400 to 599) and the
  provider's error JSON;
- ``delay_ms=N``: wait N milliseconds before handling the request;
- ``disconnect_after_chunks=N``: close the connection after N streamed events
  (a non-streamed body is cut half way);
- ``rate_limit`` or ``rate_limit=SECONDS``: respond 429 with ``retry-after``
  (1 second unless given);
- ``model=NAME``: apply the other items only to requests for that model
  (repeat the item for several models). The gateway forwards client headers
  to every model a route tries, so this fails one model and serves the next.

``X-Sandbox-Answer`` replaces the filler text of a chat completion, Responses
API response or Anthropic message, with an optional ``model=NAME`` item
targeting it as above:

- ``empty``: no text and 0 output tokens;
- ``refusal``: the text of ``REFUSAL_TEXT``;
- ``json``: the JSON object of ``JSON_ANSWER``;
- ``filler``: the default filler.

An answer set this way is not cut to the request's token limit; its
output tokens are the tokens of its text.

``X-Sandbox-Latency: ttft_ms=..,tps=..`` overrides the time to first token
and the tokens per second of the settings for one request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.settings import SandboxSettings

FAULT_HEADER = "x-sandbox-fault"
LATENCY_HEADER = "x-sandbox-latency"
FLEX_REJECT_HEADER = "x-sandbox-flex-reject"
ANSWER_HEADER = "x-sandbox-answer"

ANSWER_KINDS = ("filler", "empty", "refusal", "json")
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
JSON_ANSWER = '{"name": "sandbox", "note": "sandbox filler, not a model answer"}'

DEFAULT_RETRY_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Fault:
    """Faults requested for one request."""

    status: int | None = None
    delay_ms: float = 0.0
    disconnect_after_chunks: int | None = None
    retry_after_s: float | None = None
    models: frozenset[str] = frozenset()

    @property
    def rate_limited(self) -> bool:
        return self.retry_after_s is not None


@dataclass(frozen=True, slots=True)
class AnswerControl:
    """The answer requested by ``X-Sandbox-Answer``, and the models it applies to (all if empty)."""

    kind: str = "filler"
    models: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Pacing:
    """When output is sent: a wait before the first token, then a steady rate."""

    time_to_first_token_s: float = 0.0
    tokens_per_second: float = 0.0

    def seconds_for(self, tokens: int) -> float:
        if self.tokens_per_second <= 0:
            return 0.0
        return tokens / self.tokens_per_second

    async def wait_first_token(self, hidden_tokens: int = 0) -> None:
        """Wait the time to first token, plus the time to generate ``hidden_tokens``."""
        await _sleep(self.time_to_first_token_s + self.seconds_for(hidden_tokens))

    async def wait_tokens(self, tokens: int) -> None:
        await _sleep(self.seconds_for(tokens))

    async def wait_whole_output(self, tokens: int) -> None:
        """Wait as long as generating ``tokens`` takes, for a response sent in one piece."""
        await _sleep(self.time_to_first_token_s + self.seconds_for(tokens))


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def parse_fault(header: str | None) -> Fault:
    """Parse an ``X-Sandbox-Fault`` value; raise ApiError 400 on an invalid one."""
    if not header:
        return Fault()
    status: int | None = None
    delay_ms = 0.0
    disconnect: int | None = None
    retry_after: float | None = None
    models: set[str] = set()
    for name, value in _items(header, FAULT_HEADER):
        if name == "status":
            status = _integer(FAULT_HEADER, name, value, 400, 599)
        elif name == "delay_ms":
            delay_ms = _number(FAULT_HEADER, name, value)
        elif name == "disconnect_after_chunks":
            disconnect = _integer(FAULT_HEADER, name, value, 0, None)
        elif name == "rate_limit":
            retry_after = (
                DEFAULT_RETRY_AFTER_S if value is None else _number(FAULT_HEADER, name, value)
            )
        elif name == "model":
            models.add(_model(FAULT_HEADER, value))
        else:
            raise _invalid(
                FAULT_HEADER,
                f"unknown item '{name}'; "
                "use status, delay_ms, disconnect_after_chunks, rate_limit or model",
            )
    return Fault(status, delay_ms, disconnect, retry_after, frozenset(models))


def parse_answer(header: str | None) -> AnswerControl:
    """Parse an ``X-Sandbox-Answer`` value; raise ApiError 400 on an invalid one."""
    if not header:
        return AnswerControl()
    kind = "filler"
    models: set[str] = set()
    for name, value in _items(header, ANSWER_HEADER):
        if name == "model":
            models.add(_model(ANSWER_HEADER, value))
        elif name in ANSWER_KINDS and value is None:
            kind = name
        else:
            raise _invalid(
                ANSWER_HEADER,
                f"unknown item '{name}'; use one of {', '.join(ANSWER_KINDS)}, and model=NAME",
            )
    return AnswerControl(kind, frozenset(models))


def parse_pacing(header: str | None, settings: SandboxSettings) -> Pacing:
    """Return the settings' pacing, overridden by an ``X-Sandbox-Latency`` value."""
    ttft_ms = settings.time_to_first_token_ms
    tps = settings.tokens_per_second
    for name, value in _items(header or "", LATENCY_HEADER):
        if name == "ttft_ms":
            ttft_ms = _number(LATENCY_HEADER, name, value)
        elif name == "tps":
            tps = _number(LATENCY_HEADER, name, value)
        else:
            raise _invalid(LATENCY_HEADER, f"unknown item '{name}'; use ttft_ms and tps")
    return Pacing(ttft_ms / 1000.0, tps)


def _items(header: str, header_name: str) -> list[tuple[str, str | None]]:
    items: list[tuple[str, str | None]] = []
    for raw in header.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        name, separator, value = item.partition("=")
        items.append((name.strip().lower(), value.strip() if separator else None))
    return items


def _model(header_name: str, value: str | None) -> str:
    if not value:
        raise _invalid(header_name, "'model' needs a model name, e.g. model=gpt-4o-mini")
    return value


def _number(header_name: str, name: str, value: str | None) -> float:
    try:
        number = float(value) if value is not None else -1.0
    except ValueError:
        number = -1.0
    if number < 0:
        raise _invalid(header_name, f"'{name}' needs a number of at least 0, got {value!r}")
    return number


def _integer(header_name: str, name: str, value: str | None, low: int, high: int | None) -> int:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        limit = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise _invalid(header_name, f"'{name}' needs an integer {limit}, got {value!r}")
    return number


def _invalid(header_name: str, detail: str) -> ApiError:
    return ApiError(400, f"Invalid {header_name} header: {detail}.")
