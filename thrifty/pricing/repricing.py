"""The cost engine over the ledger: which models are unpriced, and repricing stored requests.

``reprice`` prices each stored request again with the engine it is given
(the catalog plus the current ``prices:`` overrides) and, where the figure
changes, updates the row and keeps the figure it replaced in
``request_cost_history``. The hourly and daily rollups of the changed days
are rebuilt in the same transaction, so reports agree with the rows.

A row stores the token counts of most classes, the tier served and the
request time, but not the audio and image token counts, the web search
count or Anthropic's speed mode. The gateway can record them under
``details["pricing"]`` (see ``pricing_details``); a row whose stored cost
shows audio, image or web search charges without those counts is skipped
rather than repriced without them.

NOTE: a fast-mode request recorded without ``details["pricing"]`` is
repriced at standard speed, because nothing else in the row says it ran
in fast mode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from thrifty.errors import LedgerError, PricingError, UsageError
from thrifty.ledger import Ledger
from thrifty.ledger.histogram import rebuild_histograms
from thrifty.ledger.rollup import bucket_start, rebuild_rollups
from thrifty.ledger.schema import ExactDecimal, request_cost_history, requests
from thrifty.ledger.serialize import to_nanousd
from thrifty.ledger.spender_rollups import rebuild_spender_rollups
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.model import Cost
from thrifty.usage.model import Usage

logger = logging.getLogger(__name__)

# The key of RequestRecord.details under which the pricing inputs a row has
# no column for are stored.
PRICING_DETAILS_KEY = "pricing"

# Classes whose counts a row stores only in details["pricing"].
_DETAIL_COUNTS = {
    "input_audio": "input_audio_tokens",
    "output_audio": "output_audio_tokens",
    "web_search": "web_search_requests",
    "input_image": "input_image_tokens",
    "output_image": "output_image_tokens",
}

_BATCH_SIZE = 500
_r = requests.c


def pricing_details(
    price_provider: str, model: str, usage: Usage, speed: str | None
) -> dict[str, Any]:
    """Return the pricing inputs a ledger row has no column for, for ``details["pricing"]``.

    ``price_provider`` and ``model`` are what the request was priced as (a
    configured provider's ``pricing_provider``, the model after routing),
    and ``speed`` is Anthropic's speed mode. Counts that are zero are left out.
    """
    values: dict[str, Any] = {"provider": price_provider, "model": model}
    if speed is not None:
        values["speed"] = speed
    for name in _DETAIL_COUNTS.values():
        count = getattr(usage, name)
        if count:
            values[name] = count
    return values


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A model with unpriced requests in the ledger, with their counts and time span."""

    provider: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    first_seen: datetime
    last_seen: datetime


def unpriced_models(
    ledger: Ledger, *, since: datetime | None = None, until: datetime | None = None
) -> list[UnpricedModel]:
    """List the models of unpriced requests started in ``[since, until)``, most requests first.

    A request's model is the one the provider reported serving, or the one
    requested when the response named none.
    """
    model = sa.func.coalesce(_r.model_served, _r.model_requested).label("model")
    statement = (
        sa.select(
            _r.provider,
            model,
            sa.func.count().label("requests"),
            sa.func.sum(_r.input_tokens).label("input_tokens"),
            sa.func.sum(_r.output_tokens).label("output_tokens"),
            sa.func.min(_r.started_at).label("first_seen"),
            sa.func.max(_r.started_at).label("last_seen"),
        )
        .where(_r.unpriced.is_(True), *_time_range(since, until))
        .group_by(_r.provider, model)
        .order_by(sa.desc("requests"), _r.provider, model)
    )
    rows = _read(ledger, statement, "list the unpriced models of")
    return [
        UnpricedModel(
            provider=row.provider,
            model=row.model,
            requests=int(row.requests),
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            first_seen=_utc(row.first_seen),
            last_seen=_utc(row.last_seen),
        )
        for row in rows
    ]


@dataclass(slots=True)
class RepriceSummary:
    """The counts and costs of one ``reprice`` run.

    ``changed`` rows got a new figure, ``newly_priced`` of them were
    unpriced before. ``skipped`` rows could not be priced again faithfully
    (see ``skip_reasons``) and keep their figure. ``cost_before`` and
    ``cost_after`` sum the priced figures of the changed rows before and
    after.
    """

    examined: int = 0
    changed: int = 0
    newly_priced: int = 0
    unchanged: int = 0
    still_unpriced: int = 0
    skipped: int = 0
    cost_before: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class _Change:
    row: Any
    cost: Cost


def reprice(
    ledger: Ledger,
    engine: CostEngine,
    *,
    since: datetime,
    until: datetime | None = None,
    pricing_providers: Mapping[str, str] | None = None,
    dry_run: bool = False,
    batch_size: int = _BATCH_SIZE,
) -> RepriceSummary:
    """Price the requests started in ``[since, until)`` again and store the figures that changed.

    ``pricing_providers`` maps a ledger provider name to the provider id it
    is priced as (a configured provider's ``pricing_provider``). A figure is
    never replaced by "unpriced": a row the engine cannot price again keeps
    its cost. With ``dry_run`` nothing is written.
    """
    summary = RepriceSummary()
    providers = pricing_providers or {}
    repriced_at = datetime.now(UTC)
    for batch in _batches(ledger, since, until, batch_size):
        changes = [
            change
            for row in batch
            if (change := _reprice_row(engine, row, providers, summary)) is not None
        ]
        if changes and not dry_run:
            _store(ledger, changes, repriced_at)
    logger.info(
        "repriced %d of %d requests since %s (%d skipped)%s",
        summary.changed,
        summary.examined,
        since.isoformat(),
        summary.skipped,
        "; dry run, nothing written" if dry_run else "",
    )
    return summary


def _reprice_row(
    engine: CostEngine, row: Any, providers: Mapping[str, str], summary: RepriceSummary
) -> _Change | None:
    summary.examined += 1
    details = _pricing_inputs(row)
    breakdown = _breakdown(row.cost_breakdown)
    lost = [
        name for name in _DETAIL_COUNTS if name in breakdown and details.get("provider") is None
    ]
    if lost:
        summary.skip(f"{lost[0]} counts are not stored")
        return None
    try:
        cost = engine.price(
            str(details.get("provider") or providers.get(row.provider, row.provider)),
            str(details.get("model") or _priced_model(row)),
            _row_usage(row, details),
            service_tier=row.service_tier_served,
            at=_utc(row.started_at),
            speed=details.get("speed"),
        )
    except (PricingError, UsageError) as exc:
        summary.skip(type(exc).__name__)
        logger.debug("request %s not repriced: %s", row.request_id, exc)
        return None

    if cost.cost_usd is None:
        if row.unpriced:
            summary.still_unpriced += 1
        else:
            summary.skip("no price any more")
        return None
    same = (
        not row.unpriced
        and row.cost_usd == cost.cost_usd
        and breakdown == cost.breakdown
        and row.model_priced == cost.model
    )
    if same:
        summary.unchanged += 1
        return None

    summary.changed += 1
    if row.unpriced:
        summary.newly_priced += 1
    else:
        summary.cost_before += row.cost_usd
    summary.cost_after += cost.cost_usd
    return _Change(row, cost)


def _store(ledger: Ledger, changes: Sequence[_Change], repriced_at: datetime) -> None:
    """Update the changed rows, keep their old figures, and rebuild the rollups of their days."""
    update = (
        sa.update(requests)
        .where(_r.request_id == sa.bindparam("changed_id"))
        .values(
            cost_usd=sa.bindparam("new_cost_usd", type_=ExactDecimal()),
            cost_nanousd=sa.bindparam("new_cost_nanousd"),
            cost_breakdown=sa.bindparam("new_breakdown"),
            model_priced=sa.bindparam("new_model_priced"),
            unpriced=sa.false(),
        )
    )
    updates = [
        {
            "changed_id": change.row.request_id,
            "new_cost_usd": change.cost.cost_usd,
            "new_cost_nanousd": to_nanousd(change.cost.cost_usd or Decimal(0)),
            "new_breakdown": _breakdown_json(change.cost.breakdown),
            "new_model_priced": change.cost.model,
        }
        for change in changes
    ]
    history = [
        {
            "request_id": change.row.request_id,
            "repriced_at": repriced_at,
            "model_priced": change.row.model_priced,
            "cost_usd": change.row.cost_usd,
            "cost_nanousd": change.row.cost_nanousd,
            "unpriced": change.row.unpriced,
            "cost_breakdown": change.row.cost_breakdown,
            "new_cost_usd": change.cost.cost_usd,
            "price_source": change.cost.price_source,
        }
        for change in changes
    ]
    started = [_utc(change.row.started_at) for change in changes]
    first_day = bucket_start(min(started), "day")
    end_day = bucket_start(max(started), "day") + timedelta(days=1)

    try:
        with ledger.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Writers add to the rollups as they insert; hold them off
                    # until the rebuilt days are committed.
                    connection.execute(
                        sa.text(
                            "LOCK TABLE request_rollups, cost_histograms, user_rollups, "
                            "session_rollups IN SHARE ROW EXCLUSIVE MODE"
                        )
                    )
                connection.execute(update, updates)
                connection.execute(sa.insert(request_cost_history), history)
                rebuild_rollups(connection, since=first_day, until=end_day)
                # New costs move requests between cost bins too.
                rebuild_histograms(connection, since=first_day, until=end_day)
                rebuild_spender_rollups(connection, since=first_day, until=end_day)
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"could not store {len(changes)} repriced requests in the ledger at "
            f"{ledger.url}: {_first_line(exc)}"
        ) from exc


