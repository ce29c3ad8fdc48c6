"""The control plane: authentication, admission and settlement of metered requests.

It keeps a snapshot of keys, budgets, rate limits and cutoffs from the
database and reloads it when their epoch changes: at once after a change
made through this replica, on the next request after a change made through
another replica that shares Redis (the Redis epoch is read on each
request), and within ``refresh_interval_s`` otherwise (the database epoch is
polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from redis.exceptions import RedisError

from thrifty.control import alerts
from thrifty.control.admission import (
    REMAINING_HEADER,
    AdmissionRequest,
    Attributable,
    Denial,
    Principal,
    Ticket,
)
from thrifty.control.alerts import Alert, AlertDispatcher
from thrifty.control.config import ControlConfig
from thrifty.control.counters import (
    CALENDAR_GRACE_S,
    Admitted,
    BudgetCharge,
    BudgetLevel,
    Counters,
    MemoryCounters,
    Missing,
    RateCharge,
    Refused,
    from_nano,
    rolling_bucket,
    to_nano,
)
from thrifty.control.estimate import Estimate, estimate_request
from thrifty.control.model import Budget, RateLimit
from thrifty.control.periods import Window, rolling_seconds, window_at
from thrifty.control.scopes import Scope, record_in_scope, request_scopes
from thrifty.control.secrets import hash_secret, same_secret
from thrifty.control.store import ControlStore, Snapshot
from thrifty.control.throttle import Throttle, plan_throttle
from thrifty.errors import ControlError
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.tiers import SERVICE_TIERS

logger = logging.getLogger(__name__)

_COUNTER_ERRORS = (RedisError, OSError, TimeoutError)
_MAX_REBUILDS = 4
UNPRICED_ALERT_TTL_S = 86400


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget's current window, its spend and reservations in nano-dollars, its reset."""

    window: str
    spent: int
    reserved: int
    resets_at: str | None


def utc_now() -> datetime:
    return datetime.now(UTC)


