"""The providers' batch APIs behind one small interface.

``OpenAIBatchApi`` uploads a part file to ``/v1/files`` and creates a batch
on ``/v1/batches``; ``AnthropicBatchApi`` sends the part as one
``/v1/messages/batches`` body. Both report a batch as a ``ProviderBatch``
and its results as ``ResultLine`` objects, one per request.

Reads are retried on connection errors, 429 and 5xx responses. A request
that creates something is retried only when no connection could be made,
because a provider that received it may already have acted on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import orjson

from thrifty.config import ProviderConfig, ProviderKind
from thrifty.errors import BatchError, BatchRejectedError, ConfigError

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
READ_ATTEMPTS = 4
RETRY_BASE_S = 0.5

Outcome = Literal["succeeded", "errored", "expired", "cancelled"]

# Error types and codes that mean "try again later", not "this request is wrong".
_RETRYABLE_TYPES = frozenset(
    {
        "api_error",
        "overloaded_error",
        "rate_limit_error",
        "timeout_error",
        "server_error",
        "rate_limit_exceeded",
        "internal_error",
    }
)


@dataclass(frozen=True, slots=True)
class ProviderBatch:
    """A provider's batch as Thrifty tracks it.

    ``status`` is the provider's word (OpenAI ``in_progress``..., Anthropic
    ``in_progress``, ``canceling``, ``ended``). ``processed`` counts the
    requests with a result so far, which Anthropic reports only at the end.
    """

    id: str
    status: str
    ended: bool
    total: int
    processed: int
    output_file_id: str | None = None
    error_file_id: str | None = None
    results_url: str | None = None
    model: str | None = None
    errors: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResultLine:
    """The result of one request, in either provider's terms.

    ``body`` is the response body of a success and the error body of an
    error. ``status_code`` is 0 for a request that never ran.
    """

    custom_id: str
    outcome: Outcome
    status_code: int
    body: dict[str, Any] | None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False


class BatchApi(Protocol):
    """The provider operations the batch manager uses."""

    kind: ProviderKind

    def upload(self, path: Path) -> str:
        """Upload a part file and return its file id (OpenAI); Anthropic returns ''."""
        ...

    def create(
        self, path: Path, file_id: str, endpoint: str, metadata: Mapping[str, str]
    ) -> ProviderBatch: ...

    def retrieve(self, batch_id: str) -> ProviderBatch: ...

    def cancel(self, batch_id: str) -> ProviderBatch: ...

    def find(self, metadata_key: str, value: str) -> ProviderBatch | None:
        """Return a recent batch whose metadata has ``value`` under ``metadata_key``."""
        ...

    def results(self, batch: ProviderBatch) -> Iterator[ResultLine]: ...

    def close(self) -> None: ...


def api_for(
    provider: ProviderConfig,
    *,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 120.0,
) -> BatchApi:
    """Return the batch API of a provider, authenticated with its key or ``headers``."""
    credentials = dict(headers) if headers is not None else _credentials(provider)
    client = httpx.Client(
        base_url=provider.base_url,
        headers=credentials,
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        transport=transport,
    )
    if provider.kind == "anthropic":
        return AnthropicBatchApi(client)
    return OpenAIBatchApi(client)


def _credentials(provider: ProviderConfig) -> dict[str, str]:
    try:
        key = provider.api_key()
    except ConfigError as exc:
        raise BatchError(str(exc)) from exc
    if key is None:
        raise BatchError(
            f"provider '{provider.name}' has no api_key_env, so the batch manager has no key "
            "to send; name the variable that holds it (api_key_env in thrifty.yaml)"
        )
    if provider.kind == "anthropic":
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    return {"authorization": f"Bearer {key}"}


class _Http:
    """An httpx client with the retry rules of the module docstring."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def read(self, path: str, **params: Any) -> dict[str, Any]:
        response = self._send(lambda: self.client.get(path, params=params or None), retry=True)
        return _json(response)

    def write(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(lambda: self.client.post(path, **kwargs), retry=False)
        return _json(response)

    def stream_lines(self, path: str) -> Iterator[bytes]:
        """Yield the non-blank lines of a file download.

        A download that fails before its first line is retried; one that fails
        later raises, since the lines already yielded cannot be taken back.
        """
        for attempt in range(1, READ_ATTEMPTS + 1):
            yielded = False
            try:
                with self.client.stream("GET", path) as response:
                    if _transient(response.status_code) and attempt < READ_ATTEMPTS:
                        _pause(attempt, f"GET {path} returned {response.status_code}")
                        continue
                    _check(response)
                    for line in _byte_lines(response.iter_bytes()):
                        yielded = True
                        yield line
                    return
            except httpx.TransportError as exc:
                if yielded or attempt == READ_ATTEMPTS:
                    raise _unreachable(self.client, exc) from exc
                _pause(attempt, f"GET {path} failed: {exc}")

    def close(self) -> None:
        self.client.close()

    def _send(self, call: Callable[[], httpx.Response], *, retry: bool) -> httpx.Response:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = call()
            except httpx.ConnectError as exc:
                if attempt == READ_ATTEMPTS:
                    raise _unreachable(self.client, exc) from exc
                _pause(attempt, f"connecting failed: {exc}")
                continue
            except httpx.TransportError as exc:
                if not retry or attempt == READ_ATTEMPTS:
                    raise _unreachable(self.client, exc) from exc
                _pause(attempt, f"the request failed: {exc}")
                continue
            if retry and _transient(response.status_code) and attempt < READ_ATTEMPTS:
                _pause(attempt, f"{response.request.url.path} returned {response.status_code}")
                continue
            _check(response)
            return response
        raise AssertionError("unreachable")


class OpenAIBatchApi(_Http):
    kind: ProviderKind = "openai"

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/jsonl")}
            body = self.write("/v1/files", data={"purpose": "batch"}, files=files)
        return str(body["id"])

    def create(
        self, path: Path, file_id: str, endpoint: str, metadata: Mapping[str, str]
    ) -> ProviderBatch:
        payload = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            "metadata": dict(metadata),
        }
        return openai_batch(self.write("/v1/batches", json=payload))

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return openai_batch(self.read(f"/v1/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return openai_batch(self.write(f"/v1/batches/{batch_id}/cancel"))

    def find(self, metadata_key: str, value: str) -> ProviderBatch | None:
        listing = self.read("/v1/batches", limit=100)
        for item in listing.get("data") or []:
            metadata = item.get("metadata") or {}
            if metadata.get(metadata_key) == value:
                return openai_batch(item)
        return None

    def results(self, batch: ProviderBatch) -> Iterator[ResultLine]:
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            for raw in self.stream_lines(f"/v1/files/{file_id}/content"):
                yield openai_result(_loads(raw))


class AnthropicBatchApi(_Http):
    kind: ProviderKind = "anthropic"

    def upload(self, path: Path) -> str:
        return ""

    def create(
        self, path: Path, file_id: str, endpoint: str, metadata: Mapping[str, str]
    ) -> ProviderBatch:
        size = path.stat().st_size
        lines = sum(1 for _ in path.open("rb"))
        # The body is {"requests":[line,line,...]}: the file's lines, comma-separated.
        length = len(b'{"requests":[]}') + size - lines + max(lines - 1, 0)
        headers = {"content-type": "application/json", "content-length": str(length)}
        body = self.write("/v1/messages/batches", content=_anthropic_body(path), headers=headers)
        return anthropic_batch(body)

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return anthropic_batch(self.read(f"/v1/messages/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return anthropic_batch(self.write(f"/v1/messages/batches/{batch_id}/cancel"))

    def find(self, metadata_key: str, value: str) -> ProviderBatch | None:
        # Message Batches carry no metadata to find a batch by.
        return None

    def results(self, batch: ProviderBatch) -> Iterator[ResultLine]:
        # The results are always read from the configured base URL, so the
        # key is never sent to a host named in a response.
        for raw in self.stream_lines(f"/v1/messages/batches/{batch.id}/results"):
            yield anthropic_result(_loads(raw))


def _byte_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a byte stream into its non-blank lines, without decoding it."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")
    if rest.strip():
        yield rest.rstrip(b"\r")


def _anthropic_body(path: Path) -> Iterator[bytes]:
    yield b'{"requests":['
    with path.open("rb") as handle:
        for index, line in enumerate(handle):
            yield (b"," if index else b"") + line.rstrip(b"\r\n")
    yield b"]}"


def openai_result(line: Mapping[str, Any]) -> ResultLine:
    """Read one line of an OpenAI batch output or error file."""
    custom_id = str(line.get("custom_id"))
    error = line.get("error")
    if isinstance(error, Mapping):
        code = _text(error.get("code"))
        message = _text(error.get("message"))
        if code == "batch_expired":
            return ResultLine(custom_id, "expired", 0, None, code, message, retryable=True)
        if code == "batch_cancelled":
            return ResultLine(custom_id, "cancelled", 0, None, code, message)
        return ResultLine(
            custom_id, "errored", 0, None, code, message, retryable=code in _RETRYABLE_TYPES
        )
    response = line.get("response")
    response = response if isinstance(response, Mapping) else {}
    status = response.get("status_code")
    status = status if isinstance(status, int) else 0
    body = response.get("body")
    body = body if isinstance(body, dict) else None
    if status == 200:
        return ResultLine(custom_id, "succeeded", 200, body)
    code, message = _error_fields(body)
    retryable = status == 429 or status >= 500
    return ResultLine(custom_id, "errored", status, body, code, message, retryable=retryable)


def anthropic_result(line: Mapping[str, Any]) -> ResultLine:
    """Read one line of an Anthropic Message Batch results file."""
    custom_id = str(line.get("custom_id"))
    result = line.get("result")
    result = result if isinstance(result, Mapping) else {}
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        return ResultLine(
            custom_id, "succeeded", 200, message if isinstance(message, dict) else None
        )
    if kind == "expired":
        return ResultLine(custom_id, "expired", 0, None, "expired", None, retryable=True)
    if kind == "canceled":
        return ResultLine(custom_id, "cancelled", 0, None, "canceled", None)
    error = result.get("error")
    body = dict(error) if isinstance(error, Mapping) else None
    code, message = _error_fields(body)
    return ResultLine(
        custom_id, "errored", 0, body, code, message, retryable=code in _RETRYABLE_TYPES
    )


def openai_batch(body: Mapping[str, Any]) -> ProviderBatch:
    """Read an OpenAI ``batch`` object."""
    counts = body.get("request_counts") or {}
    status = str(body.get("status"))
    errors = (body.get("errors") or {}).get("data") or []
    ended_at = next(
        (
            body.get(name)
            for name in ("completed_at", "expired_at", "cancelled_at", "failed_at")
            if body.get(name)
        ),
        None,
    )
    return ProviderBatch(
        id=str(body["id"]),
        status=status,
        ended=status in ("completed", "expired", "cancelled", "failed"),
        total=int(counts.get("total") or 0),
        processed=int(counts.get("completed") or 0) + int(counts.get("failed") or 0),
        output_file_id=body.get("output_file_id"),
        error_file_id=body.get("error_file_id"),
        model=_text(body.get("model")),
        errors=tuple(_batch_error(error) for error in errors),
        metadata=dict(body.get("metadata") or {}),
        ended_at=None if ended_at is None else datetime.fromtimestamp(int(ended_at), UTC),
    )


def anthropic_batch(body: Mapping[str, Any]) -> ProviderBatch:
    """Read an Anthropic ``message_batch`` object."""
    counts = body.get("request_counts") or {}
    finished = sum(
        int(counts.get(name) or 0) for name in ("succeeded", "errored", "canceled", "expired")
    )
    status = str(body.get("processing_status"))
    ended_at = body.get("ended_at")
    return ProviderBatch(
        id=str(body["id"]),
        status=status,
        ended=status == "ended",
        total=finished + int(counts.get("processing") or 0),
        processed=finished,
        results_url=_text(body.get("results_url")),
        ended_at=None if not ended_at else datetime.fromisoformat(str(ended_at)),
    )


def _batch_error(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    line = error.get("line")
    where = f"line {line}: " if line else ""
    return f"{where}{error.get('message')} ({error.get('code')})"


def _error_fields(body: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """Return the error type (or code) and message of an error body in either shape."""
    error = body.get("error") if body is not None else None
    if not isinstance(error, Mapping):
        return None, None
    if isinstance(error.get("error"), Mapping):
        error = error["error"]
    code = _text(error.get("type")) or _text(error.get("code"))
    return code, _text(error.get("message"))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BatchError(
            f"a batch result line is not valid JSON: {exc}; the provider sent {raw[:200]!r}"
        ) from exc
    if not isinstance(value, dict):
        raise BatchError(f"a batch result line is a JSON {type(value).__name__}, not an object")
    return value


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError as exc:
        raise BatchError(
            f"{response.request.method} {response.request.url} returned a body that is not JSON"
        ) from exc
    if not isinstance(value, dict):
        raise BatchError(f"{response.request.method} {response.request.url} returned no object")
    return value


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = None
    _, message = _error_fields(body if isinstance(body, Mapping) else None)
    request = response.request
    text = (
        f"{request.method} {request.url.path} returned {response.status_code}: "
        f"{message or response.text[:200]}"
    )
    if _transient(response.status_code):
        raise BatchError(f"{text}; retry later")
    raise BatchRejectedError(response.status_code, text)


def _unreachable(client: httpx.Client, exc: Exception) -> BatchError:
    return BatchError(
        f"the batch API at {client.base_url} could not be reached ({type(exc).__name__}: {exc}); "
        "check the provider's base_url and that it is running, then retry"
    )


def _pause(attempt: int, reason: str) -> None:
    delay = RETRY_BASE_S * 2 ** (attempt - 1)
    logger.warning(
        "%s; retrying in %.1f s (attempt %d of %d)", reason, delay, attempt, READ_ATTEMPTS
    )
    time.sleep(delay)