def _batches(
    ledger: Ledger, since: datetime, until: datetime | None, size: int
) -> Iterator[list[Any]]:
    """Yield the rows to reprice in time order, ``size`` at a time, by keyset pagination."""
    columns = [
        _r.request_id,
        _r.started_at,
        _r.provider,
        _r.model_requested,
        _r.model_served,
        _r.model_priced,
        _r.service_tier_served,
        _r.input_tokens,
        _r.output_tokens,
        _r.cache_read_tokens,
        _r.cache_write_tokens,
        _r.cache_write_1h_tokens,
        _r.reasoning_tokens,
        _r.usage_estimated,
        _r.cost_usd,
        _r.cost_nanousd,
        _r.unpriced,
        _r.cost_breakdown,
        _r.details,
    ]
    after: tuple[datetime, str] | None = None
    while True:
        conditions = _time_range(since, until)
        if after is not None:
            started_at, request_id = after
            conditions.append(
                sa.or_(
                    _r.started_at > started_at,
                    sa.and_(_r.started_at == started_at, _r.request_id > request_id),
                )
            )
        statement = (
            sa.select(*columns)
            .where(*conditions)
            .order_by(_r.started_at, _r.request_id)
            .limit(size)
        )
        batch = _read(ledger, statement, "read the requests to reprice from")
        if not batch:
            return
        yield batch
        last = batch[-1]
        after = (_utc(last.started_at), last.request_id)