class ControlPlane:
    """Keys, budgets, limits and cutoffs for one gateway process."""

    def __init__(
        self,
        config: ControlConfig,
        store: ControlStore,
        engine: CostEngine,
        *,
        counters: Counters | None = None,
        clock: Callable[[], datetime] = utc_now,
        dispatcher: AlertDispatcher | None = None,
        unwritten: Callable[[], Iterable[RequestRecord]] | None = None,
    ) -> None:
        self.config = config
        # This process's records that the writer has not yet stored in the
        # ledger; a counter rebuilt from the ledger adds their spend too.
        self.unwritten = unwritten or (lambda: ())
        self.store = store
        self.engine = engine
        self.counters = counters or _default_counters(config)
        self.clock = clock
        self.dispatcher = dispatcher or AlertDispatcher(config.alerts)
        self.master_key = config.master_key()
        self.snapshot = Snapshot(epoch=-1)
        self._shared_epoch: int | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._outage = False
        self._reload_lock = asyncio.Lock()

    @property
    def keys_required(self) -> bool:
        return self.master_key is not None

    # Lifecycle

    async def start(self) -> None:
        with contextlib.suppress(*_COUNTER_ERRORS):
            self._shared_epoch = await self.counters.epoch()
        self.snapshot = await asyncio.to_thread(self.store.snapshot)
        await self.dispatcher.start()
        self._refresher = asyncio.create_task(self._poll_epoch(), name="thrifty-control-refresh")
        if self.keys_required:
            logger.info(
                "virtual keys required on /v1 routes; %d keys, %d budgets, %d cutoffs loaded",
                len(self.snapshot.keys_by_hash),
                len(self.snapshot.budgets),
                len(self.snapshot.cutoffs),
            )
        else:
            logger.warning(
                "no master key is set ($%s): the gateway runs open, admitting /v1 requests "
                "without a virtual key; set it before exposing the gateway beyond loopback",
                self.config.master_key_env,
            )

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.dispatcher.stop()
        await self.counters.close()

    async def reload(self) -> None:
        """Load the snapshot from the database now."""
        async with self._reload_lock:
            self.snapshot = await asyncio.to_thread(self.store.snapshot)

    async def changed(self) -> None:
        """Reload after a change made through this replica, and tell the others."""
        await self.reload()
        try:
            await self.counters.bump_epoch()
        except _COUNTER_ERRORS as exc:
            logger.warning(
                "could not announce a control change through the counters: %s; other "
                "replicas see it within %.1f s",
                exc,
                self.config.refresh_interval_s,
            )

    async def refresh_if_changed(self) -> None:
        """Reload when another replica announced a change through the shared counters.

        Requests that arrive during the reload wait for it, so none is
        checked against the old snapshot once the change is seen.
        """
        try:
            shared = await self.counters.epoch()
        except _COUNTER_ERRORS:
            return
        if shared is None or shared == self._shared_epoch:
            return
        async with self._reload_lock:
            if shared == self._shared_epoch:
                return
            self.snapshot = await asyncio.to_thread(self.store.snapshot)
            self._shared_epoch = shared

    # Authentication

    def authenticate(self, headers: Mapping[str, str]) -> Principal | Denial:
        """Identify the caller from ``Authorization: Bearer`` or ``x-api-key``."""
        if self.master_key is None:
            return Principal("open")
        secret = presented_secret(headers)
        if secret is None:
            return Denial(
                401,
                "missing API key; send a Thrifty virtual key as 'Authorization: Bearer KEY' "
                "or 'x-api-key: KEY'",
                "authentication_error",
            )
        if same_secret(secret, self.master_key):
            return Principal("master")
        return self._virtual_key(secret)

    def _virtual_key(self, secret: str) -> Principal | Denial:
        key = self.snapshot.keys_by_hash.get(hash_secret(secret))
        if key is None:
            return Denial(
                401,
                # No part of the presented key is echoed: it may be another secret.
                "invalid virtual key; check it, or create one with `thrifty keys create`",
                "authentication_error",
            )
        if key.revoked_at is not None:
            return Denial(
                401,
                f"virtual key {key.key_id} was revoked at {_iso(key.revoked_at)}; "
                "ask for a new key",
                "authentication_error",
            )
        now = self.clock()
        if key.expires_at is not None and key.expires_at <= now:
            return Denial(
                401,
                f"virtual key {key.key_id} expired at {_iso(key.expires_at)}; "
                "ask for a new key or extend it with `thrifty keys update`",
                "authentication_error",
            )
        return Principal("key", key)

    def check_access(
        self, principal: Principal, model: str, provider: str, tier: str | None
    ) -> Denial | None:
        """Refuse a model, provider or service tier the key does not allow."""
        key = principal.key
        if key is None:
            return None
        if not key.allows_model(model):
            return Denial(
                403,
                f"virtual key {key.key_id} may not call model '{model}'; it allows "
                f"{', '.join(key.allowed_models)}",
                "permission_error",
            )
        if not key.allows_provider(provider):
            return Denial(
                403,
                f"virtual key {key.key_id} may not call provider '{provider}'; it allows "
                f"{', '.join(key.allowed_providers)}",
                "permission_error",
            )
        priced_tier = normalized_tier(tier)
        if not key.allows_tier(priced_tier):
            return Denial(
                403,
                f"virtual key {key.key_id} may not use service tier '{priced_tier}'; it allows "
                f"{', '.join(key.allowed_tiers)}",
                "permission_error",
            )
        return None

    def attribute(self, principal: Principal, attribution: Attributable) -> frozenset[Scope]:
        """Fill attribution gaps from the key's defaults; return the request's scopes.

        Key defaults have the lowest precedence: a header or body value wins.
        """
        key = principal.key
        if key is not None:
            attribution.team = attribution.team or key.team
            attribution.project = attribution.project or key.project
            attribution.user = attribution.user or key.user
            attribution.feature = attribution.feature or key.feature
            attribution.tags = {**key.tags, **attribution.tags}
        return request_scopes(
            principal.key_id,
            team=attribution.team,
            project=attribution.project,
            user=attribution.user,
            feature=attribution.feature,
            tags=attribution.tags,
        )

    def cutoff_for(self, scopes: frozenset[Scope]) -> Denial | None:
        for scope in sorted(scopes):
            cutoff = self.snapshot.cutoffs.get(scope)
            if cutoff is None:
                continue
            reason = f" ({cutoff.reason})" if cutoff.reason else ""
            return Denial(
                403,
                f"requests in scope {scope} are cut off since {_iso(cutoff.created_at)}{reason}; "
                f"an admin restores them with `thrifty cutoff off --scope {scope}`",
                "permission_error",
            )
        return None

    # Admission

    async def admit(
        self, request: AdmissionRequest, principal: Principal, scopes: frozenset[Scope]
    ) -> Ticket | Denial:
        """Apply throttling, estimate the cost and reserve it against every applicable limit."""
        snapshot = self.snapshot
        bypass = principal.kind == "master" and self.config.master_key_bypasses_budgets
        budgets = [] if bypass else [b for b in snapshot.budgets if b.scope in scopes]
        limits = [snapshot.rate_limits[s] for s in sorted(scopes) if s in snapshot.rate_limits]
        now = self.clock()

        throttle = Throttle()
        if self.config.throttling and budgets:
            throttle = await self._throttle(request, budgets, now)
        model = throttle.model or request.model
        tier = throttle.tier or request.tier

        estimate = None
        if budgets or any(limit.tpm for limit in limits):
            estimate = estimate_request(
                self.engine,
                endpoint=request.endpoint,
                body=request.body,
                price_provider=request.price_provider,
                kind=request.kind,
                model=model,
                tier=tier,
                mode=self.config.budget_mode,
                default_output_tokens=self.config.default_max_output_tokens,
                at=now,
            )
        denial = self._check_estimate(request, model, estimate, budgets)
        if denial is not None:
            return denial

        charges = [self._budget_charge(budget, estimate, now) for budget in budgets]
        rates = _rate_charges(limits, estimate, throttle.factor)
        ticket = Ticket(
            request.request_id,
            principal,
            estimate,
            charges,
            rates,
            model=throttle.model,
            tier=throttle.tier,
            throttled=throttle.actions,
        )
        if not charges and not rates:
            return ticket
        return await self._reserve(ticket, now)

    async def _throttle(
        self, request: AdmissionRequest, budgets: list[Budget], now: datetime
    ) -> Throttle:
        charges = [self._budget_charge(budget, None, now) for budget in budgets]
        try:
            levels = await self.counters.levels(charges, now.timestamp())
        except _COUNTER_ERRORS as exc:
            self._note_outage(exc)
            return Throttle()
        fraction = Decimal(0)
        for charge, level in zip(charges, levels, strict=True):
            if level is not None and charge.limit > 0:
                fraction = max(fraction, Decimal(level.spent + level.reserved) / charge.limit)
        return plan_throttle(self.config.throttling, fraction, request)

    def _check_estimate(
        self,
        request: AdmissionRequest,
        model: str,
        estimate: Estimate | None,
        budgets: list[Budget],
    ) -> Denial | None:
        if estimate is None or not budgets:
            return None
        if estimate.unbounded_reason is not None:
            return Denial(
                403,
                f"budget {budgets[0].budget_id} is fail-closed and this request's cost has no "
                f"upper bound: {estimate.unbounded_reason}",
                "permission_error",
            )
        if estimate.cost_usd is not None:
            return None
        self._spawn(self._alert_unpriced(request.provider, model, estimate.unpriced_reason))
        if self.config.unpriced_models == "reject":
            return Denial(
                403,
                f"model '{model}' of provider '{request.provider}' has no price, so its cost "
                f"cannot be reserved against budget {budgets[0].budget_id}; add it under "
                "`prices:` in thrifty.yaml",
                "permission_error",
            )
        return None

    def _budget_charge(
        self, budget: Budget, estimate: Estimate | None, now: datetime
    ) -> BudgetCharge:
        window = window_at(budget.period, now)
        amount = 0
        if estimate is not None and estimate.cost_usd is not None:
            amount = to_nano(estimate.cost_usd)
        bucket = oldest = 0
        if window.rolling:
            bucket, oldest = rolling_bucket(window, now.timestamp())
        return BudgetCharge(
            budget=budget,
            window=window,
            limit=to_nano(budget.limit_usd),
            amount=amount,
            bucket=bucket,
            oldest=oldest,
            ttl_s=_ttl_s(budget, window, now),
        )

    async def _reserve(self, ticket: Ticket, now: datetime) -> Ticket | Denial:
        moment = now.timestamp()
        deadline = moment + self.config.reservation_ttl_s
        try:
            for _ in range(_MAX_REBUILDS):
                outcome = await self.counters.reserve(
                    ticket.request_id, ticket.budgets, ticket.rates, moment, deadline
                )
                if not isinstance(outcome, Missing):
                    break
                await self._rebuild(ticket.budgets[outcome.index], now)
            else:
                raise ControlError("budget counters could not be rebuilt from the ledger")
        except (*_COUNTER_ERRORS, ControlError) as exc:
            return self._counters_failed(ticket, exc)
        self._counters_ok()

        if isinstance(outcome, Refused):
            return self._refusal(ticket, outcome, now)
        assert isinstance(outcome, Admitted)
        ticket.remaining_usd = _remaining(ticket.budgets, outcome.levels)
        return ticket

    async def _rebuild(self, charge: BudgetCharge, now: datetime) -> None:
        """Create a missing counter from the ledger's spend: never start it at zero.

        The records this process has not yet written count too, and are
        marked counted so that their settlements, if still to come, add nothing.
        """
        buckets, counted = await asyncio.to_thread(self._spend_buckets, charge, now)
        logger.info(
            "rebuilt the counter of budget %s (%s) from the ledger: %s USD",
            charge.budget.budget_id,
            charge.window.key,
            from_nano(sum(buckets.values())),
        )
        await self.counters.load(charge, buckets, counted)

    def _ledger_buckets(self, charge: BudgetCharge, now: datetime) -> dict[int, int]:
        return self._spend_buckets(charge, now)[0]

    def _spend_buckets(
        self, charge: BudgetCharge, now: datetime
    ) -> tuple[dict[int, int], list[str]]:
        """Return a budget window's spend, the ledger's plus unwritten records', and their ids.

        The unwritten records are read and checked against the ledger before
        the ledger is summed, so a record written in between counts twice
        (briefly over) rather than not at all.
        """
        window = charge.window
        scope = charge.budget.scope
        end = window.end if not window.rolling else now + timedelta(seconds=1)
        unwritten = self._unwritten_records(scope, window.start, end)
        stored = self.store.recorded_ids(list(unwritten)) if unwritten else set()
        extra = [
            (record.started_at, record.cost_usd)
            for request_id, record in unwritten.items()
            if request_id not in stored and record.cost_usd is not None
        ]
        if not window.rolling:
            total = self.store.spend(scope, window.start, window.end)
            return {0: to_nano(total + sum(cost for _, cost in extra))}, list(unwritten)
        assert window.start is not None
        assert end is not None
        buckets: dict[int, Decimal] = {}
        for started_at, cost in [*extra, *self.store.spend_rows(scope, window.start, end)]:
            bucket = int(started_at.timestamp()) // window.bucket_s
            buckets[bucket] = buckets.get(bucket, Decimal(0)) + cost
        spend = {bucket: to_nano(amount) for bucket, amount in buckets.items()}
        return spend, list(unwritten)

    def _unwritten_records(
        self, scope: Scope, start: datetime | None, end: datetime | None
    ) -> dict[str, RequestRecord]:
        return {
            record.request_id: record
            for record in self.unwritten()
            if record.cost_usd is not None
            and record_in_scope(scope, record)
            and (start is None or record.started_at >= start)
            and (end is None or record.started_at < end)
        }

    def _counters_failed(self, ticket: Ticket, exc: BaseException) -> Ticket | Denial:
        self._note_outage(exc)
        if self._fails_closed():
            return Denial(
                503,
                "the budget counters are unreachable and the gateway is configured to fail "
                "closed; retry shortly",
                "server_error",
            )
        ticket.counted = False
        return ticket

    def _fails_closed(self) -> bool:
        if self.config.redis is not None:
            return self.config.redis.on_failure == "closed"
        return self.config.budget_mode == "fail_closed"

    def _refusal(self, ticket: Ticket, outcome: Refused, now: datetime) -> Denial:
        if outcome.kind == "rate":
            rate = ticket.rates[outcome.index]
            unit = "requests" if rate.kind == "rpm" else "tokens"
            needed = "" if rate.kind == "rpm" else f" and this request reserves {rate.amount}"
            return Denial(
                429,
                f"rate limit of {rate.limit} {unit} per minute for scope {rate.scope} reached: "
                f"{outcome.used} {unit} used in the last minute{needed}; retry later",
                "rate_limit_error",
            )
        charge = ticket.budgets[outcome.index]
        budget = charge.budget
        self._spawn(self._alert_exhausted(charge, outcome.used))
        resets = "never (lifetime budget)"
        if charge.window.end is not None and not charge.window.rolling:
            resets = f"at {_iso(charge.window.end)}"
        elif charge.window.rolling:
            resets = f"as spend leaves the {budget.period.removeprefix('rolling:')} window"
        return Denial(
            429,
            f"budget {budget.budget_id} ({budget.scope}, {budget.period}) is exhausted: limit "
            f"${budget.limit_usd}, spent ${from_nano(outcome.used)}, reserved by requests in "
            f"flight ${from_nano(outcome.reserved)}, this request needs up to "
            f"${from_nano(charge.amount)}; it resets {resets}",
            "budget_exceeded",
            headers={
                REMAINING_HEADER: _usd(max(charge.limit - outcome.used - outcome.reserved, 0))
            },
        )

    async def budget_status(self, budget: Budget) -> BudgetStatus | None:
        """Return a budget's current window, spend and reservations, or None if unreadable."""
        now = self.clock()
        charge = self._budget_charge(budget, None, now)
        try:
            levels = await self.counters.levels([charge], now.timestamp())
            if levels[0] is None:
                await self._rebuild(charge, now)
                levels = await self.counters.levels([charge], now.timestamp())
        except (*_COUNTER_ERRORS, ControlError) as exc:
            logger.warning("could not read budget %s: %s", budget.budget_id, exc)
            return None
        level = levels[0]
        if level is None:
            return None
        window = charge.window
        resets = None if window.end is None or window.rolling else _iso(window.end)
        return BudgetStatus(window.key, level.spent, level.reserved, resets)

    # Settlement

    def settle_later(self, ticket: Ticket, cost_usd: Decimal | None, tokens: int) -> None:
        """Settle a ticket in the background (``finish`` cannot await)."""
        self._spawn(self.settle(ticket, cost_usd, tokens))

    async def settle(self, ticket: Ticket, cost_usd: Decimal | None, tokens: int) -> None:
        """Replace a ticket's reservations with the request's real cost and tokens.

        A ticket admitted while the counters were unreachable has no
        reservation, but its cost is still added to each budget counter that
        exists by now. A counter that is missing gets it when it is rebuilt.
        """
        if ticket.settled:
            return
        ticket.settled = True
        if not ticket.budgets and not ticket.rates:
            return
        actual = 0 if cost_usd is None else to_nano(cost_usd)
        budgets = [(charge, actual) for charge in ticket.budgets]
        # An uncounted ticket reserved no rate slot, so there is none to settle.
        rates = [
            (rate, 1 if rate.kind == "rpm" else tokens) for rate in ticket.rates if ticket.counted
        ]
        try:
            levels = await self.counters.settle(
                ticket.request_id, budgets, rates, self.clock().timestamp()
            )
        except _COUNTER_ERRORS as exc:
            self._note_outage(exc)
            return
        self._counters_ok()
        for charge, level in zip(ticket.budgets, levels, strict=True):
            if level is not None:
                await self._check_thresholds(charge, level)

    # Alerts

    def raise_alert(self, alert: Alert) -> None:
        self.dispatcher.raise_alert(alert)

    async def _check_thresholds(self, charge: BudgetCharge, level: BudgetLevel) -> None:
        budget = charge.budget
        if charge.limit <= 0:
            return
        fraction = Decimal(level.spent) / charge.limit
        thresholds = budget.thresholds or self.config.thresholds
        for threshold in thresholds:
            if fraction < threshold:
                break
            name = f"{charge.counter_id}:{threshold}"
            if not await self.counters.first_time(name, charge.ttl_s or 10 * 365 * 86400):
                continue
            event = alerts.BUDGET_EXHAUSTED if threshold >= 1 else alerts.THRESHOLD_CROSSED
            self.raise_alert(
                Alert(
                    event,
                    f"budget {budget.budget_id} ({budget.scope}, {budget.period}) passed "
                    f"{threshold * 100:.0f}% of ${budget.limit_usd}: "
                    f"${from_nano(level.spent)} spent",
                    _budget_details(charge, level, threshold=threshold),
                )
            )
        await self._check_projection(charge, level)

    async def _check_projection(self, charge: BudgetCharge, level: BudgetLevel) -> None:
        window = charge.window
        if (
            window.rolling
            or window.start is None
            or window.end is None
            or level.spent >= charge.limit
        ):
            return
        now = self.clock()
        length = (window.end - window.start).total_seconds()
        elapsed = Decimal(str((now - window.start).total_seconds() / length))
        if elapsed < self.config.projection_min_elapsed or elapsed <= 0:
            return
        projected = Decimal(level.spent) / elapsed
        if projected <= charge.limit:
            return
        if not await self.counters.first_time(f"{charge.counter_id}:projected", charge.ttl_s):
            return
        budget = charge.budget
        self.raise_alert(
            Alert(
                alerts.PROJECTED_OVERSPEND,
                f"budget {budget.budget_id} ({budget.scope}) is on course to spend "
                f"${from_nano(int(projected)):.2f} of its ${budget.limit_usd} this "
                f"{budget.period} period, which ends {_iso(window.end)}",
                {**_budget_details(charge, level), "projected_usd": _usd(int(projected))},
            )
        )

    async def _alert_exhausted(self, charge: BudgetCharge, spent: int) -> None:
        with contextlib.suppress(*_COUNTER_ERRORS):
            if not await self.counters.first_time(
                f"{charge.counter_id}:refused", charge.ttl_s or 86400
            ):
                return
        budget = charge.budget
        self.raise_alert(
            Alert(
                alerts.BUDGET_EXHAUSTED,
                f"budget {budget.budget_id} ({budget.scope}, {budget.period}) is exhausted: "
                f"requests are refused until it resets",
                _budget_details(charge, BudgetLevel(spent, 0)),
            )
        )

    async def _alert_unpriced(self, provider: str, model: str, reason: str | None) -> None:
        with contextlib.suppress(*_COUNTER_ERRORS):
            if not await self.counters.first_time(
                f"unpriced:{provider}/{model}", UNPRICED_ALERT_TTL_S
            ):
                return
        self.raise_alert(
            Alert(
                alerts.UNPRICED_MODEL,
                f"model '{model}' of provider '{provider}' has no price: its requests are "
                "recorded unpriced and reserve nothing against budgets",
                {"provider": provider, "model": model, "reason": reason},
            )
        )

    # Counter health

    def _note_outage(self, exc: BaseException) -> None:
        if not self._outage:
            logger.error(
                "budget counters unreachable (%s: %s); failing %s until they return",
                type(exc).__name__,
                exc,
                "closed" if self._fails_closed() else "open",
            )
        self._outage = True

    def _counters_ok(self) -> None:
        if not self._outage:
            return
        self._outage = False
        logger.info("budget counters reachable again; reconciling them with the ledger")
        self._spawn(self.reconcile())

    async def reconcile(self) -> None:
        """Raise each current budget counter to at least the spend the ledger holds."""
        now = self.clock()
        for budget in self.snapshot.budgets:
            charge = self._budget_charge(budget, None, now)
            try:
                buckets = await asyncio.to_thread(self._ledger_buckets, charge, now)
                await self.counters.reconcile(charge, buckets)
            except (*_COUNTER_ERRORS, ControlError) as exc:
                logger.warning("could not reconcile budget %s: %s", budget.budget_id, exc)
                return

    # Background work

    def _spawn(self, work: object) -> None:
        assert asyncio.iscoroutine(work)
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("control background work failed", exc_info=task.exception())

    async def _poll_epoch(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_interval_s)
            try:
                epoch = await asyncio.to_thread(self.store.epoch)
                if epoch != self.snapshot.epoch:
                    await self.reload()
            except ControlError as exc:
                logger.warning("could not poll control changes: %s", exc)


