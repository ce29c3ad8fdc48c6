"""Gateway configuration: the ``thrifty.yaml`` file and its defaults.

A minimal file names the providers the gateway forwards to::

    providers:
      openai:
        base_url: https://api.openai.com
        api_key_env: OPENAI_API_KEY
      anthropic:
        base_url: https://api.anthropic.com
        api_key_env: ANTHROPIC_API_KEY
      groq:
        kind: openai              # speaks the OpenAI API
        base_url: https://api.groq.com/openai
        api_key_env: GROQ_API_KEY
    gateway:
      max_body_bytes: 20971520
      upstream_timeout_s: 600
      spool_full: reject        # or fail_open: serve requests whose records
                                # are kept in memory only
    ledger:
      url: sqlite:///.thrifty/thrifty.db

OpenAI-format endpoints go to the provider named ``openai`` and
``/v1/messages`` to ``anthropic``, unless the request's model starts with the
name of another configured provider and a slash (``groq/llama-3.3-70b``): the
prefix picks that provider and is removed before the request is forwarded.
A provider without ``api_key_env`` receives the client's own credentials.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from thrifty.errors import ConfigError

# The API a provider speaks. Gemini is an upstream only: the gateway serves
# OpenAI chat completions from it by translation, and no endpoint speaks it.
ProviderKind = Literal["openai", "anthropic", "gemini"]
_PROVIDER_KINDS = ("openai", "anthropic", "gemini")
SpoolFullPolicy = Literal["reject", "fail_open"]

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_STATE_DIR = Path(".thrifty")

_KNOWN_SECTIONS = {"providers", "gateway", "ledger"}

# Sections owned by feature packages: each name maps to "module:function",
# a function that takes the section's raw YAML value and returns its parsed,
# validated form, raising ConfigError that names the key and the bad value.
SECTION_PARSERS: dict[str, str] = {
    "batch": "thrifty.batch.config:parse_batch_config",
    "cache": "thrifty.cache.config:parse_cache_config",
    "control": "thrifty.control.config:parse_control_config",
    "dashboard": "thrifty.dashboard.config:parse_dashboard_config",
    "flex": "thrifty.batch.config:parse_flex_config",
    "prices": "thrifty.pricing.config:parse_prices_config",
    "prompts": "thrifty.prompts.config:parse_prompts_config",
    "routing": "thrifty.routing.config:parse_routing_config",
    "telemetry": "thrifty.integrations.config:parse_telemetry_config",
}
_PROVIDER_KEYS = {"kind", "base_url", "api_key_env", "pricing_provider"}
_GATEWAY_KEYS = {
    "max_body_bytes",
    "upstream_timeout_s",
    "upstream_connect_timeout_s",
    "connect_retries",
    "spool_dir",
    "spool_fsync",
    "spool_full",
}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider.

    ``kind`` is the API it speaks; ``pricing_provider`` is the provider id
    used to look up its prices (the name itself unless set).
    """

    name: str
    kind: ProviderKind
    base_url: str
    api_key_env: str | None = None
    pricing_provider: str | None = None

    @property
    def price_provider(self) -> str:
        return self.pricing_provider or self.name

    def api_key(self) -> str | None:
        """Return the provider key from its environment variable, if one is named."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(
                f"provider '{self.name}' reads its API key from ${self.api_key_env}, "
                "which is not set; export it or remove api_key_env to pass client keys through"
            )
        return value


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything ``thrifty serve`` needs to run."""

    providers: dict[str, ProviderConfig]
    db_url: str
    spool_dir: Path = DEFAULT_STATE_DIR / "spool"
    spool_fsync: bool = False
    # What metered requests get while the spool cannot be written (a full disk):
    # a 503 (reject), or served with records kept in memory only (fail_open).
    spool_full: SpoolFullPolicy = "reject"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout_s: float = 600.0
    upstream_connect_timeout_s: float = 10.0
    connect_retries: int = 2
    sandbox: bool = False
    sections: dict[str, Any] = field(default_factory=dict)

    def provider_for_kind(self, kind: ProviderKind) -> ProviderConfig:
        """Return the default provider of an API kind: the one named like the kind."""
        provider = self.providers.get(kind)
        if provider is None:
            raise ConfigError(
                f"no provider named '{kind}' is configured; add one under `providers:` "
                "in thrifty.yaml or run with --sandbox"
            )
        return provider


def default_providers() -> dict[str, ProviderConfig]:
    """Return the real OpenAI and Anthropic APIs, keyed from the usual variables."""
    return {
        "openai": ProviderConfig("openai", "openai", "https://api.openai.com", "OPENAI_API_KEY"),
        "anthropic": ProviderConfig(
            "anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"
        ),
    }


