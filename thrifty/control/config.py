"""The ``control:`` section of thrifty.yaml: keys, budgets, counters and alerts.

Every key is optional::

    control:
      master_key_env: THRIFTY_MASTER_KEY   # where the master key is read from
      redis:
        url: redis://127.0.0.1:6379/0      # absent: in-process counters
        prefix: "thrifty:"
        on_failure: open                   # or closed
        timeout_s: 0.5
      budget_mode: reserve                 # or fail_closed
      unpriced_models: admit               # or reject (the default in fail_closed)
      default_max_output_tokens: 4096
      master_key_bypasses_budgets: false
      thresholds: [0.5, 0.8, 1.0]
      projection_min_elapsed: 0.1
      reservation_ttl_s: 900
      refresh_interval_s: 0.5
      throttling:
        - at: 0.8
          action: flex
        - at: 0.9
          action: cheaper_model
          models: {gpt-4o: gpt-4o-mini}
        - at: 0.95
          action: lower_rate_limit
          factor: 0.5
      alerts:
        sinks:
          - {type: webhook, url: "https://hooks.example.com/thrifty", secret_env: HOOK_SECRET}
          - {type: slack, url: "https://hooks.slack.com/services/..."}
          - {type: log}
        max_attempts: 5
        backoff_s: 1.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from thrifty.errors import ConfigError

BudgetMode = Literal["reserve", "fail_closed"]
FailureMode = Literal["open", "closed"]
ThrottleKind = Literal["flex", "cheaper_model", "lower_rate_limit"]
SinkKind = Literal["webhook", "slack", "log"]

DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
MASTER_KEY_ENV = "THRIFTY_MASTER_KEY"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the shared counters live and what to do when they cannot be reached."""

    url: str
    prefix: str = "thrifty:"
    on_failure: FailureMode = "open"
    timeout_s: float = 0.5


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """An action taken on a request while a budget it counts against is past ``at``.

    ``at`` is the fraction of the limit spent or reserved. ``models`` maps a
    model to its cheaper replacement (``cheaper_model``); ``factor`` scales
    the request's rate limits (``lower_rate_limit``).
    """

    at: Decimal
    action: ThrottleKind
    models: Mapping[str, str] = field(default_factory=dict)
    factor: Decimal = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class AlertSink:
    """One destination of alerts. ``secret_env`` names the HMAC key of a webhook."""

    kind: SinkKind
    url: str | None = None
    secret_env: str | None = None

    def secret(self) -> bytes | None:
        """Return the webhook signing secret, or None when the sink has none."""
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(
                f"alert webhook {self.url} signs with ${self.secret_env}, which is not set; "
                "export it or remove secret_env"
            )
        return value.encode()


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Alert sinks and the retry policy of their delivery."""

    sinks: tuple[AlertSink, ...] = (AlertSink("log"),)
    max_attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 5.0
    queue_size: int = 1000


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Validated ``control:`` settings; ``ControlConfig()`` is the default."""

    master_key_env: str = MASTER_KEY_ENV
    redis: RedisSettings | None = None
    budget_mode: BudgetMode = "reserve"
    unpriced_models: Literal["admit", "reject"] = "admit"
    default_max_output_tokens: int = 4096
    master_key_bypasses_budgets: bool = False
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS
    projection_min_elapsed: Decimal = Decimal("0.1")
    reservation_ttl_s: float = 900.0
    refresh_interval_s: float = 0.5
    throttling: tuple[ThrottleRule, ...] = ()
    alerts: AlertSettings = AlertSettings()

    def master_key(self) -> str | None:
        """Return the master key from its environment variable; None runs the gateway open."""
        value = os.environ.get(self.master_key_env)
        return value or None


_TOP_KEYS = {
    "master_key_env",
    "redis",
    "budget_mode",
    "unpriced_models",
    "default_max_output_tokens",
    "master_key_bypasses_budgets",
    "thresholds",
    "projection_min_elapsed",
    "reservation_ttl_s",
    "refresh_interval_s",
    "throttling",
    "alerts",
}


def parse_control_config(raw: object) -> ControlConfig:
    """Validate the raw ``control:`` value; raise ConfigError naming the bad key."""
    if raw is None:
        return ControlConfig()
    section = _mapping(raw, "control")
    _reject_unknown(section, _TOP_KEYS, "control")
    mode = _choice(section.get("budget_mode"), "control.budget_mode", ("reserve", "fail_closed"))
    unpriced_default = "reject" if mode == "fail_closed" else "admit"
    return ControlConfig(
        master_key_env=_string(section.get("master_key_env"), "control.master_key_env")
        or MASTER_KEY_ENV,
        redis=_redis(
            section.get("redis"), failure_default="closed" if mode == "fail_closed" else "open"
        ),
        budget_mode=mode or "reserve",  # type: ignore[arg-type]
        unpriced_models=_choice(  # type: ignore[arg-type]
            section.get("unpriced_models"), "control.unpriced_models", ("admit", "reject")
        )
        or unpriced_default,
        default_max_output_tokens=_positive_int(
            section.get("default_max_output_tokens"), "control.default_max_output_tokens", 4096
        ),
        master_key_bypasses_budgets=_boolean(
            section.get("master_key_bypasses_budgets"), "control.master_key_bypasses_budgets"
        ),
        thresholds=_thresholds(section.get("thresholds")),
        projection_min_elapsed=_fraction(
            section.get("projection_min_elapsed"), "control.projection_min_elapsed", "0.1"
        ),
        reservation_ttl_s=_positive_float(
            section.get("reservation_ttl_s"), "control.reservation_ttl_s", 900.0
        ),
        refresh_interval_s=_positive_float(
            section.get("refresh_interval_s"), "control.refresh_interval_s", 0.5
        ),
        throttling=_throttling(section.get("throttling")),
        alerts=_alerts(section.get("alerts")),
    )


