"""Keys, budgets, rate limits, cutoffs and the audit log in the ledger database.

Every change runs in one transaction that also appends an audit entry and
increments the epoch, so a replica that sees a new epoch reloads a state
that includes the change. The methods are synchronous; the gateway calls
them from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from thrifty.control import schema
from thrifty.control.model import Budget, Cutoff, RateLimit, VirtualKey
from thrifty.control.scopes import Scope, parse_scope
from thrifty.errors import ControlError
from thrifty.ledger.schema import request_tags, requests
from thrifty.ledger.sqlfuncs import ExactSum

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the request path reads, as of one epoch."""

    epoch: int
    keys_by_hash: Mapping[str, VirtualKey] = field(default_factory=dict)
    budgets: tuple[Budget, ...] = ()
    rate_limits: Mapping[Scope, RateLimit] = field(default_factory=dict)
    cutoffs: Mapping[Scope, Cutoff] = field(default_factory=dict)

    def key(self, key_id: str) -> VirtualKey | None:
        for key in self.keys_by_hash.values():
            if key.key_id == key_id:
                return key
        return None


class ControlStore:
    """The control tables of one database (the ledger's engine)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # Reads

    def epoch(self) -> int:
        statement = sa.select(schema.state.c.value).where(schema.state.c.name == schema.EPOCH)
        with self._connect("read the control epoch from") as connection:
            value = connection.execute(statement).scalar_one_or_none()
        return int(value or 0)

    def snapshot(self) -> Snapshot:
        """Load every key, budget, rate limit and cutoff in one transaction."""
        with self._connect("load keys and budgets from") as connection, connection.begin():
            epoch = connection.execute(
                sa.select(schema.state.c.value).where(schema.state.c.name == schema.EPOCH)
            ).scalar_one_or_none()
            keys = [_key(row._mapping) for row in connection.execute(sa.select(schema.keys))]
            budgets = [
                _budget(row._mapping) for row in connection.execute(sa.select(schema.budgets))
            ]
            limits = [
                _rate_limit(row._mapping)
                for row in connection.execute(sa.select(schema.rate_limits))
            ]
            cutoffs = [
                _cutoff(row._mapping) for row in connection.execute(sa.select(schema.cutoffs))
            ]
        return Snapshot(
            epoch=int(epoch or 0),
            keys_by_hash={key.key_hash: key for key in keys},
            budgets=tuple(sorted(budgets, key=lambda budget: budget.budget_id)),
            rate_limits={limit.scope: limit for limit in limits},
            cutoffs={cutoff.scope: cutoff for cutoff in cutoffs},
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        statement = sa.select(schema.audit).order_by(schema.audit.c.audit_id.desc()).limit(limit)
        with self._connect("read the audit log from") as connection:
            rows = connection.execute(statement).all()
        return [
            {
                "audit_id": row.audit_id,
                "at": row.at.isoformat().replace("+00:00", "Z"),
                "action": row.action,
                "target": row.target,
                "details": orjson.loads(row.details),
            }
            for row in rows
        ]

    # Changes

    def create_key(self, key: VirtualKey, actor: str) -> None:
        with self._change("key.created", key.key_id, actor, key.public()) as connection:
            connection.execute(sa.insert(schema.keys).values(_key_row(key)))

    def update_key(self, key: VirtualKey, actor: str, changes: Mapping[str, Any]) -> None:
        with self._change("key.updated", key.key_id, actor, dict(changes)) as connection:
            row = _key_row(key)
            del row["key_id"], row["key_hash"], row["created_at"]
            connection.execute(
                sa.update(schema.keys).where(schema.keys.c.key_id == key.key_id).values(row)
            )

    def revoke_key(self, key_id: str, at: datetime, actor: str) -> None:
        with self._change("key.revoked", key_id, actor, {}) as connection:
            connection.execute(
                sa.update(schema.keys).where(schema.keys.c.key_id == key_id).values(revoked_at=at)
            )

    def create_budget(self, budget: Budget, actor: str) -> None:
        with self._change("budget.created", budget.budget_id, actor, budget.public()) as connection:
            connection.execute(sa.insert(schema.budgets).values(_budget_row(budget)))

    def update_budget(self, budget: Budget, actor: str) -> None:
        with self._change("budget.updated", budget.budget_id, actor, budget.public()) as connection:
            row = _budget_row(budget)
            connection.execute(
                sa.update(schema.budgets)
                .where(schema.budgets.c.budget_id == budget.budget_id)
                .values(row)
            )

    def delete_budget(self, budget_id: str, actor: str) -> None:
        with self._change("budget.deleted", budget_id, actor, {}) as connection:
            connection.execute(
                sa.delete(schema.budgets).where(schema.budgets.c.budget_id == budget_id)
            )

    def set_rate_limit(self, limit: RateLimit, actor: str) -> None:
        target = str(limit.scope)
        with self._change("rate_limit.set", target, actor, limit.public()) as connection:
            connection.execute(
                sa.delete(schema.rate_limits).where(schema.rate_limits.c.scope == target)
            )
            if limit.rpm is not None or limit.tpm is not None:
                connection.execute(
                    sa.insert(schema.rate_limits).values(
                        scope=target, rpm=limit.rpm, tpm=limit.tpm, created_at=limit.created_at
                    )
                )

    def cutoff_on(self, cutoff: Cutoff, actor: str) -> None:
        target = str(cutoff.scope)
        with self._change("cutoff.on", target, actor, {"reason": cutoff.reason}) as connection:
            connection.execute(sa.delete(schema.cutoffs).where(schema.cutoffs.c.scope == target))
            connection.execute(
                sa.insert(schema.cutoffs).values(
                    scope=target, reason=cutoff.reason, created_at=cutoff.created_at
                )
            )

    def cutoff_off(self, scope: Scope, actor: str, reason: str | None) -> bool:
        """Remove a cutoff; return whether one was on."""
        target = str(scope)
        with self._change("cutoff.off", target, actor, {"reason": reason}) as connection:
            result = connection.execute(
                sa.delete(schema.cutoffs).where(schema.cutoffs.c.scope == target)
            )
        return bool(result.rowcount)

    # Spend in the ledger, for rebuilding counters

    def spend(self, scope: Scope, start: datetime | None, end: datetime | None) -> Decimal:
        """Return the exact recorded cost of a scope's requests started in [start, end)."""
        statement = sa.select(ExactSum(requests.c.cost_usd)).select_from(requests)
        statement = _filtered(statement, scope, start, end)
        with self._connect(f"sum the spend of {scope} in") as connection:
            total = connection.execute(statement).scalar_one_or_none()
        return Decimal(0) if total is None else Decimal(total)

    def recorded_ids(self, request_ids: list[str]) -> set[str]:
        """Return which of ``request_ids`` the ledger contains."""
        found: set[str] = set()
        with self._connect("look up request ids in") as connection:
            for offset in range(0, len(request_ids), 500):
                chunk = request_ids[offset : offset + 500]
                statement = sa.select(requests.c.request_id).where(requests.c.request_id.in_(chunk))
                found.update(connection.execute(statement).scalars())
        return found

    def spend_rows(
        self, scope: Scope, start: datetime, end: datetime
    ) -> list[tuple[datetime, Decimal]]:
        """Return (started_at, cost_usd) of a scope's priced requests in [start, end)."""
        statement = sa.select(requests.c.started_at, requests.c.cost_usd).select_from(requests)
        statement = _filtered(statement, scope, start, end)
        with self._connect(f"read the spend of {scope} from") as connection:
            rows = connection.execute(statement).all()
        return [(row.started_at, row.cost_usd) for row in rows]

    @contextmanager
    def _change(
        self, action: str, target: str, actor: str, details: Mapping[str, Any]
    ) -> Iterator[sa.Connection]:
        """Run a change, its audit entry and the epoch increment in one transaction."""
        try:
            with self.engine.connect() as connection:
                connection.execution_options(sqlite_immediate=True)
                with connection.begin():
                    yield connection
                    connection.execute(
                        sa.insert(schema.audit).values(
                            at=datetime.now(UTC),
                            action=action,
                            target=target,
                            details=orjson.dumps({**details, "actor": actor}).decode(),
                        )
                    )
                    _bump_epoch(connection)
        except IntegrityError as exc:
            raise ControlError(
                f"{action} of {target!r} conflicts with a stored one: {_first_line(exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise ControlError(
                f"could not record {action} of {target!r} in the database: {_first_line(exc)}"
            ) from exc

    @contextmanager
    def _connect(self, action: str) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise ControlError(f"could not {action} the database: {_first_line(exc)}") from exc


