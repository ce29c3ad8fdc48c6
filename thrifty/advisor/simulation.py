"""Re-pricing recorded traffic under savings levers, one request at a time.

Each request starts from what it was billed. The levers act in a fixed
order (Batch, Flex, response cache, prompt caching, routing, model update,
prompt trimming), each on the request as the earlier ones left it, so a
dollar saved by one lever is never counted again by a later one. A lever's
saving is the drop in the request's simulated cost when it acts.

Routing moves a feature's requests to the cheaper model a benchmark found
good enough (see ``thrifty.advisor.bench_evidence``). It acts instead of the
model update for those requests: a routed request keeps the benchmarked
model, because its successor was not benchmarked. The cautious scenario
leaves a feature that only the generous one routes without a model update
too, so neither lever's cautious figure exceeds its generous one. Prompt trimming acts last
and removes the feature's measured share of the input that the earlier
levers left uncached (see ``thrifty.advisor.prompt_evidence``).

Prompt caching charges the cache write too. A provider that bills writes
above plain input (Anthropic: 1.25x input for a 5-minute write, 2x for a
1-hour one, in the cost engine's rates) bills the request that wrote a
prefix. The simulator charges that premium to the first request that reads
the prefix in each cache lifetime, because only a prefix that is read again
is worth a cache breakpoint. That read is taken even when it costs more
than it saves (a 1-hour write read once), so the lever's saving can be
negative: caching is adopted per prefix, not per request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from thrifty.advisor.bench_evidence import Routes
from thrifty.advisor.prompt_evidence import DETAILS_KEY as PROMPTS_KEY
from thrifty.advisor.traffic import Traffic, usage_of
from thrifty.batch.config import FlexConfig
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

LEVERS = (
    "batch",
    "flex",
    "response_cache",
    "prompt_caching",
    "routing",
    "model_update",
    "prompt_trimming",
)

# Providers bill a cache read only for a prefix of at least 1,024 tokens, in
# steps of 128 (OpenAI; Anthropic's minimum is also 1,024 for most models).
MIN_CACHED_PREFIX = 1024
CACHE_STEP = 128

# Anthropic keeps a cache write 5 minutes unless the request asks for 1 hour;
# a longer cache lifetime in a scenario means 1-hour writes.
FIVE_MINUTE_WRITE = timedelta(minutes=5)

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
    # Cheaper benchmarked models, by (feature, requested model).
    routes: Routes = field(default_factory=dict)
    # (feature, requested model) pairs whose model a benchmark decides, so the
    # model update leaves them alone even where this scenario does not route them.
    benchmarked: frozenset[tuple[str, str]] = frozenset()
    # Share of the input the prompt transforms removed, by feature.
    trim_shares: Mapping[str, Decimal] = field(default_factory=dict)


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
        if saved == 0:
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
    # The provider of a routed model, when it is not the request's.
    provider: str | None = None
    routed: bool = False
    batch: bool = False
    fallback_share: Decimal = Decimal(0)
    free: bool = False
    # Tokens of an earlier request's cache write that this request pays for,
    # and the prefix keys whose write it pays (see the module docstring).
    write_tokens: int = 0
    write_keys: tuple[tuple[str, str, str, str], ...] = ()


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
        # Tokens of each prefix whose cache write has been charged in its current lifetime.
        self._written: dict[tuple[str, str, str, str], int] = {}

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
            # A read that pays a prefix's cache write is taken even at a loss.
            pays_write = lever == "prompt_caching" and changed.write_tokens > 0
            if new_cost is None or (new_cost > cost and not pays_write):
                continue  # the lever would not save here, so the request keeps its state
            tallies[lever].add(record, cost, new_cost)
            if lever == "prompt_caching":
                self._charge_writes(changed)
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
        cost = self._engine_price(record, state, state.usage, tier)
        if cost is None or not state.write_tokens:
            return cost
        premium = self._write_premium(record, state, tier)
        return None if premium is None else cost + premium

    def _engine_price(
        self, record: RequestRecord, state: _State, usage: Usage, tier: str | None
    ) -> Decimal | None:
        cost = self.engine.price(
            state.provider or record.provider,
            state.model,
            usage,
            service_tier=None if state.batch else tier,
            batch=state.batch,
            at=record.started_at,
        )
        return cost.cost_usd

    def _write_premium(
        self, record: RequestRecord, state: _State, tier: str | None
    ) -> Decimal | None:
        """Price ``write_tokens`` as a cache write minus as plain input, at the engine's rates.

        Both prices use the request's own input size, so a model whose rates
        change with the input size is priced at the same row as the request.
        """
        one_hour = self._one_hour_writes()
        plain = Usage(input_tokens=state.usage.input_tokens)
        written = replace(
            plain,
            cache_write_tokens=state.write_tokens,
            cache_write_1h_tokens=state.write_tokens if one_hour else 0,
        )
        as_write = self._engine_price(record, state, written, tier)
        as_input = self._engine_price(record, state, plain, tier)
        if as_write is None or as_input is None:
            return None
        return as_write - as_input

    def _one_hour_writes(self) -> bool:
        window = self.scenario.prompt_cache_window
        return window is not None and window > FIVE_MINUTE_WRITE

    def _charge_writes(self, state: _State) -> None:
        """Note that the prefixes a taken read matched have had their write paid."""
        paid = state.usage.cache_read_tokens
        for key in state.write_keys:
            self._written[key] = max(self._written.get(key, 0), paid)

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
        shared_chars, matched_keys = self._shared_prefix_chars(record, state.model, prefixes, chars)
        cacheable = _cacheable_tokens(state.usage.input_tokens, shared_chars, chars)
        extra = cacheable - state.usage.cache_read_tokens - state.usage.cache_write_tokens
        if extra <= 0:
            return None
        usage = replace(state.usage, cache_read_tokens=state.usage.cache_read_tokens + extra)
        # The earlier request that wrote this prefix billed the write of the
        # part no read has paid for yet; the write premium is charged here.
        paid = max((self._written.get(key, 0) for key in matched_keys), default=0)
        unpaid = max(usage.cache_read_tokens - paid, 0)
        return replace(state, usage=usage, write_tokens=unpaid, write_keys=matched_keys)

    def _shared_prefix_chars(
        self, record: RequestRecord, model: str, prefixes: dict[str, str], chars: int
    ) -> tuple[int, tuple[tuple[str, str, str, str], ...]]:
        """Return how many prompt characters an earlier request in the window shared.

        Also returns the keys of the matched prefixes. A prefix not seen
        within the window starts a new cache lifetime, with its write unpaid.
        """
        window = self.scenario.prompt_cache_window
        assert window is not None
        matched = 0
        bound = chars
        keys: list[tuple[str, str, str, str]] = []
        for length in sorted(int(length) for length in prefixes):
            key = (record.provider, model, str(length), prefixes[str(length)])
            earlier = self._seen_prefixes.get(key)
            self._seen_prefixes[key] = record.started_at
            if earlier is not None and record.started_at - earlier <= window:
                matched = length
                keys.append(key)
            else:
                self._written.pop(key, None)
                if matched and bound == chars:
                    bound = length  # the first length past the match differs
        if not matched or not self.scenario.prefix_upper_bound:
            return matched, tuple(keys)
        return bound, tuple(keys)

    def _routing(self, record: RequestRecord, state: _State) -> _State | None:
        target = self.scenario.routes.get((record.feature or "", record.model_requested))
        if target is None:
            return None
        routed = replace(state, model=target.model, provider=target.provider, routed=True)
        if self._price(record, routed, routed.tier) is not None:
            return routed
        # The tier an earlier lever chose (Flex) is not offered for the
        # benchmarked model, so the routed request is priced at the standard rate.
        return replace(routed, tier=None, fallback_share=Decimal(0))

    def _model_update(self, record: RequestRecord, state: _State) -> _State | None:
        successor = self.scenario.successors.get(state.model)
        key = (record.feature or "", record.model_requested)
        if successor is None or state.routed or key in self.scenario.benchmarked:
            return None
        return replace(state, model=successor)

    def _prompt_trimming(self, record: RequestRecord, state: _State) -> _State | None:
        share = self.scenario.trim_shares.get(record.feature or "")
        if share is None or PROMPTS_KEY in record.details:
            return None  # no measured share, or the step already ran on this request
        usage = state.usage
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        removed = int(Decimal(uncached) * share)
        if removed <= 0:
            return None
        return replace(state, usage=replace(usage, input_tokens=usage.input_tokens - removed))


def _cacheable_tokens(input_tokens: int, shared_chars: int, prompt_chars: int) -> int:
    """Estimate the tokens of a shared prefix from its share of the prompt's characters."""
    if shared_chars <= 0 or prompt_chars <= 0:
        return 0
    tokens = input_tokens * min(shared_chars, prompt_chars) // prompt_chars
    if tokens < MIN_CACHED_PREFIX:
        return 0
    return tokens - tokens % CACHE_STEP