def _redis(raw: object, *, failure_default: FailureMode) -> RedisSettings | None:
    if raw is None:
        return None
    where = "control.redis"
    section = _mapping(raw, where)
    _reject_unknown(section, {"url", "prefix", "on_failure", "timeout_s"}, where)
    url = _string(section.get("url"), f"{where}.url")
    if url is None or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{where}.url is {section.get('url')!r}; give a redis:// URL, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    failure = _choice(section.get("on_failure"), f"{where}.on_failure", ("open", "closed"))
    return RedisSettings(
        url=url,
        prefix=_string(section.get("prefix"), f"{where}.prefix") or "thrifty:",
        on_failure=failure or failure_default,  # type: ignore[arg-type]
        timeout_s=_positive_float(section.get("timeout_s"), f"{where}.timeout_s", 0.5),
    )


def _thresholds(raw: object) -> tuple[Decimal, ...]:
    if raw is None:
        return DEFAULT_THRESHOLDS
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"control.thresholds is {raw!r}; give a list of fractions such as [0.5, 0.8, 1.0]"
        )
    values = [
        _fraction(item, f"control.thresholds[{index}]", None) for index, item in enumerate(raw)
    ]
    return tuple(sorted(set(values)))


def _throttling(raw: object) -> tuple[ThrottleRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"control.throttling is {raw!r}; give a list of rules")
    rules = []
    for index, item in enumerate(raw):
        where = f"control.throttling[{index}]"
        entry = _mapping(item, where)
        _reject_unknown(entry, {"at", "action", "models", "factor"}, where)
        action = _choice(
            entry.get("action"), f"{where}.action", ("flex", "cheaper_model", "lower_rate_limit")
        )
        if action is None:
            raise ConfigError(
                f"{where}.action is missing; use flex, cheaper_model or lower_rate_limit"
            )
        models = {
            str(key): str(value)
            for key, value in _mapping(entry.get("models", {}), f"{where}.models").items()
        }
        if action == "cheaper_model" and not models:
            raise ConfigError(
                f"{where}.models is empty; map each model to its cheaper replacement, "
                "e.g. {gpt-4o: gpt-4o-mini}"
            )
        factor = _fraction(entry.get("factor"), f"{where}.factor", "0.5")
        if factor == 0:
            raise ConfigError(f"{where}.factor is 0; it must be above zero")
        at = _fraction(entry.get("at"), f"{where}.at", None)
        rules.append(ThrottleRule(at=at, action=action, models=models, factor=factor))  # type: ignore[arg-type]
    return tuple(sorted(rules, key=lambda rule: rule.at))


def _alerts(raw: object) -> AlertSettings:
    if raw is None:
        return AlertSettings()
    where = "control.alerts"
    section = _mapping(raw, where)
    _reject_unknown(
        section, {"sinks", "max_attempts", "backoff_s", "timeout_s", "queue_size"}, where
    )
    sinks_raw = section.get("sinks", [{"type": "log"}])
    if not isinstance(sinks_raw, list):
        raise ConfigError(f"{where}.sinks is {sinks_raw!r}; give a list of sinks")
    sinks = tuple(_sink(item, f"{where}.sinks[{index}]") for index, item in enumerate(sinks_raw))
    return AlertSettings(
        sinks=sinks,
        max_attempts=_positive_int(section.get("max_attempts"), f"{where}.max_attempts", 5),
        backoff_s=_positive_float(section.get("backoff_s"), f"{where}.backoff_s", 1.0),
        timeout_s=_positive_float(section.get("timeout_s"), f"{where}.timeout_s", 5.0),
        queue_size=_positive_int(section.get("queue_size"), f"{where}.queue_size", 1000),
    )


def _sink(raw: object, where: str) -> AlertSink:
    entry = _mapping(raw, where)
    _reject_unknown(entry, {"type", "url", "secret_env"}, where)
    kind = _choice(entry.get("type"), f"{where}.type", ("webhook", "slack", "log"))
    if kind is None:
        raise ConfigError(f"{where}.type is missing; use webhook, slack or log")
    url = _string(entry.get("url"), f"{where}.url")
    if kind != "log" and (url is None or not url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}.url is {url!r}; a {kind} sink needs an http(s) URL")
    secret_env = _string(entry.get("secret_env"), f"{where}.secret_env")
    return AlertSink(kind, url, secret_env)  # type: ignore[arg-type]


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return {str(key): item for key, item in value.items()}


def _reject_unknown(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys are {', '.join(sorted(allowed))}"
        )


def _string(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} is {value!r}; it must be a non-empty string")
    return value


def _choice(value: object, where: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise ConfigError(f"{where} is {value!r}; use one of: {', '.join(choices)}")
    return str(value)


def _boolean(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; use true or false")
    return value


def _positive_int(value: object, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} is {value!r}; it must be a whole number above zero")
    return value


def _positive_float(value: object, where: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where} is {value!r}; it must be a number of seconds above zero")
    return float(value)


def _fraction(value: object, where: str, default: str | None) -> Decimal:
    if value is None:
        if default is None:
            raise ConfigError(f"{where} is missing; give a fraction of the budget such as 0.8")
        return Decimal(default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where} is {value!r}; give a fraction such as 0.8")
    try:
        fraction = Decimal(str(value))
    except ArithmeticError as exc:
        raise ConfigError(f"{where} is {value!r}; give a fraction such as 0.8") from exc
    if not fraction.is_finite() or fraction < 0 or fraction > 10:
        raise ConfigError(f"{where} is {value!r}; give a fraction between 0 and 10")
    return fraction
