"""The ``prompts:`` section of thrifty.yaml: which transforms run, per feature or route.

::

    prompts:
      transforms: [lossless]            # the default for every request
      protect:
        final_user: message             # message | last_part | none
        patterns: ['(?s)<keep>.*?</keep>']
      features:
        support-chat:
          transforms: [lossless, layout, trim]
          trim: {max_input_tokens: 8000, keep_recent_turns: 4}
        research:
          transforms: [lossless, compress]
          compress: {ratio: 0.5}
      routes:
        /v1/messages: {transforms: [lossless, trim], trim: {max_input_tokens: 150000}}
        gpt-4o-mini*: {trim: {max_input_tokens: 100000}}

Top-level keys are the defaults. A ``features`` entry (matched on the
request's feature) or else the first matching ``routes`` entry (a key that
starts with ``/`` matches the endpoint path, any other key the requested
model, with ``*`` wildcards) overrides them key by key, one level deep: a
feature that sets ``trim.max_input_tokens`` keeps the default
``trim.keep_recent_turns``. ``lossless`` in a transforms list stands for
drop_empty, whitespace, minify_json and dedupe. ``enabled: false`` turns the
step off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, get_args

from thrifty.errors import ConfigError
from thrifty.prompts.dialect import Role
from thrifty.prompts.protect import FINAL_USER_MODES, Protection
from thrifty.prompts.settings import (
    LOSSLESS_TRANSFORMS,
    TRANSFORMS,
    CompressSettings,
    DedupeSettings,
    LayoutSettings,
    Settings,
    TrimSettings,
)

_SECTION = "prompts"
_SETTING_KEYS = {"transforms", "protect", "trim", "compress", "dedupe", "layout"}
_NESTED_KEYS = ("protect", "trim", "compress", "dedupe", "layout")
_TOP_KEYS = _SETTING_KEYS | {"enabled", "features", "routes"}
_COMPRESS_METHODS = ("extractive", "llmlingua2")
_LAYOUT_TARGETS = ("system_end", "before_last_user")
_ROLES = tuple(role for role in get_args(Role) if role != "other")


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    """The parsed ``prompts:`` section."""

    default: Settings = field(default_factory=Settings)
    features: dict[str, Settings] = field(default_factory=dict)
    routes: tuple[tuple[str, Settings], ...] = ()
    enabled: bool = True

    def settings_for(self, feature: str | None, path: str, model: str) -> Settings:
        """Return the settings of a request: its feature's, else its route's, else the default."""
        if feature is not None and feature in self.features:
            return self.features[feature]
        for pattern, settings in self.routes:
            subject = path if pattern.startswith("/") else model
            if fnmatchcase(subject, pattern):
                return settings
        return self.default


def parse_prompts_config(raw: object) -> PromptsConfig:
    """Validate the raw ``prompts:`` value; raise ConfigError naming the key and value."""
    section = _mapping(raw if raw is not None else {}, _SECTION)
    _reject_unknown(section, _TOP_KEYS, _SECTION)
    defaults = {key: value for key, value in section.items() if key in _SETTING_KEYS}
    default = parse_settings(defaults, _SECTION, "default")

    features = {
        str(name): parse_settings(
            _merged(defaults, _entry(value, f"{_SECTION}.features.{name}")),
            f"{_SECTION}.features.{name}",
            f"feature:{name}",
        )
        for name, value in _mapping(section.get("features", {}), f"{_SECTION}.features").items()
    }
    routes = tuple(
        (
            str(pattern),
            parse_settings(
                _merged(defaults, _entry(value, f"{_SECTION}.routes.{pattern}")),
                f"{_SECTION}.routes.{pattern}",
                f"route:{pattern}",
            ),
        )
        for pattern, value in _mapping(section.get("routes", {}), f"{_SECTION}.routes").items()
    )
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{_SECTION}.enabled is {enabled!r}; use true or false")
    return PromptsConfig(default=default, features=features, routes=routes, enabled=enabled)


def parse_settings(raw: Mapping[str, Any], where: str, name: str) -> Settings:
    """Build one feature's Settings from its (merged) raw mapping."""
    transforms = _transforms(raw.get("transforms", ["lossless"]), f"{where}.transforms")
    settings = Settings(
        transforms=transforms,
        protect=_protect(_mapping(raw.get("protect", {}), f"{where}.protect"), f"{where}.protect"),
        trim=_trim(_mapping(raw.get("trim", {}), f"{where}.trim"), f"{where}.trim"),
        compress=_compress(
            _mapping(raw.get("compress", {}), f"{where}.compress"), f"{where}.compress"
        ),
        dedupe=_dedupe(_mapping(raw.get("dedupe", {}), f"{where}.dedupe"), f"{where}.dedupe"),
        layout=_layout(_mapping(raw.get("layout", {}), f"{where}.layout"), f"{where}.layout"),
        name=name,
    )
    if "trim" in transforms and settings.trim.max_input_tokens is None:
        raise ConfigError(
            f"{where}.transforms lists trim, but {where}.trim.max_input_tokens is not set; "
            "give the token budget to trim conversations to"
        )
    return settings


