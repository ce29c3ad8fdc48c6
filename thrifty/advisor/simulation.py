"""Re-pricing recorded traffic under savings levers, one request at a time.

Each request starts from what it was billed. The levers act in a fixed
order (Batch, Flex, response cache, prompt caching, model update), each on
the request as the earlier ones left it, so a dollar saved by one lever is
never counted again by a later one. A lever's saving is the drop in the
request's simulated cost when it acts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from thrifty.advisor.traffic import Traffic, usage_of
from thrifty.batch.config import FlexConfig
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

LEVERS = ("batch", "flex", "response_cache", "prompt_caching", "model_update")

# Providers bill a cache read only for a prefix of at least 1,024 tokens, in
# steps of 128 (OpenAI; Anthropic's minimum is also 1,024 for most models).
MIN_CACHED_PREFIX = 1024
CACHE_STEP = 128

# Flex processing is offered by OpenAI for some models only; the default
# model list of the gateway's flex: section decides which.
_FLEX = FlexConfig()


@dataclass(frozen=True, slots=True)
class Scenario:
    """One set of assumptions; the plan runs a cautious and a generous one."""

    name: str
    batch_features: frozenset[str]
    flex_features: frozenset[str] | None  # None: every non-streamed request
    flex_fallback_share: Decimal
    cache_ttl: timedelta | None
    cache_any_temperature: bool
    prompt_cache_window: timedelta | None
    # Take a shared prefix to end at the next fingerprint length instead of
    # the last matching one: the top of the range the fingerprints allow.
    prefix_upper_bound: bool
    successors: dict[str, str]
    levers: frozenset[str] = frozenset(LEVERS)


@dataclass(slots=True)
class LeverTally:
    """Savings of one lever in one scenario, with the evidence."""

    saving: Decimal = Decimal(0)
    requests: int = 0
    applies_to: Decimal = Decimal(0)
    by_feature: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    samples: list[str] = field(default_factory=list)

    def add(self, record: RequestRecord, before: Decimal, after: Decimal) -> None:
        saved = before - after
        if saved <= 0:
            return
        self.saving += saved
        self.requests += 1
        self.applies_to += before
        self.by_feature[record.feature or "(none)"] += saved
        if len(self.samples) < 3:
            self.samples.append(record.request_id)


@dataclass(frozen=True, slots=True)
class _State:
    """A request as the levers so far have changed it."""

    model: str
    usage: Usage
    tier: str | None
    batch: bool = False
    fallback_share: Decimal = Decimal(0)
    free: bool = False


@dataclass(frozen=True, slots=True)
class SimulationResult:
    scenario: Scenario
    spend: Decimal
    simulated: Decimal
    levers: dict[str, LeverTally]


class Simulator:
    """Apply a scenario's levers to every request of the traffic."""

    def __init__(self, engine: CostEngine, scenario: Scenario) -> None:
        self.engine = engine
        self.scenario = scenario
        self._seen_requests: dict[tuple[str, str, str], datetime] = {}
        self._seen_prefixes: dict[tuple[str, str, str, str], datetime] = {}

    def run(self, traffic: Traffic) -> SimulationResult:
        tallies = {name: LeverTally() for name in LEVERS}
        simulated = Decimal(0)
        for record in traffic.records:
            simulated += self._simulate(record, tallies)
        return SimulationResult(self.scenario, traffic.spend, simulated, tallies)

    def _simulate(self, record: RequestRecord, tallies: dict[str, LeverTally]) -> Decimal:
        state = _State(
            model=record.model_served or record.model_requested,
            usage=usage_of(record),
            tier=record.service_tier_served,
        )
        cost = record.cost_usd or Decimal(0)
        for lever in LEVERS:
            if lever not in self.scenario.levers:
                continue
            changed: _State | None = getattr(self, f"_{lever}")(record, state)
            if changed is None:
                continue
            new_cost = Decimal(0) if changed.free else self._cost(record, changed)
            if new_cost is None or new_cost > cost:
                continue  # the lever would not save here, so the request keeps its state
            tallies[lever].add(record, cost, new_cost)
            state, cost = changed, new_cost
            if state.free:
                break
        return cost

    def _cost(self, record: RequestRecord, state: _State) -> Decimal | None:
        main = self._price(record, state, state.tier)
        if main is None or state.fallback_share == 0:
            return main
        standard = self._price(record, state, None)
        if standard is None:
            return None
        share = state.fallback_share
        return standard * share + main * (1 - share)

    def _price(self, record: RequestRecord, state: _State, tier: str | None) -> Decimal | None:
        cost = self.engine.price(
            record.provider,
            state.model,
            state.usage,
            service_tier=None if state.batch else tier,
            batch=state.batch,
            at=record.started_at,
        )
        return cost.cost_usd

    def _batch(self, record: RequestRecord, state: _State) -> _State | None:
        if record.streamed or (record.feature or "") not in self.scenario.batch_features:
            return None
        return replace(state, batch=True, tier=None)

    def _flex(self, record: RequestRecord, state: _State) -> _State | None:
        if state.batch or record.streamed or state.tier == "flex":
            return None
        allowed = self.scenario.flex_features
        if allowed is not None and (record.feature or "") not in allowed:
            return None
        if record.provider != "openai" or not _FLEX.supports(state.model):
            return None
        if self._price(record, state, "flex") is None:
            return None
        return replace(state, tier="flex", fallback_share=self.scenario.flex_fallback_share)

    def _response_cache(self, record: RequestRecord, state: _State) -> _State | None:
        ttl = self.scenario.cache_ttl
        facts = record.details.get("request") or {}
        fingerprint = facts.get("fingerprint")
        if ttl is None or not fingerprint:
            return None
        if not self.scenario.cache_any_temperature and facts.get("temperature") not in (0, 0.0):
            return None
        key = (record.feature or "", state.model, str(fingerprint))
        earlier = self._seen_requests.get(key)
        self._seen_requests[key] = record.started_at
        if earlier is None or record.started_at - earlier > ttl:
            return None
        return replace(state, free=True)

    def _prompt_caching(self, record: RequestRecord, state: _State) -> _State | None:
        window = self.scenario.prompt_cache_window
        facts = record.details.get("request") or {}
        prefixes: dict[str, str] = facts.get("prefix") or {}
        chars = facts.get("prompt_chars") or 0
        if window is None or not prefixes or not chars:
            return None
        shared_chars = self._shared_prefix_chars(record, state.model, prefixes, chars)
        # NOTE: for Anthropic the first request of a prefix pays a cache-write
        # premium (1.25x input) that this estimate does not charge.
        cacheable = _cacheable_tokens(state.usage.input_tokens, shared_chars, chars)
        extra = cacheable - state.usage.cache_read_tokens - state.usage.cache_write_tokens
        if extra <= 0:
            return None
        usage = replace(state.usage, cache_read_tokens=state.usage.cache_read_tokens + extra)
        return replace(state, usage=usage)

    def _shared_prefix_chars(
        self, record: RequestRecord, model: str, prefixes: dict[str, str], chars: int
    ) -> int:
        """Return how many prompt characters an earlier request in the window shared."""
        window = self.scenario.prompt_cache_window
        assert window is not None
        matched = 0
        bound = chars
        for length in sorted(int(length) for length in prefixes):
            key = (record.provider, model, str(length), prefixes[str(length)])
            earlier = self._seen_prefixes.get(key)
            self._seen_prefixes[key] = record.started_at
            if earlier is not None and record.started_at - earlier <= window:
                matched = length
            elif matched and bound == chars:
                bound = length  # the first length past the match differs
        if not matched or not self.scenario.prefix_upper_bound:
            return matched
        return bound

    def _model_update(self, record: RequestRecord, state: _State) -> _State | None:
        successor = self.scenario.successors.get(state.model)
        if successor is None:
            return None
        return replace(state, model=successor)


def _cacheable_tokens(input_tokens: int, shared_chars: int, prompt_chars: int) -> int:
    """Estimate the tokens of a shared prefix from its share of the prompt's characters."""
    if shared_chars <= 0 or prompt_chars <= 0:
        return 0
    tokens = input_tokens * min(shared_chars, prompt_chars) // prompt_chars
    if tokens < MIN_CACHED_PREFIX:
        return 0
    return tokens - tokens % CACHE_STEP