def _bump_epoch(connection: sa.Connection) -> None:
    updated = connection.execute(
        sa.update(schema.state)
        .where(schema.state.c.name == schema.EPOCH)
        .values(value=schema.state.c.value + 1)
    )
    if not updated.rowcount:
        connection.execute(sa.insert(schema.state).values(name=schema.EPOCH, value=1))


def _filtered(
    statement: sa.Select[Any], scope: Scope, start: datetime | None, end: datetime | None
) -> sa.Select[Any]:
    statement = statement.where(requests.c.cost_usd.is_not(None))
    if start is not None:
        statement = statement.where(requests.c.started_at >= start)
    if end is not None:
        statement = statement.where(requests.c.started_at < end)
    if scope.kind == "tag":
        name, _, value = scope.value.partition("=")
        return statement.join(
            request_tags, request_tags.c.request_id == requests.c.request_id
        ).where(request_tags.c.key == name, request_tags.c.value == value)
    column = {
        "key": requests.c.key_id,
        "team": requests.c.team,
        "project": requests.c.project,
        "user": requests.c.user,
        "feature": requests.c.feature,
    }.get(scope.kind)
    return statement if column is None else statement.where(column == scope.value)


def _key_row(key: VirtualKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "key_hash": key.key_hash,
        "prefix": key.prefix,
        "name": key.name,
        "team": key.team,
        "project": key.project,
        "user": key.user,
        "feature": key.feature,
        "tags": orjson.dumps(key.tags).decode(),
        "allowed_models": orjson.dumps(list(key.allowed_models)).decode(),
        "allowed_providers": orjson.dumps(list(key.allowed_providers)).decode(),
        "allowed_tiers": orjson.dumps(list(key.allowed_tiers)).decode(),
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "created_at": key.created_at,
    }


