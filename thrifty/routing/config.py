"""The ``routing:`` section of thrifty.yaml.

Routes are called as models named ``thrifty/<route>``; ``thrifty/auto``
calls the route named by ``default`` (or the route named ``auto``)::

    routing:
      default: support-bot
      routes:
        support-bot:
          models: [gpt-4o-mini, gpt-4o]        # cheap to strong
          policy: rules
          rules:
            - when: {feature: [search, autocomplete], max_input_tokens: 4000}
              model: gpt-4o-mini
            - when: {tools: true}
              model: gpt-4o
          otherwise: gpt-4o-mini               # default: the strongest model
          fallbacks: [anthropic/claude-haiku-4-5]
          budget_downgrade: {above: 0.9, model: gpt-4o-mini}
          retry_after_max_s: 2                 # retry the same model after a 429 or 503
                                               # whose Retry-After is at most 2 s
        qa:
          models: [gpt-4o-mini, gpt-4o]
          policy: learned
          router_file: routers/mmlu.json       # from `thrifty route train`
          target_quality: 0.9                  # or strong_share, or threshold
        extract:
          models: [gpt-4o-mini, gpt-4o]
          policy: cascade
          checks: [empty, refusal, json, schema, truncated]
          schema: {type: object, required: [name]}
          validator: {regex: '"name"'}         # or {function: "pkg.module:check"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError, RoutingError
from thrifty.routing.checks import CHECK_NAMES, DEFAULT_CHECKS, AnswerChecks, load_validator
from thrifty.routing.learned import LearnedRouter
from thrifty.routing.router import (
    BudgetDowngrade,
    CascadePolicy,
    LearnedPolicy,
    Policy,
    Router,
    RulesPolicy,
)
from thrifty.routing.rules import Condition, Rule

ROUTE_PREFIX = "thrifty/"
AUTO_ROUTE = "auto"
DEFAULT_TARGET_QUALITY = 0.9
_ROUTE_KEYS = {
    "models",
    "policy",
    "rules",
    "otherwise",
    "fallbacks",
    "budget_downgrade",
    "retry_after_max_s",
    "router_file",
    "weak",
    "strong",
    "threshold",
    "target_quality",
    "strong_share",
    "checks",
    "schema",
    "validator",
}
_POLICY_KEYS = {
    "rules": {"rules", "otherwise"},
    "learned": {"router_file", "weak", "strong", "threshold", "target_quality", "strong_share"},
    "cascade": {"checks", "schema", "validator"},
}
_DIMENSIONS = ("feature", "team", "project", "user", "key")
_CONDITION_KEYS = {
    *_DIMENSIONS,
    "tags",
    "min_input_tokens",
    "max_input_tokens",
    "tools",
    "images",
    "json_response",
}


@dataclass(frozen=True)
class RoutingConfig:
    """Every configured route, and the one ``thrifty/auto`` calls."""

    routes: Mapping[str, Router]
    default: str | None = None

    def router_for(self, model: str) -> Router | None:
        """Return the route a request's model names (``thrifty/NAME``), or None."""
        if not model.startswith(ROUTE_PREFIX):
            return None
        name = model[len(ROUTE_PREFIX) :]
        if name == AUTO_ROUTE and self.default is not None:
            name = self.default
        return self.routes.get(name)


def parse_routing_config(raw: object) -> RoutingConfig:
    """Validate the ``routing:`` section; raise ConfigError naming the key and value."""
    section = _mapping(raw, "routing")
    _reject_unknown(section, {"routes", "default"}, "routing")
    routes_raw = _mapping(section.get("routes", {}), "routing.routes")
    routes = {str(name): _route(str(name), value) for name, value in routes_raw.items()}
    default = section.get("default")
    if default is not None and (not isinstance(default, str) or default not in routes):
        raise ConfigError(
            f"routing.default is {default!r}; name one of the routes: {', '.join(sorted(routes))}"
        )
    return RoutingConfig(routes=routes, default=default)


def _route(name: str, raw: object) -> Router:
    where = f"routing.routes.{name}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"route name {where} may use only letters, digits, '.', '_' and '-'")
    entry = _mapping(raw, where)
    _reject_unknown(entry, _ROUTE_KEYS, where)
    models = _models(entry.get("models"), f"{where}.models")
    policy_name = entry.get("policy", "rules")
    if policy_name not in _POLICY_KEYS:
        raise ConfigError(f"{where}.policy is {policy_name!r}; use rules, learned or cascade")
    for key in entry:
        owner = next((p for p, keys in _POLICY_KEYS.items() if key in keys), policy_name)
        if owner != policy_name:
            raise ConfigError(f"{where}.{key} belongs to policy {owner!r}, not {policy_name!r}")

    policy = _policy(policy_name, entry, models, where)
    fallbacks = entry.get("fallbacks")
    return Router(
        name,
        models,
        policy,
        fallbacks=None if fallbacks is None else _models(fallbacks, f"{where}.fallbacks"),
        budget_downgrade=_budget_downgrade(entry.get("budget_downgrade"), where),
        retry_after_max_s=_seconds(entry.get("retry_after_max_s"), f"{where}.retry_after_max_s"),
    )


def _policy(name: str, entry: Mapping[str, Any], models: tuple[str, ...], where: str) -> Policy:
    if name == "rules":
        rules = entry.get("rules", [])
        if not isinstance(rules, list):
            raise ConfigError(f"{where}.rules must be a list of {{when, model}} entries")
        otherwise = _model_in(entry.get("otherwise", models[-1]), models, f"{where}.otherwise")
        parsed = tuple(_rule(item, models, f"{where}.rules[{i}]") for i, item in enumerate(rules))
        return RulesPolicy(parsed, otherwise)
    if name == "learned":
        return _learned(entry, models, where)
    return _cascade(entry, where)


