"""The ``cache:`` section of ``thrifty.yaml``.

Example, with every key at its default unless noted::

    cache:
      enabled: true            # for requests that no rule matches
      mode: exact              # exact, or semantic (exact first, then by meaning)
      ttl_s: 86400
      namespace: [key]         # key, team, project, user, feature: who shares entries
      cache_sampled: false     # also cache requests sampled at temperature > 0
      max_entries: 100000
      max_bytes: 1073741824
      storage:
        url: null              # entries' database; default: the ledger's
        redis_url: null        # e.g. redis://127.0.0.1:6379/0, a hot tier shared by replicas
        redis_ttl_s: 3600
        redis_prefix: "thrifty:cache:"
        usd_per_gb_month: null # storage price; unset, storage is reported unpriced
      semantic:
        embedder: local        # local (all-MiniLM-L6-v2, offline) or gateway
        model: text-embedding-3-small   # the gateway embedder's model
        gateway_url: null      # default: the address the request came in on
        threshold: 0.985
      rules:                   # first to last; a later match overrides an earlier one
        - match: {feature: support-bot}     # key, team, project, user, feature, route, model
          mode: semantic
          ttl_s: 3600
        - match: {route: /v1/messages}
          enabled: false
      prompt_caching:          # provider prompt caching; opt-in per feature
        features: [docs-qa]    # or ["*"] for every feature
        anthropic_breakpoints: true
        openai_cache_key: feature   # feature, session or off
        fingerprints: true     # record prompt fingerprints for `thrifty cache advise`
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from thrifty.errors import ConfigError

CacheMode = Literal["exact", "semantic"]
EmbedderKind = Literal["local", "gateway"]
CacheKeySource = Literal["feature", "session", "off"]

NAMESPACE_DIMENSIONS = ("key", "team", "project", "user", "feature")
MATCH_FIELDS = ("key", "team", "project", "user", "feature", "route", "model")

# The lowest similarity at which the local embedder's nearest entry is served,
# chosen with `thrifty cache eval --split train` on Quora Question Pairs: the
# lowest threshold on its 0.005 grid with precision at or above 0.95 on the
# training split. The held-out split measures it (docs/benchmarks.md).
DEFAULT_THRESHOLD = 0.985
DEFAULT_TTL_S = 86_400
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 1024**3
DEFAULT_REDIS_TTL_S = 3600
DEFAULT_REDIS_PREFIX = "thrifty:cache:"
DEFAULT_GATEWAY_EMBEDDING_MODEL = "text-embedding-3-small"

_TOP_KEYS = {
    "enabled",
    "mode",
    "ttl_s",
    "namespace",
    "cache_sampled",
    "max_entries",
    "max_bytes",
    "storage",
    "semantic",
    "rules",
    "prompt_caching",
}
_STORAGE_KEYS = {"url", "redis_url", "redis_ttl_s", "redis_prefix", "usd_per_gb_month"}
_SEMANTIC_KEYS = {"embedder", "model", "gateway_url", "threshold"}
_RULE_KEYS = {"match", "enabled", "mode", "ttl_s", "cache_sampled", "threshold"}
_PROMPT_KEYS = {"features", "anthropic_breakpoints", "openai_cache_key", "fingerprints"}


@dataclass(frozen=True, slots=True)
class Policy:
    """What the response cache does for one request."""

    enabled: bool = True
    mode: CacheMode = "exact"
    ttl_s: int = DEFAULT_TTL_S
    cache_sampled: bool = False
    threshold: float = DEFAULT_THRESHOLD


@dataclass(frozen=True, slots=True)
class Rule:
    """Policy overrides for the requests whose attributes equal every ``match`` value."""

    match: dict[str, str]
    overrides: dict[str, Any]

    def matches(self, attributes: Mapping[str, str | None]) -> bool:
        return all(attributes.get(name) == value for name, value in self.match.items())


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where entries live: a SQL database, and optionally Redis as a hot tier."""

    url: str | None = None
    redis_url: str | None = None
    redis_ttl_s: int = DEFAULT_REDIS_TTL_S
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    usd_per_gb_month: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SemanticConfig:
    """How requests are embedded and compared for the semantic cache."""

    embedder: EmbedderKind = "local"
    model: str = DEFAULT_GATEWAY_EMBEDDING_MODEL
    gateway_url: str | None = None