def _key(row: Mapping[Any, Any]) -> VirtualKey:
    return VirtualKey(
        key_id=row["key_id"],
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        name=row["name"],
        team=row["team"],
        project=row["project"],
        user=row["user"],
        feature=row["feature"],
        tags=orjson.loads(row["tags"]),
        allowed_models=tuple(orjson.loads(row["allowed_models"])),
        allowed_providers=tuple(orjson.loads(row["allowed_providers"])),
        allowed_tiers=tuple(orjson.loads(row["allowed_tiers"])),
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _budget_row(budget: Budget) -> dict[str, Any]:
    thresholds = (
        None
        if budget.thresholds is None
        else orjson.dumps([format(value, "f") for value in budget.thresholds]).decode()
    )
    return {
        "budget_id": budget.budget_id,
        "scope": str(budget.scope),
        "limit_usd": budget.limit_usd,
        "period": budget.period,
        "thresholds": thresholds,
        "created_at": budget.created_at,
    }


def _budget(row: Mapping[Any, Any]) -> Budget:
    thresholds: Sequence[str] | None = (
        None if row["thresholds"] is None else orjson.loads(row["thresholds"])
    )
    return Budget(
        budget_id=row["budget_id"],
        scope=parse_scope(row["scope"]),
        limit_usd=row["limit_usd"],
        period=row["period"],
        created_at=row["created_at"],
        thresholds=None if thresholds is None else tuple(Decimal(value) for value in thresholds),
    )


def _rate_limit(row: Mapping[Any, Any]) -> RateLimit:
    return RateLimit(
        scope=parse_scope(row["scope"]),
        rpm=row["rpm"],
        tpm=row["tpm"],
        created_at=row["created_at"],
    )


def _cutoff(row: Mapping[Any, Any]) -> Cutoff:
    return Cutoff(
        scope=parse_scope(row["scope"]), created_at=row["created_at"], reason=row["reason"]
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