def _rule(raw: object, models: tuple[str, ...], where: str) -> Rule:
    entry = _mapping(raw, where)
    _reject_unknown(entry, {"when", "model"}, where)
    model = _model_in(entry.get("model"), models, f"{where}.model")
    return Rule(_condition(entry.get("when", {}), f"{where}.when"), model)


def _condition(raw: object, where: str) -> Condition:
    entry = _mapping(raw, where)
    _reject_unknown(entry, _CONDITION_KEYS, where)
    dimensions = {
        name: _string_set(entry[name], f"{where}.{name}") for name in _DIMENSIONS if name in entry
    }
    tags = _mapping(entry.get("tags", {}), f"{where}.tags")
    return Condition(
        dimensions=dimensions,
        tags={str(k): _text(v, f"{where}.tags.{k}") for k, v in tags.items()},
        min_input_tokens=_count(entry.get("min_input_tokens"), f"{where}.min_input_tokens"),
        max_input_tokens=_count(entry.get("max_input_tokens"), f"{where}.max_input_tokens"),
        tools=_flag(entry.get("tools"), f"{where}.tools"),
        images=_flag(entry.get("images"), f"{where}.images"),
        json_response=_flag(entry.get("json_response"), f"{where}.json_response"),
    )


def _learned(entry: Mapping[str, Any], models: tuple[str, ...], where: str) -> LearnedPolicy:
    path = entry.get("router_file")
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"{where}.router_file is {path!r}; give the file `thrifty route train` wrote"
        )
    try:
        router = LearnedRouter.load(Path(path))
    except RoutingError as exc:
        raise ConfigError(f"{where}.router_file: {exc}") from exc
    weak = _model_in(entry.get("weak", models[0]), models, f"{where}.weak")
    strong = _model_in(entry.get("strong", models[-1]), models, f"{where}.strong")
    threshold, source = _threshold(entry, router, where)
    return LearnedPolicy(router, weak, strong, threshold, source)


def _threshold(entry: Mapping[str, Any], router: LearnedRouter, where: str) -> tuple[float, str]:
    given = [key for key in ("threshold", "target_quality", "strong_share") if key in entry]
    if len(given) > 1:
        raise ConfigError(f"{where} sets {' and '.join(given)}; set only one of them")
    key = given[0] if given else "target_quality"
    value = _fraction(entry.get(key, DEFAULT_TARGET_QUALITY), f"{where}.{key}")
    if key == "threshold":
        return value, "configured threshold"
    try:
        if key == "strong_share":
            threshold = router.threshold_for(strong_share=value)
        else:
            threshold = router.threshold_for(target_quality=value)
    except RoutingError as exc:
        raise ConfigError(f"{where}.{key}: {exc}") from exc
    return threshold, f"{key} {value:g} in cross-validation"


def _cascade(entry: Mapping[str, Any], where: str) -> CascadePolicy:
    names = entry.get("checks", list(DEFAULT_CHECKS))
    if not isinstance(names, list) or any(n not in CHECK_NAMES for n in names):
        raise ConfigError(f"{where}.checks is {names!r}; list some of {', '.join(CHECK_NAMES)}")
    schema = entry.get("schema")
    if schema is not None and not isinstance(schema, Mapping):
        raise ConfigError(f"{where}.schema must be a JSON schema mapping")
    validator = _mapping(entry.get("validator", {}), f"{where}.validator")
    _reject_unknown(validator, {"regex", "function"}, f"{where}.validator")
    pattern = None
    if "regex" in validator:
        try:
            pattern = re.compile(_text(validator["regex"], f"{where}.validator.regex"))
        except re.error as exc:
            raise ConfigError(f"{where}.validator.regex is invalid: {exc}") from exc
    function_name = validator.get("function")
    function = None
    if function_name is not None:
        function_name = _text(function_name, f"{where}.validator.function")
        function = load_validator(function_name, f"{where}.validator.function")
    checks = AnswerChecks(tuple(names), schema, pattern, function, function_name)
    return CascadePolicy(checks)


def _budget_downgrade(raw: object, where: str) -> BudgetDowngrade | None:
    if raw is None:
        return None
    entry = _mapping(raw, f"{where}.budget_downgrade")
    _reject_unknown(entry, {"above", "model"}, f"{where}.budget_downgrade")
    above = _fraction(entry.get("above"), f"{where}.budget_downgrade.above")
    model = _text(entry.get("model"), f"{where}.budget_downgrade.model")
    return BudgetDowngrade(above, model)


def _models(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} is {raw!r}; list model names, cheapest first")
    models = tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(raw))
    if any(model.startswith(ROUTE_PREFIX) for model in models):
        raise ConfigError(f"{where} names a route ({ROUTE_PREFIX}...); list provider models")
    return models


def _model_in(raw: object, models: tuple[str, ...], where: str) -> str:
    model = _text(raw, where)
    if model not in models:
        raise ConfigError(
            f"{where} is {model!r}, which is not in the route's models {list(models)}"
        )
    return model


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


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} is {value!r}; it must be a non-empty string")
    return value


def _string_set(value: object, where: str) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    return frozenset(_text(item, where) for item in items)


def _count(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where} is {value!r}; it must be a whole number of tokens, 0 or more")
    return value


def _seconds(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where} is {value!r}; give a number of seconds, 0 or more")
    return float(value)


def _flag(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{where} is {value!r}; use true or false")


def _fraction(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where} is {value!r}; give a fraction from 0 to 1")
    return float(value)