@dataclass(frozen=True, slots=True)
class PromptCachingConfig:
    """Provider prompt caching: which features get cache-friendly requests."""

    features: tuple[str, ...] = ()
    anthropic_breakpoints: bool = True
    openai_cache_key: CacheKeySource = "feature"
    fingerprints: bool = True

    def applies_to(self, feature: str | None) -> bool:
        return "*" in self.features or (feature is not None and feature in self.features)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The parsed ``cache:`` section."""

    default: Policy = field(default_factory=Policy)
    namespace: tuple[str, ...] = ("key",)
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    storage: StorageConfig = field(default_factory=StorageConfig)
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    rules: tuple[Rule, ...] = ()
    prompt_caching: PromptCachingConfig | None = None

    def policy_for(self, attributes: Mapping[str, str | None]) -> Policy:
        """Return the default policy with every matching rule's overrides applied in order."""
        policy = self.default
        for rule in self.rules:
            if rule.matches(attributes):
                policy = replace(policy, **rule.overrides)
        return policy

    @property
    def uses_semantic(self) -> bool:
        """Whether any request can reach the semantic cache, so an embedder is needed."""
        if self.default.mode == "semantic" and self.default.enabled:
            return True
        return any(rule.overrides.get("mode") == "semantic" for rule in self.rules)


def parse_cache_config(raw: object) -> CacheConfig:
    """Validate the raw ``cache:`` value; raise ConfigError naming the key and value."""
    if raw is None:
        raw = {}
    section = _mapping(raw, "cache")
    _reject_unknown(section, _TOP_KEYS, "cache")
    default = Policy(
        enabled=_boolean(section.get("enabled"), "cache.enabled", True),
        mode=_mode(section.get("mode"), "cache.mode", "exact"),
        ttl_s=_positive_int(section.get("ttl_s"), "cache.ttl_s", DEFAULT_TTL_S),
        cache_sampled=_boolean(section.get("cache_sampled"), "cache.cache_sampled", False),
        threshold=_threshold(
            _mapping(section.get("semantic") or {}, "cache.semantic").get("threshold"),
            "cache.semantic.threshold",
        ),
    )
    return CacheConfig(
        default=default,
        namespace=_namespace(section.get("namespace")),
        max_entries=_positive_int(
            section.get("max_entries"), "cache.max_entries", DEFAULT_MAX_ENTRIES
        ),
        max_bytes=_positive_int(section.get("max_bytes"), "cache.max_bytes", DEFAULT_MAX_BYTES),
        storage=_storage(section.get("storage")),
        semantic=_semantic(section.get("semantic")),
        rules=_rules(section.get("rules")),
        prompt_caching=_prompt_caching(section.get("prompt_caching")),
    )


def _storage(raw: object) -> StorageConfig:
    where = "cache.storage"
    entry = _mapping(raw or {}, where)
    _reject_unknown(entry, _STORAGE_KEYS, where)
    redis_url = _optional_string(entry.get("redis_url"), f"{where}.redis_url")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{where}.redis_url is {redis_url!r}; give a redis:// or rediss:// URL, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return StorageConfig(
        url=_optional_string(entry.get("url"), f"{where}.url"),
        redis_url=redis_url,
        redis_ttl_s=_positive_int(
            entry.get("redis_ttl_s"), f"{where}.redis_ttl_s", DEFAULT_REDIS_TTL_S
        ),
        redis_prefix=_optional_string(entry.get("redis_prefix"), f"{where}.redis_prefix")
        or DEFAULT_REDIS_PREFIX,
        usd_per_gb_month=_optional_decimal(
            entry.get("usd_per_gb_month"), f"{where}.usd_per_gb_month"
        ),
    )


def _semantic(raw: object) -> SemanticConfig:
    where = "cache.semantic"
    entry = _mapping(raw or {}, where)
    _reject_unknown(entry, _SEMANTIC_KEYS, where)
    embedder = entry.get("embedder", "local")
    if embedder not in ("local", "gateway"):
        raise ConfigError(f"{where}.embedder is {embedder!r}; use 'local' or 'gateway'")
    gateway_url = _optional_string(entry.get("gateway_url"), f"{where}.gateway_url")
    if gateway_url is not None and not gateway_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}.gateway_url is {gateway_url!r}; give the gateway's http(s) address, "
            "e.g. http://127.0.0.1:4000"
        )
    return SemanticConfig(
        embedder=embedder,
        model=_optional_string(entry.get("model"), f"{where}.model")
        or DEFAULT_GATEWAY_EMBEDDING_MODEL,
        gateway_url=gateway_url.rstrip("/") if gateway_url else None,
    )