def _time_range(since: datetime | None, until: datetime | None) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None:
        conditions.append(_r.started_at >= since)
    if until is not None:
        conditions.append(_r.started_at < until)
    return conditions


def _read(ledger: Ledger, statement: sa.Select[Any], action: str) -> list[Any]:
    try:
        with ledger.engine.connect() as connection:
            return list(connection.execute(statement))
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"could not {action} the ledger at {ledger.url}: {_first_line(exc)}"
        ) from exc


def _pricing_inputs(row: Any) -> dict[str, Any]:
    try:
        details = orjson.loads(row.details or "{}")
    except orjson.JSONDecodeError:
        return {}
    pricing = details.get(PRICING_DETAILS_KEY) if isinstance(details, dict) else None
    return pricing if isinstance(pricing, dict) else {}


def _priced_model(row: Any) -> str:
    """Return the model the gateway priced: the one served, else the one requested.

    A requested ``provider/model`` reached the provider as ``model``.
    """
    if row.model_served:
        return str(row.model_served)
    prefix, sep, rest = str(row.model_requested).partition("/")
    return rest if sep and rest and prefix == row.provider else str(row.model_requested)


def _row_usage(row: Any, details: Mapping[str, Any]) -> Usage:
    counts = {name: details.get(name, 0) for name in _DETAIL_COUNTS.values()}
    return Usage(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        cache_write_1h_tokens=row.cache_write_1h_tokens,
        reasoning_tokens=row.reasoning_tokens,
        estimated=bool(row.usage_estimated),
        **counts,
    )


def _breakdown(text: str | None) -> dict[str, Decimal]:
    values = orjson.loads(text or "{}")
    return {name: Decimal(amount) for name, amount in values.items()}


def _breakdown_json(breakdown: Mapping[str, Decimal]) -> str:
    return orjson.dumps({name: format(amount, "f") for name, amount in breakdown.items()}).decode()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
