"""The ``dashboard:`` section of thrifty.yaml. Every key is optional::

dashboard:
  enabled: true                          # serve the dashboard at /ui
  read_only_key_env: THRIFTY_DASHBOARD_KEY   # variable holding the read-only key
  session_hours: 12                      # how long a login lasts
  customer_tag: customer                 # the tag whose value names a customer
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from thrifty.errors import ConfigError

DEFAULT_READ_ONLY_KEY_ENV = "THRIFTY_DASHBOARD_KEY"
MASTER_KEY_ENV = "THRIFTY_MASTER_KEY"
_KEYS = {"enabled", "read_only_key_env", "session_hours", "customer_tag"}
_MAX_SESSION_HOURS = 24 * 30


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Dashboard settings: whether it is served, the read-only key's variable, login length."""

    enabled: bool = True
    read_only_key_env: str = DEFAULT_READ_ONLY_KEY_ENV
    session_hours: float = 12.0
    customer_tag: str = "customer"

    def read_only_key(self) -> str | None:
        """Return the read-only dashboard key from its environment variable, if set."""
        return os.environ.get(self.read_only_key_env) or None


def parse_dashboard_config(raw: object) -> DashboardConfig:
    """Validate the raw ``dashboard:`` value; raise ConfigError naming a bad key."""
    if raw is None:
        return DashboardConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"dashboard must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key dashboard.{unknown[0]}; valid keys are {', '.join(sorted(_KEYS))}"
        )

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"dashboard.enabled is {enabled!r}; use true or false")
    hours = raw.get("session_hours", 12)
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not 0 < hours <= _MAX_SESSION_HOURS
    ):
        raise ConfigError(
            f"dashboard.session_hours is {hours!r}; use a number of hours above 0 "
            f"and at most {_MAX_SESSION_HOURS}"
        )
    return DashboardConfig(
        enabled=enabled,
        read_only_key_env=_name(raw.get("read_only_key_env"), "read_only_key_env")
        or DEFAULT_READ_ONLY_KEY_ENV,
        session_hours=float(hours),
        customer_tag=_name(raw.get("customer_tag"), "customer_tag") or "customer",
    )


def _name(value: object, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"dashboard.{key} is {value!r}; it must be a non-empty string")
    return value.strip()