def _rules(raw: object) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"cache.rules must be a list of rules, got {type(raw).__name__}")
    return tuple(_rule(item, f"cache.rules[{index}]") for index, item in enumerate(raw))


def _rule(raw: object, where: str) -> Rule:
    entry = _mapping(raw, where)
    _reject_unknown(entry, _RULE_KEYS, where)
    match = _mapping(entry.get("match"), f"{where}.match")
    if not match:
        raise ConfigError(f"{where}.match is empty; name at least one of {', '.join(MATCH_FIELDS)}")
    _reject_unknown(match, set(MATCH_FIELDS), f"{where}.match")
    conditions = {name: _string(value, f"{where}.match.{name}") for name, value in match.items()}
    overrides: dict[str, Any] = {}
    if "enabled" in entry:
        overrides["enabled"] = _boolean(entry["enabled"], f"{where}.enabled", True)
    if "mode" in entry:
        overrides["mode"] = _mode(entry["mode"], f"{where}.mode", "exact")
    if "ttl_s" in entry:
        overrides["ttl_s"] = _positive_int(entry["ttl_s"], f"{where}.ttl_s", DEFAULT_TTL_S)
    if "cache_sampled" in entry:
        overrides["cache_sampled"] = _boolean(
            entry["cache_sampled"], f"{where}.cache_sampled", False
        )
    if "threshold" in entry:
        overrides["threshold"] = _threshold(entry["threshold"], f"{where}.threshold")
    return Rule(match=conditions, overrides=overrides)


def _prompt_caching(raw: object) -> PromptCachingConfig | None:
    if raw is None:
        return None
    where = "cache.prompt_caching"
    entry = _mapping(raw, where)
    _reject_unknown(entry, _PROMPT_KEYS, where)
    features = entry.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise ConfigError(
            f'{where}.features is {features!r}; list feature names, or ["*"] for every feature'
        )
    source = entry.get("openai_cache_key", "feature")
    if source not in ("feature", "session", "off"):
        raise ConfigError(
            f"{where}.openai_cache_key is {source!r}; use 'feature', 'session' or 'off'"
        )
    return PromptCachingConfig(
        features=tuple(features),
        anthropic_breakpoints=_boolean(
            entry.get("anthropic_breakpoints"), f"{where}.anthropic_breakpoints", True
        ),
        openai_cache_key=source,
        fingerprints=_boolean(entry.get("fingerprints"), f"{where}.fingerprints", True),
    )


def _namespace(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ("key",)
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"cache.namespace is {raw!r}; list one or more of {', '.join(NAMESPACE_DIMENSIONS)}"
        )
    for value in values:
        if value not in NAMESPACE_DIMENSIONS:
            raise ConfigError(
                f"cache.namespace contains {value!r}; "
                f"valid dimensions are {', '.join(NAMESPACE_DIMENSIONS)}"
            )
    return tuple(dict.fromkeys(values))


def _mode(value: object, where: str, default: CacheMode) -> CacheMode:
    if value is None:
        return default
    if value == "exact":
        return "exact"
    if value == "semantic":
        return "semantic"
    raise ConfigError(f"{where} is {value!r}; use 'exact' or 'semantic'")


def _threshold(value: object, where: str) -> float:
    if value is None:
        return DEFAULT_THRESHOLD
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(
            f"{where} is {value!r}; give a cosine similarity above 0 and at most 1, e.g. 0.985"
        )
    return float(value)


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


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} is {value!r}; it must be a non-empty string")
    return value


def _optional_string(value: object, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _boolean(value: object, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; use true or false")
    return value


def _positive_int(value: object, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} is {value!r}; it must be a whole number above zero")
    return value


def _optional_decimal(value: object, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where} is {value!r}; give a price in USD, e.g. 0.10")
    try:
        # str() first, so 0.1 is the decimal 0.1 and not its binary approximation.
        price = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{where} is {value!r}; give a price in USD, e.g. 0.10") from exc
    if not price.is_finite() or price < 0:
        raise ConfigError(f"{where} is {value!r}; it must be zero or more")
    return price
