"""Cost-center rules: which cost center a request's spend is charged to.

A rule file is YAML::

    cost_centers:
      - name: CC-1001 Search
        match: {team: search}
      - name: CC-2002 Support automation
        match: {team: support, feature: [support-bot, email-draft]}
      - name: CC-3003 Customer Acme
        match: {"tag:customer": acme}
    default: Unallocated            # optional; unmatched spend is unattributed without it

Each rule's ``match`` maps a dimension to one value or a list of values. A
request matches when every listed dimension has one of its values. Rules
are tried in file order and the first match wins. The dimensions are
``team``, ``project``, ``feature``, ``key``, ``user``, ``provider``,
``model`` and ``tag:KEY``.

The values matched are the ones recorded in the ledger. The gateway sets
them, highest precedence first, from the ``X-Thrifty-*`` headers, then the
body's ``metadata`` (and for the user, the body's ``user`` field), then the
defaults of the virtual key that made the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import ConfigError

RULE_DIMENSIONS = ("team", "project", "feature", "key", "user", "provider", "model")


@dataclass(frozen=True, slots=True)
class CostCenterRule:
    """One cost center and the dimension values its requests have."""

    name: str
    match: Mapping[str, frozenset[str]]

    def matches(self, values: Mapping[str, str | None]) -> bool:
        return all(values.get(name) in allowed for name, allowed in self.match.items())


@dataclass(frozen=True, slots=True)
class AllocationRules:
    """Ordered cost-center rules and the cost center for spend no rule matches."""

    rules: tuple[CostCenterRule, ...]
    default: str | None = None

    @property
    def dimensions(self) -> list[str]:
        """Every dimension some rule matches on, in first-use order."""
        names: dict[str, None] = {}
        for rule in self.rules:
            names.update(dict.fromkeys(rule.match))
        return list(names)

    def cost_center(self, values: Mapping[str, str | None]) -> str | None:
        """Return the cost center of a request with ``values``, or None when unattributed."""
        for rule in self.rules:
            if rule.matches(values):
                return rule.name
        return self.default


def load_rules(path: Path) -> AllocationRules:
    """Read and validate a rule file; raise ConfigError naming the bad entry."""
    # Imported here: `thrifty report` loads this module for its chargeback
    # subcommand, and most reports read no rule file.
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read cost-center rule file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"cost-center rule file {path} is not valid YAML: {exc}") from exc
    return parse_rules(raw, str(path))


def parse_rules(raw: object, source: str = "rules") -> AllocationRules:
    """Validate the parsed YAML of a rule file."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must be a mapping with a cost_centers list")
    unknown = sorted(set(map(str, raw)) - {"cost_centers", "default"})
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {source}; valid keys are cost_centers, default"
        )
    entries = raw.get("cost_centers")
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ConfigError(f"{source}: cost_centers must be a non-empty list of rules")
    rules = tuple(
        _rule(entry, f"{source}: cost_centers[{index}]") for index, entry in enumerate(entries)
    )
    default = raw.get("default")
    if default is not None and (not isinstance(default, str) or not default.strip()):
        raise ConfigError(
            f"{source}: default is {default!r}; give a cost center name or leave it out"
        )
    return AllocationRules(rules=rules, default=None if default is None else default.strip())


def _rule(entry: object, where: str) -> CostCenterRule:
    if not isinstance(entry, Mapping) or set(map(str, entry)) != {"name", "match"}:
        raise ConfigError(f"{where} must have exactly the keys name and match")
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name is {name!r}; give the cost center a name")
    match = entry["match"]
    if not isinstance(match, Mapping) or not match:
        raise ConfigError(f"{where}.match must map at least one dimension to its values")
    conditions: dict[str, frozenset[str]] = {}
    for dimension, values in match.items():
        key = str(dimension)
        if key not in RULE_DIMENSIONS and not (key.startswith("tag:") and len(key) > 4):
            raise ConfigError(
                f"{where}.match has unknown dimension {key!r}; use "
                f"{', '.join(RULE_DIMENSIONS)} or tag:KEY"
            )
        conditions[key] = _values(values, f"{where}.match.{key}")
    return CostCenterRule(name=name.strip(), match=conditions)


def _values(values: object, where: str) -> frozenset[str]:
    items = [values] if isinstance(values, str) else values
    if not isinstance(items, Sequence) or not items:
        raise ConfigError(f"{where} is {values!r}; give a value or a list of values")
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{where} is {values!r}; every value must be a non-empty string")
    return frozenset(items)
