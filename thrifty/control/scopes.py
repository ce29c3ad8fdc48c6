"""Scopes: what a budget, rate limit or cutoff applies to.

A scope is written ``KIND:VALUE``: ``key:key_3f9a1c2b``, ``team:search``,
``project:P``, ``user:U``, ``feature:F``, ``tag:env=prod``, or ``all`` for
every request. A request belongs to ``all``, to its key, and to each of its
attribution values and tags, so several budgets can apply to it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.errors import ControlError
from thrifty.ledger.record import RequestRecord

SCOPE_KINDS = ("all", "key", "team", "project", "user", "feature", "tag")
MAX_SCOPE_VALUE = 256


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """One scope; ``value`` is empty for ``all`` and ``name=value`` for a tag."""

    kind: str
    value: str = ""

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.value}"


ALL = Scope("all")


def parse_scope(text: str) -> Scope:
    """Parse ``all`` or ``KIND:VALUE``; raise ControlError naming what is wrong."""
    stripped = text.strip()
    if stripped == "all":
        return ALL
    kind, sep, value = stripped.partition(":")
    value = value.strip()
    if not sep or kind not in SCOPE_KINDS or kind == "all" or not value:
        raise ControlError(
            f"invalid scope {text!r}; write all or KIND:VALUE with KIND one of "
            "key, team, project, user, feature, tag (e.g. team:search, tag:env=prod)"
        )
    if len(value) > MAX_SCOPE_VALUE:
        raise ControlError(
            f"scope value of {text[:40]!r}... is {len(value)} characters; "
            f"the limit is {MAX_SCOPE_VALUE}"
        )
    if kind == "tag" and "=" not in value:
        raise ControlError(f"invalid tag scope {text!r}; write tag:NAME=VALUE, e.g. tag:env=prod")
    return Scope(kind, value)


def request_scopes(
    key_id: str | None,
    *,
    team: str | None,
    project: str | None,
    user: str | None,
    feature: str | None,
    tags: dict[str, str],
) -> frozenset[Scope]:
    """Return every scope a request with this key and attribution belongs to."""
    scopes = {ALL}
    for kind, value in (
        ("key", key_id),
        ("team", team),
        ("project", project),
        ("user", user),
        ("feature", feature),
    ):
        if value:
            scopes.add(Scope(kind, value))
    scopes.update(Scope("tag", f"{name}={value}") for name, value in tags.items())
    return frozenset(scopes)


def record_in_scope(scope: Scope, record: RequestRecord) -> bool:
    """Return whether a ledger record belongs to ``scope``, as the ledger's spend queries match."""
    if scope.kind == "all":
        return True
    if scope.kind == "tag":
        name, _, value = scope.value.partition("=")
        return record.tags.get(name) == value
    values = {
        "key": record.key_id,
        "team": record.team,
        "project": record.project,
        "user": record.user,
        "feature": record.feature,
    }
    return values.get(scope.kind) == scope.value