def presented_secret(headers: Mapping[str, str]) -> str | None:
    """Return the key a client sent: a bearer token, else Anthropic's ``x-api-key``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None


def normalized_tier(tier: str | None) -> str:
    if not tier:
        return "default"
    key = tier.strip().lower()
    return SERVICE_TIERS.get(key, "default" if key == "standard_only" else key)


def _default_counters(config: ControlConfig) -> Counters:
    if config.redis is None:
        return MemoryCounters()
    from thrifty.control.redis_counters import RedisCounters

    return RedisCounters(
        config.redis.url, prefix=config.redis.prefix, timeout_s=config.redis.timeout_s
    )


def _rate_charges(
    limits: list[RateLimit], estimate: Estimate | None, factor: Decimal
) -> list[RateCharge]:
    charges: list[RateCharge] = []
    for limit in limits:
        if limit.rpm is not None:
            charges.append(RateCharge(limit.scope, "rpm", _scaled(limit.rpm, factor), 1))
        if limit.tpm is not None:
            tokens = 0 if estimate is None else estimate.tokens
            charges.append(RateCharge(limit.scope, "tpm", _scaled(limit.tpm, factor), tokens))
    return charges


def _scaled(limit: int, factor: Decimal) -> int:
    return max(int(Decimal(limit) * factor), 1) if factor != 1 else limit


def _ttl_s(budget: Budget, window: Window, now: datetime) -> int:
    if window.rolling:
        return rolling_seconds(budget.period) + window.bucket_s
    if window.end is None:
        return 0
    return int((window.end - now).total_seconds()) + CALENDAR_GRACE_S


def _remaining(charges: list[BudgetCharge], levels: tuple[BudgetLevel, ...]) -> Decimal | None:
    if not charges:
        return None
    left = min(
        charge.limit - level.spent - level.reserved
        for charge, level in zip(charges, levels, strict=True)
    )
    return from_nano(max(left, 0))


def _budget_details(charge: BudgetCharge, level: BudgetLevel, **extra: object) -> dict[str, object]:
    budget = charge.budget
    details: dict[str, object] = {
        "budget_id": budget.budget_id,
        "scope": str(budget.scope),
        "period": budget.period,
        "window": charge.window.key,
        "limit_usd": format(budget.limit_usd, "f"),
        "spent_usd": _usd(level.spent),
    }
    for name, value in extra.items():
        details[name] = format(value, "f") if isinstance(value, Decimal) else value
    return details


def _usd(nano: int) -> str:
    return format(from_nano(nano).normalize(), "f")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
