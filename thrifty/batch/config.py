"""The ``flex:`` and ``batch:`` sections of ``thrifty.yaml``.

::

    flex:
      models: [o3, o4-mini, "gpt-5*"]   # models Flex applies to ("*" ends a prefix)
      timeout_s: 900                    # upstream timeout of a Flex call
      retry_budget_s: 60                # how long 429 rejections are retried
      backoff_initial_s: 1
      backoff_max_s: 30
      fallback: true                    # then send at the default tier
      rules:                            # first match wins
        - feature: nightly-eval
          use: always                   # always, never, or request (the default)
          fallback: false
    batch:
      watch: true                       # record batches clients create through the gateway
      poll_interval_s: 60

A request that sets ``service_tier: "flex"`` itself always gets the retry
and fallback policy. A rule with ``use: always`` sends its matching requests
at Flex, and one with ``use: never`` sends them at the default tier even
when they ask for Flex.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.errors import ConfigError

FlexUse = Literal["always", "never", "request"]

# Models OpenAI's Flex processing guide lists (o3, o4-mini and the gpt-5
# family, in 2025). NOTE: the list changes as models are added; extend it
# under flex.models.
DEFAULT_FLEX_MODELS = ("o3", "o4-mini", "gpt-5*")
DEFAULT_FLEX_TIMEOUT_S = 900.0

_FLEX_KEYS = {
    "models",
    "timeout_s",
    "retry_budget_s",
    "backoff_initial_s",
    "backoff_max_s",
    "fallback",
    "rules",
}
_RULE_MATCH_KEYS = ("feature", "team", "project", "key")
_RULE_KEYS = {*_RULE_MATCH_KEYS, "use", "fallback"}
_BATCH_KEYS = {"watch", "poll_interval_s"}


@dataclass(frozen=True, slots=True)
class FlexRule:
    """Requests a rule applies to (every field set must match) and what it does.

    ``key`` matches the id of the virtual key a request used. ``fallback``
    None takes the section's default.
    """

    use: FlexUse
    feature: str | None = None
    team: str | None = None
    project: str | None = None
    key: str | None = None
    fallback: bool | None = None

    def matches(self, values: Mapping[str, str | None]) -> bool:
        """Return whether every field the rule sets equals the request's value."""
        for name in _RULE_MATCH_KEYS:
            wanted = getattr(self, name)
            if wanted is not None and values.get(name) != wanted:
                return False
        return True

    @property
    def label(self) -> str:
        parts = [
            f"{name}={getattr(self, name)}" for name in _RULE_MATCH_KEYS if getattr(self, name)
        ]
        return ",".join(parts) or "every request"


@dataclass(frozen=True, slots=True)
class FlexConfig:
    """The gateway's Flex policy: the models, timeout, retry budget, fallback and rules."""

    models: tuple[str, ...] = DEFAULT_FLEX_MODELS
    timeout_s: float = DEFAULT_FLEX_TIMEOUT_S
    retry_budget_s: float = 60.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    fallback: bool = True
    rules: tuple[FlexRule, ...] = field(default_factory=tuple)

    def supports(self, model: str) -> bool:
        """Return whether ``model`` (or a dated snapshot of it) is one Flex applies to."""
        name = model.lower()
        for entry in self.models:
            if entry.endswith("*") and name.startswith(entry[:-1].lower()):
                return True
            if name == entry.lower() or name.startswith(f"{entry.lower()}-20"):
                return True
        return False

    def rule_for(self, values: Mapping[str, str | None]) -> FlexRule | None:
        return next((rule for rule in self.rules if rule.matches(values)), None)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Whether and how often the gateway follows batches its clients created."""

    watch: bool = True
    poll_interval_s: float = 60.0


def parse_flex_config(raw: object) -> FlexConfig:
    """Parse the ``flex:`` section; raise ConfigError naming the key and the bad value."""
    section = _mapping(raw, "flex")
    _reject_unknown(section, _FLEX_KEYS, "flex")
    defaults = FlexConfig()
    models = section.get("models", list(defaults.models))
    if not isinstance(models, list) or not all(isinstance(item, str) and item for item in models):
        raise ConfigError(f"flex.models is {models!r}; list model names, e.g. [o3, o4-mini]")
    config = FlexConfig(
        models=tuple(models),
        timeout_s=_seconds(section, "timeout_s", defaults.timeout_s, "flex"),
        retry_budget_s=_seconds(
            section, "retry_budget_s", defaults.retry_budget_s, "flex", allow_zero=True
        ),
        backoff_initial_s=_seconds(
            section, "backoff_initial_s", defaults.backoff_initial_s, "flex"
        ),
        backoff_max_s=_seconds(section, "backoff_max_s", defaults.backoff_max_s, "flex"),
        fallback=_flag(section, "fallback", defaults.fallback, "flex"),
        rules=tuple(_rule(item, index) for index, item in enumerate(_rules(section))),
    )
    if config.backoff_max_s < config.backoff_initial_s:
        raise ConfigError(
            f"flex.backoff_max_s is {config.backoff_max_s:g}, below flex.backoff_initial_s "
            f"({config.backoff_initial_s:g}); raise it"
        )
    return config


def parse_batch_config(raw: object) -> BatchConfig:
    """Parse the ``batch:`` section; raise ConfigError naming the key and the bad value."""
    section = _mapping(raw, "batch")
    _reject_unknown(section, _BATCH_KEYS, "batch")
    defaults = BatchConfig()
    return BatchConfig(
        watch=_flag(section, "watch", defaults.watch, "batch"),
        poll_interval_s=_seconds(section, "poll_interval_s", defaults.poll_interval_s, "batch"),
    )


def _rules(section: Mapping[str, Any]) -> list[Any]:
    rules = section.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(f"flex.rules is {rules!r}; give a list of rules")
    return rules


def _rule(raw: object, index: int) -> FlexRule:
    where = f"flex.rules[{index}]"
    entry = _mapping(raw, where)
    _reject_unknown(entry, _RULE_KEYS, where)
    use = entry.get("use", "request")
    if use not in ("always", "never", "request"):
        raise ConfigError(f"{where}.use is {use!r}; use always, never or request")
    matches: dict[str, str] = {}
    for name in _RULE_MATCH_KEYS:
        value = entry.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{name} is {value!r}; it must be a non-empty string")
        matches[name] = value
    if not matches:
        raise ConfigError(
            f"{where} matches nothing; set at least one of {', '.join(_RULE_MATCH_KEYS)}"
        )
    fallback = entry.get("fallback")
    if fallback is not None and not isinstance(fallback, bool):
        raise ConfigError(f"{where}.fallback is {fallback!r}; use true or false")
    return FlexRule(use=use, fallback=fallback, **matches)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return {str(key): item for key, item in value.items()}


def _reject_unknown(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys are {', '.join(sorted(allowed))}"
        )


def _seconds(
    section: Mapping[str, Any], name: str, default: float, where: str, *, allow_zero: bool = False
) -> float:
    value = section.get(name)
    if value is None:
        return default
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or value < 0 or (value == 0 and not allow_zero):
        limit = "zero or more" if allow_zero else "above zero"
        raise ConfigError(f"{where}.{name} is {value!r}; it must be a number of seconds {limit}")
    return float(value)


def _flag(section: Mapping[str, Any], name: str, default: bool, where: str) -> bool:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name} is {value!r}; use true or false")
    return value
