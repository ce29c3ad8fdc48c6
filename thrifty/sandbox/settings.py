"""Settings of the provider emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from thrifty.errors import ConfigError


@dataclass(frozen=True)
class SandboxSettings:
    """Pacing, prompt-cache and fault settings of one sandbox.

    ``clock`` returns seconds on a monotonic scale. Prompt-cache lifetimes are
    measured with it, so tests can pass a clock they advance by hand.
    """

    # Output length when an OpenAI request sets no max_tokens. Anthropic
    # requests must set max_tokens, as the real API requires.
    default_max_tokens: int = 16
    time_to_first_token_ms: float = 0.0
    # Output pace; 0 sends every chunk without delay.
    tokens_per_second: float = 0.0
    # Tokens of output text in each streamed delta.
    tokens_per_chunk: int = 4
    # OpenAI's automatic prompt cache lifetime, refreshed on each use.
    openai_cache_ttl_s: float = 600.0
    # Bound on remembered prompt prefixes, per cache (OpenAI and Anthropic).
    prompt_cache_max_entries: int = 100_000
    # Share of the output a reasoning model (o-series, gpt-5 and later)
    # reports as reasoning_tokens; the rest is visible text.
    reasoning_share: float = 0.5
    # Share of flex requests rejected with 429, drawn from a generator seeded
    # with ``seed`` so a run is repeatable.
    flex_rejection_rate: float = 0.0
    seed: int = 0
    # Reject model names the sandbox does not list with 404 model_not_found
    # instead of serving them.
    reject_unknown_models: bool = False
    # File and message batches. A new batch is "validating" for
    # ``batch_validating_s`` seconds, then processes
    # ``batch_requests_per_second`` requests a second (0 processes them all at
    # once), then is "finalizing" for ``batch_finalizing_s`` seconds. Requests
    # still unprocessed ``batch_completion_window_s`` seconds after creation
    # expire, as they do after 24 hours at the providers.
    batch_validating_s: float = 0.0
    batch_requests_per_second: float = 0.0
    batch_finalizing_s: float = 0.0
    batch_completion_window_s: float = 86_400.0
    # Shares of batch requests that expire, or fail with a retryable server
    # error, drawn per batch from a generator seeded with ``seed``.
    batch_expiry_rate: float = 0.0
    batch_failure_rate: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic)

    def __post_init__(self) -> None:
        _check_at_least("default_max_tokens", self.default_max_tokens, 1)
        _check_at_least("tokens_per_chunk", self.tokens_per_chunk, 1)
        _check_at_least("prompt_cache_max_entries", self.prompt_cache_max_entries, 1)
        _check_at_least("time_to_first_token_ms", self.time_to_first_token_ms, 0)
        _check_at_least("tokens_per_second", self.tokens_per_second, 0)
        _check_at_least("openai_cache_ttl_s", self.openai_cache_ttl_s, 0)
        _check_share("reasoning_share", self.reasoning_share)
        _check_share("flex_rejection_rate", self.flex_rejection_rate)
        _check_at_least("batch_validating_s", self.batch_validating_s, 0)
        _check_at_least("batch_requests_per_second", self.batch_requests_per_second, 0)
        _check_at_least("batch_finalizing_s", self.batch_finalizing_s, 0)
        _check_at_least("batch_completion_window_s", self.batch_completion_window_s, 0)
        _check_share("batch_expiry_rate", self.batch_expiry_rate)
        _check_share("batch_failure_rate", self.batch_failure_rate)


def _check_at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"sandbox setting {name} is {value!r}; use a value of at least {minimum}")


def _check_share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"sandbox setting {name} is {value!r}; use a value from 0 to 1")
