"""Routing rules: conditions on a request's attribution and shape, and the model they pick.

A condition matches when every field it sets matches. String fields
(``feature``, ``team``, ``project``, ``user``, ``key``) match one of their
listed values; ``tags`` match when the request has each listed tag value;
``min_input_tokens`` and ``max_input_tokens`` bound the input's offline
token count; ``tools``, ``images`` and ``json_response`` match the presence
(true) or absence (false) of tools, image inputs and a JSON response format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from thrifty.routing.request_view import RequestView


class AttributionLike(Protocol):
    """The attribution fields rules read (``thrifty.gateway.attribution.Attribution``)."""

    @property
    def team(self) -> str | None: ...

    @property
    def project(self) -> str | None: ...

    @property
    def user(self) -> str | None: ...

    @property
    def feature(self) -> str | None: ...

    @property
    def tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """A request as rules see it: its body, attribution and virtual key."""

    view: RequestView
    attribution: AttributionLike | None = None
    key_id: str | None = None

    def dimension(self, name: str) -> str | None:
        if name == "key":
            return self.key_id
        if self.attribution is None:
            return None
        value: str | None = getattr(self.attribution, name)
        return value

    def tag(self, name: str) -> str | None:
        return None if self.attribution is None else self.attribution.tags.get(name)


@dataclass(frozen=True, slots=True)
class Condition:
    """The conditions of one rule; a field left as None is not checked."""

    dimensions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    tools: bool | None = None
    images: bool | None = None
    json_response: bool | None = None

    def matches(self, facts: RequestFacts) -> bool:
        return self._attribution_matches(facts) and self._shape_matches(facts.view)

    def describe(self) -> str:
        """Return the condition as ``key=value`` terms joined by ``and``."""
        terms = [f"{name} in {sorted(values)}" for name, values in self.dimensions.items()]
        terms += [f"tag {name}={value}" for name, value in self.tags.items()]
        if self.min_input_tokens is not None:
            terms.append(f"input_tokens >= {self.min_input_tokens}")
        if self.max_input_tokens is not None:
            terms.append(f"input_tokens <= {self.max_input_tokens}")
        for name in ("tools", "images", "json_response"):
            value = getattr(self, name)
            if value is not None:
                terms.append(f"{name}={str(value).lower()}")
        return " and ".join(terms) or "always"

    def _attribution_matches(self, facts: RequestFacts) -> bool:
        for name, values in self.dimensions.items():
            if facts.dimension(name) not in values:
                return False
        return all(facts.tag(name) == value for name, value in self.tags.items())

    def _shape_matches(self, view: RequestView) -> bool:
        if self.tools is not None and view.has_tools != self.tools:
            return False
        if self.images is not None and view.has_images != self.images:
            return False
        if self.json_response is not None and view.wants_json != self.json_response:
            return False
        if self.max_input_tokens is not None and not view.input_tokens_at_most(
            self.max_input_tokens
        ):
            return False
        return self.min_input_tokens is None or not view.input_tokens_at_most(
            self.min_input_tokens - 1
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """Send a request that meets ``condition`` to ``model``."""

    condition: Condition
    model: str


def first_match(rules: tuple[Rule, ...], facts: RequestFacts) -> tuple[int, Rule] | None:
    """Return the first rule whose condition matches, with its position."""
    for position, rule in enumerate(rules):
        if rule.condition.matches(facts):
            return position, rule
    return None