def sandbox_providers(base_url: str) -> dict[str, ProviderConfig]:
    """Return providers that all point at a sandbox emulator."""
    return {
        "openai": ProviderConfig("openai", "openai", base_url),
        "anthropic": ProviderConfig("anthropic", "anthropic", base_url),
    }


def load_config(path: Path | None, *, db_url: str | None = None) -> GatewayConfig:
    """Read ``thrifty.yaml`` (or use the defaults when ``path`` is None)."""
    from thrifty.ledger import DEFAULT_DB_URL

    raw = _read_yaml(path) if path is not None else {}
    providers = _parse_providers(raw.get("providers")) if "providers" in raw else None
    gateway = _mapping(raw.get("gateway", {}), "gateway")
    _reject_unknown(gateway, _GATEWAY_KEYS, "gateway")
    ledger = _mapping(raw.get("ledger", {}), "ledger")
    _reject_unknown(ledger, {"url"}, "ledger")

    return GatewayConfig(
        providers=providers or default_providers(),
        db_url=db_url or _string(ledger.get("url"), "ledger.url", DEFAULT_DB_URL),
        spool_dir=Path(
            _string(gateway.get("spool_dir"), "gateway.spool_dir", str(DEFAULT_STATE_DIR / "spool"))
        ),
        spool_fsync=_boolean(gateway.get("spool_fsync"), "gateway.spool_fsync", False),
        spool_full=_spool_full_policy(gateway.get("spool_full")),
        max_body_bytes=_positive_int(
            gateway.get("max_body_bytes"), "gateway.max_body_bytes", DEFAULT_MAX_BODY_BYTES
        ),
        upstream_timeout_s=_positive_float(
            gateway.get("upstream_timeout_s"), "gateway.upstream_timeout_s", 600.0
        ),
        upstream_connect_timeout_s=_positive_float(
            gateway.get("upstream_connect_timeout_s"), "gateway.upstream_connect_timeout_s", 10.0
        ),
        connect_retries=_positive_int(
            gateway.get("connect_retries"), "gateway.connect_retries", 2, allow_zero=True
        ),
        sections=_parse_sections(raw),
    )


def _parse_sections(raw: Mapping[str, Any]) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _KNOWN_SECTIONS:
            continue
        target = SECTION_PARSERS.get(name)
        if target is None:
            valid = ", ".join(sorted(_KNOWN_SECTIONS | set(SECTION_PARSERS)))
            raise ConfigError(
                f"unknown section '{name}' in thrifty.yaml; valid sections are {valid}"
            )
        module_name, _, function_name = target.partition(":")
        parser = getattr(importlib.import_module(module_name), function_name)
        sections[name] = parser(value)
    return sections


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    return _mapping(raw, f"config file {path}")


def _parse_providers(raw: object) -> dict[str, ProviderConfig]:
    providers: dict[str, ProviderConfig] = {}
    for name, value in _mapping(raw, "providers").items():
        where = f"providers.{name}"
        entry = _mapping(value, where)
        _reject_unknown(entry, _PROVIDER_KEYS, where)
        kind = entry.get("kind", name if name in _PROVIDER_KINDS else "openai")
        if kind not in _PROVIDER_KINDS:
            raise ConfigError(f"{where}.kind is {kind!r}; use 'openai', 'anthropic' or 'gemini'")
        base_url = entry.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}.base_url is {base_url!r}; give the provider's http(s) address, "
                "e.g. https://api.openai.com"
            )
        providers[name] = ProviderConfig(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            api_key_env=_optional_string(entry.get("api_key_env"), f"{where}.api_key_env"),
            pricing_provider=_optional_string(
                entry.get("pricing_provider"), f"{where}.pricing_provider"
            ),
        )
    return providers


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


def _string(value: object, where: str, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} is {value!r}; it must be a non-empty string")
    return value


def _optional_string(value: object, where: str) -> str | None:
    if value is None:
        return None
    return _string(value, where, "")


def _boolean(value: object, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; use true or false")
    return value


def _positive_int(value: object, where: str, default: int, *, allow_zero: bool = False) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{where} is {value!r}; it must be a whole number above zero")
    return value


def _spool_full_policy(value: object) -> SpoolFullPolicy:
    if value is None or value == "reject":
        return "reject"
    if value == "fail_open":
        return "fail_open"
    raise ConfigError(f"gateway.spool_full is {value!r}; use 'reject' or 'fail_open'")


def _positive_float(value: object, where: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where} is {value!r}; it must be a number of seconds above zero")
    return float(value)
