"""Thrifty's exception tree.

Every error the package raises on purpose derives from ``ThriftyError``::

    ThriftyError
    ├── ConfigError          invalid or missing configuration
    ├── UsageError           impossible token usage in a provider response
    ├── PricingError         a price lookup or computation failed
    │   └── UnknownModelError    no price for a model (callers record it unpriced)
    ├── TokenizerError       an offline tokenizer could not be loaded
    ├── LedgerError          the ledger or its spool could not be written or read
    ├── TraceError           a trace file row is malformed
    └── UpstreamError        a provider could not be reached or timed out

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


class TraceError(ThriftyError):
    """A trace file row is malformed."""


class UpstreamError(ThriftyError):
    """A provider could not be reached or did not answer in time."""
