"""Thrifty's exception tree.

Every error the package raises on purpose derives from ``ThriftyError``::

    ThriftyError
    ├── ConfigError          invalid or missing configuration
    ├── UsageError           impossible token usage in a provider response
    ├── PricingError         a price lookup or computation failed
    │   └── UnknownModelError    no price for a model (callers record it unpriced)
    ├── TokenizerError       an offline tokenizer could not be loaded
    ├── LedgerError          the ledger or its spool could not be written or read
    │   ├── ReportError          a report query names an unknown dimension or bad filter
    │   └── ImportFileError      an import file cannot be read or is not in its format
    ├── TraceError           a trace file row is malformed
    ├── UpstreamError        a provider could not be reached or timed out
    ├── RequestError         a client request the gateway rejects (carries the HTTP status)
    ├── TranslationError     a provider response that cannot be written in the client's API format
    ├── CacheError           the response cache's storage or embedder failed
    ├── ControlError         an invalid key, budget, rate limit or cutoff, or a failed admin call
    ├── RoutingError         a routing data file, router file or model benchmark is invalid
    ├── PromptError          a request body or input file the prompt optimizer cannot read
    ├── BatchError           a batch job could not be submitted, polled, cancelled or collected
    │   ├── BatchInputError      a batch input file has invalid lines (carries every problem)
    │   └── BatchRejectedError   a provider rejected a batch API request (carries the HTTP status)
    └── SandboxError         the provider emulator could not start or rejected a request

Messages say what failed, on which value, and what to do next.
"""

from __future__ import annotations


class ThriftyError(Exception):
    """Base class of every error Thrifty raises on purpose."""


class ConfigError(ThriftyError):
    """Invalid or missing configuration."""


class UsageError(ThriftyError):
    """Impossible token usage: a negative, non-integer or inconsistent count."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid usage field '{field}': {message}")
        self.field = field


class PricingError(ThriftyError):
    """A price lookup or computation failed."""


class UnknownModelError(PricingError):
    """No price is known for a model."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(
            f"unknown model '{model}' for provider '{provider}'; "
            "add it under `prices:` in thrifty.yaml"
        )
        self.provider = provider
        self.model = model


class TokenizerError(ThriftyError):
    """An offline tokenizer could not be loaded."""


class LedgerError(ThriftyError):
    """The ledger or its spool could not be written or read."""


class ReportError(LedgerError):
    """A report query names an unknown dimension or an invalid filter."""


class ImportFileError(LedgerError):
    """An import file cannot be read, or is not in the format it was imported as."""


class TraceError(ThriftyError):
    """A trace file row is malformed."""


class GatewayStartError(ThriftyError):
    """A gateway worker process failed while starting."""


class UpstreamError(ThriftyError):
    """A provider could not be reached or did not answer in time."""

    def __init__(self, provider: str, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.timed_out = timed_out


class RequestError(ThriftyError):
    """A client request the gateway rejects before or instead of forwarding it.

    ``status`` is the HTTP status to answer with and ``error_type`` the
    OpenAI-style error type (``invalid_request_error``, ``not_found_error``...).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param


class TranslationError(ThriftyError):
    """A provider's response that cannot be translated into the client's API format."""


class PromptError(ThriftyError):
    """A request body or an input file line that the prompt optimizer cannot read."""


class RoutingError(ThriftyError):
    """A routing outcome file, router file, evaluation set or benchmark run is invalid."""


class ControlError(ThriftyError):
    """An invalid virtual key, budget, rate limit or cutoff, or an admin API call that failed."""


class CacheError(ThriftyError):
    """The response cache's storage, hot tier or embedder failed."""


class BatchError(ThriftyError):
    """A batch job could not be submitted, polled, cancelled or collected."""


class BatchInputError(BatchError):
    """A batch input file has problems; ``issues`` lists each as ``line N: reason``."""

    def __init__(self, path: str, issues: list[str]) -> None:
        shown = "; ".join(issues[:3])
        more = f"; and {len(issues) - 3} more" if len(issues) > 3 else ""
        super().__init__(
            f"{path} has {len(issues)} invalid lines: {shown}{more}; "
            "fix them and submit again (thrifty batch validate lists every one)"
        )
        self.path = path
        self.issues = issues


class BatchRejectedError(BatchError):
    """A provider answered a batch API request with an error status other than 429 or 5xx."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SandboxError(ThriftyError):
    """The provider emulator could not start, or rejected a request it was sent."""