def _transforms(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} is {value!r}; give a list of transform names")
    names: list[str] = []
    for item in value:
        expanded = LOSSLESS_TRANSFORMS if item == "lossless" else (item,)
        for name in expanded:
            if name not in TRANSFORMS:
                valid = ", ".join(("lossless", *TRANSFORMS))
                raise ConfigError(f"{where} names unknown transform {name!r}; valid names: {valid}")
            if name not in names:
                names.append(name)
    return tuple(names)


def _protect(raw: dict[str, Any], where: str) -> Protection:
    _reject_unknown(raw, {"final_user", "patterns"}, where)
    mode = raw.get("final_user", "message")
    if mode not in FINAL_USER_MODES:
        raise ConfigError(
            f"{where}.final_user is {mode!r}; use one of {', '.join(FINAL_USER_MODES)}"
        )
    return Protection(final_user=mode, patterns=_patterns(raw.get("patterns", []), where))


def _trim(raw: dict[str, Any], where: str) -> TrimSettings:
    _reject_unknown(
        raw,
        {"max_input_tokens", "keep_recent_turns", "keep_recent_exchanges", "tool_result_tokens"},
        where,
    )
    defaults = TrimSettings()
    budget = raw.get("max_input_tokens")
    return TrimSettings(
        max_input_tokens=None if budget is None else _count(budget, f"{where}.max_input_tokens"),
        keep_recent_turns=_count(
            raw.get("keep_recent_turns", defaults.keep_recent_turns),
            f"{where}.keep_recent_turns",
        ),
        keep_recent_exchanges=_count(
            raw.get("keep_recent_exchanges", defaults.keep_recent_exchanges),
            f"{where}.keep_recent_exchanges",
            allow_zero=True,
        ),
        tool_result_tokens=_count(
            raw.get("tool_result_tokens", defaults.tool_result_tokens),
            f"{where}.tool_result_tokens",
            allow_zero=True,
        ),
    )


def _compress(raw: dict[str, Any], where: str) -> CompressSettings:
    _reject_unknown(raw, {"ratio", "max_tokens", "method", "roles", "min_tokens"}, where)
    defaults = CompressSettings()
    ratio = raw.get("ratio", defaults.ratio if "max_tokens" not in raw else None)
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1
    ):
        raise ConfigError(
            f"{where}.ratio is {ratio!r}; give the share of tokens to keep, between 0 and 1"
        )
    max_tokens = raw.get("max_tokens")
    method = raw.get("method", defaults.method)
    if method not in _COMPRESS_METHODS:
        raise ConfigError(
            f"{where}.method is {method!r}; use one of {', '.join(_COMPRESS_METHODS)}"
        )
    if method == "llmlingua2":
        from thrifty.prompts.llmlingua import llmlingua_installed

        if not llmlingua_installed():
            raise ConfigError(
                f"{where}.method is llmlingua2, but the llmlingua package is not installed; "
                "run `pip install llmlingua` or use method: extractive"
            )
    roles = raw.get("roles", list(defaults.roles))
    if not isinstance(roles, list) or not roles or any(role not in _ROLES for role in roles):
        raise ConfigError(
            f"{where}.roles is {roles!r}; give a list of roles from {', '.join(_ROLES)}"
        )
    return CompressSettings(
        ratio=None if ratio is None else float(ratio),
        max_tokens=None if max_tokens is None else _count(max_tokens, f"{where}.max_tokens"),
        method=method,
        roles=tuple(roles),
        min_tokens=_count(raw.get("min_tokens", defaults.min_tokens), f"{where}.min_tokens"),
    )


def _dedupe(raw: dict[str, Any], where: str) -> DedupeSettings:
    _reject_unknown(raw, {"min_block_tokens"}, where)
    minimum = raw.get("min_block_tokens", DedupeSettings().min_block_tokens)
    return DedupeSettings(min_block_tokens=_count(minimum, f"{where}.min_block_tokens"))


def _layout(raw: dict[str, Any], where: str) -> LayoutSettings:
    _reject_unknown(raw, {"patterns", "builtin", "retrieved", "target"}, where)
    target = raw.get("target", "system_end")
    if target not in _LAYOUT_TARGETS:
        raise ConfigError(f"{where}.target is {target!r}; use one of {', '.join(_LAYOUT_TARGETS)}")
    return LayoutSettings(
        patterns=_patterns(raw.get("patterns", []), where),
        builtin=_boolean(raw.get("builtin", True), f"{where}.builtin"),
        retrieved=_boolean(raw.get("retrieved", True), f"{where}.retrieved"),
        target=target,
    )


def _patterns(value: object, where: str) -> tuple[re.Pattern[str], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}.patterns is {value!r}; give a list of regular expressions")
    compiled: list[re.Pattern[str]] = []
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                f"{where}.patterns[{index}] is {pattern!r}; give a regular expression"
            )
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(
                f"{where}.patterns[{index}] {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    return tuple(compiled)


def _merged(defaults: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in override.items():
        base = defaults.get(key)
        if key in _NESTED_KEYS and isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _entry(value: object, where: str) -> dict[str, Any]:
    entry = _mapping(value if value is not None else {}, where)
    _reject_unknown(entry, _SETTING_KEYS, where)
    return entry


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


def _count(value: object, where: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        floor = "zero or more" if allow_zero else "above zero"
        raise ConfigError(f"{where} is {value!r}; it must be a whole number {floor}")
    return value


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; use true or false")
    return value
