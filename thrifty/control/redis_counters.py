"""Counters in Redis, shared by every replica, each operation one atomic Lua script.

Keys, under the configured prefix:

- ``budget:{id}:{window}`` a hash: ``init`` once built, ``spent``,
  ``reserved``, ``r:{request_id}`` for each reservation in flight,
  ``c:{request_id}`` for each request a rebuild counted before it settled,
  and ``u:{request_id}`` for each request that settled while the counter was
  missing (its amount and bucket, added by the rebuild);
- ``budget:{id}:{window}:deadlines`` a sorted set of request ids by the
  time (ms) their reservation stops counting;
- ``budget:{id}:{window}:buckets`` the spend of each bucket of a rolling window;
- ``rate:{rpm|tpm}:{scope}`` a sorted set of request ids by admission time
  (ms), and ``...:amounts`` a hash of each one's count and their ``total``;
- ``once:{name}`` alert deduplication, ``epoch`` the change counter.

A budget hash without ``init`` is missing: the script returns ``missing`` and the caller
rebuilds it from the ledger, so an expired or lost counter never reads as
zero. Amounts pass as decimal strings because Lua numbers are doubles: sums
stay exact up to 2**53 nano-dollars (about 9 million USD) per window.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from thrifty.control.counters import (
    RATE_WINDOW_S,
    Admitted,
    BudgetCharge,
    BudgetLevel,
    Missing,
    Outcome,
    RateCharge,
    Refused,
)

logger = logging.getLogger(__name__)

_HELPERS = """
local function expire_reservations(main, deadlines, now)
  local stale = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)
  for _, old in ipairs(stale) do
    local amount = redis.call('HGET', main, 'r:' .. old)
    if amount then
      if amount ~= '0' then redis.call('HINCRBY', main, 'reserved', '-' .. amount) end
      redis.call('HDEL', main, 'r:' .. old)
    end
  end
  if #stale > 0 then redis.call('ZREMRANGEBYSCORE', deadlines, '-inf', now) end
end

local function spent_of(main, buckets, oldest)
  if oldest == 0 then return tonumber(redis.call('HGET', main, 'spent') or '0') end
  local total = 0
  local fields = redis.call('HGETALL', buckets)
  for i = 1, #fields, 2 do
    if tonumber(fields[i]) < oldest then
      redis.call('HDEL', buckets, fields[i])
    else
      total = total + tonumber(fields[i + 1])
    end
  end
  return total
end
"""

# KEYS: 3 per budget (hash, deadlines, buckets), then 2 per rate limit (log, amounts).
# ARGV: request id, now ms, deadline ms, budget count, rate count, then 4 per
# budget (limit, amount, oldest bucket, ttl s), then 3 per rate (limit, amount, window ms).
_RESERVE = (
    _HELPERS
    + """
local rid, now, deadline = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nb, nr = tonumber(ARGV[4]), tonumber(ARGV[5])
local result = {'ok'}
for i = 1, nb do
  local main, deadlines, buckets = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 5 + 4 * (i - 1)
  local limit, amount = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  if redis.call('HEXISTS', main, 'init') == 0 then return {'missing', i} end
  expire_reservations(main, deadlines, now)
  local spent = spent_of(main, buckets, tonumber(ARGV[base + 3]))
  local reserved = tonumber(redis.call('HGET', main, 'reserved') or '0')
  if spent + reserved + amount > limit then
    return {'budget', i, string.format('%d', spent), string.format('%d', reserved)}
  end
  table.insert(result, string.format('%d', spent))
  table.insert(result, string.format('%d', reserved + amount))
end
local rate_base = 5 + 4 * nb
for j = 1, nr do
  local log, amounts = KEYS[3 * nb + 2 * j - 1], KEYS[3 * nb + 2 * j]
  local base = rate_base + 3 * (j - 1)
  local limit, amount = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local cutoff = now - tonumber(ARGV[base + 3])
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
  for _, member in ipairs(old) do
    local held = redis.call('HGET', amounts, member)
    if held then
      if held ~= '0' then redis.call('HINCRBY', amounts, 'total', '-' .. held) end
      redis.call('HDEL', amounts, member)
    end
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff) end
  local used = tonumber(redis.call('HGET', amounts, 'total') or '0')
  if used + amount > limit then return {'rate', j, string.format('%d', used)} end
end
for i = 1, nb do
  local main, deadlines, buckets = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 5 + 4 * (i - 1)
  local amount, ttl = ARGV[base + 2], tonumber(ARGV[base + 4])
  -- HSETNX keeps a retried script from reserving the same request twice.
  if redis.call('HSETNX', main, 'r:' .. rid, amount) == 1 then
    redis.call('HINCRBY', main, 'reserved', amount)
    redis.call('ZADD', deadlines, deadline, rid)
  end
  if ttl > 0 then
    redis.call('EXPIRE', main, ttl)
    redis.call('EXPIRE', deadlines, ttl)
  end
end
for j = 1, nr do
  local log, amounts = KEYS[3 * nb + 2 * j - 1], KEYS[3 * nb + 2 * j]
  local base = rate_base + 3 * (j - 1)
  local amount, window = ARGV[base + 2], tonumber(ARGV[base + 3])
  if redis.call('HSETNX', amounts, rid, amount) == 1 then
    redis.call('ZADD', log, now, rid)
    redis.call('HINCRBY', amounts, 'total', amount)
  end
  redis.call('PEXPIRE', log, 2 * window)
  redis.call('PEXPIRE', amounts, 2 * window)
end
return result
"""
)

# KEYS as for reserve. ARGV: request id, budget count, rate count, then 3 per
# budget (actual, current bucket or 0, oldest bucket or 0), then 1 per rate (actual).
_SETTLE = (
    _HELPERS
    + """
local rid, nb, nr = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local result = {}
for i = 1, nb do
  local main, deadlines, buckets = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 3 + 3 * (i - 1)
  local actual, bucket, oldest = ARGV[base + 1], ARGV[base + 2], tonumber(ARGV[base + 3])
  local held = redis.call('HGET', main, 'r:' .. rid)
  if held then
    if held ~= '0' then redis.call('HINCRBY', main, 'reserved', '-' .. held) end
    redis.call('HDEL', main, 'r:' .. rid)
    redis.call('ZREM', deadlines, rid)
  end
  -- A request a rebuild already counted from its record adds nothing more.
  if redis.call('HDEL', main, 'c:' .. rid) == 1 then
    table.insert(result, string.format('%d', spent_of(main, buckets, oldest)))
    table.insert(result, redis.call('HGET', main, 'reserved') or '0')
  elseif redis.call('HEXISTS', main, 'init') == 1 then
    if oldest > 0 then
      redis.call('HINCRBY', buckets, bucket, actual)
      local ttl = redis.call('TTL', main)
      if ttl > 0 then redis.call('EXPIRE', buckets, ttl) end
    else
      redis.call('HINCRBY', main, 'spent', actual)
    end
    table.insert(result, string.format('%d', spent_of(main, buckets, oldest)))
    table.insert(result, redis.call('HGET', main, 'reserved') or '0')
  else
    -- The counter is missing: keep the amount for the rebuild to add, unless
    -- the rebuild counts this request from its record.
    redis.call('HSET', main, 'u:' .. rid, actual .. ':' .. bucket)
    if redis.call('TTL', main) < 0 then redis.call('EXPIRE', main, 86400) end
    table.insert(result, '-1')
    table.insert(result, '-1')
  end
end
for j = 1, nr do
  local amounts = KEYS[3 * nb + 2 * j]
  local held = redis.call('HGET', amounts, rid)
  if held then
    local actual = ARGV[3 + 3 * nb + j]
    if held ~= '0' then redis.call('HINCRBY', amounts, 'total', '-' .. held) end
    redis.call('HINCRBY', amounts, 'total', actual)
    redis.call('HSET', amounts, rid, actual)
  end
end
return result
"""
)

# KEYS: hash, buckets. ARGV: ttl s, "replace" (load) or "max" (reconcile), the
# number of counted request ids and the ids, then bucket/amount pairs (bucket 0
# is the whole spend of a calendar window).
_LOAD = """
local main, buckets = KEYS[1], KEYS[2]
local ttl, mode, ncounted = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local exists = redis.call('HEXISTS', main, 'init') == 1
if mode == 'replace' and exists then return 0 end
if mode == 'max' and not exists then return 0 end
local counted = {}
for i = 4, 3 + ncounted do counted[ARGV[i]] = true end
for i = 4 + ncounted, #ARGV, 2 do
  local bucket, amount = ARGV[i], ARGV[i + 1]
  if bucket == '0' then
    local current = tonumber(redis.call('HGET', main, 'spent') or '0')
    if mode == 'replace' or tonumber(amount) > current then
      redis.call('HSET', main, 'spent', amount)
    end
  else
    local current = tonumber(redis.call('HGET', buckets, bucket) or '0')
    if mode == 'replace' or tonumber(amount) > current then
      redis.call('HSET', buckets, bucket, amount)
    end
  end
end
if not exists then
  -- Add what requests settled while the counter was missing ('u:' fields),
  -- except those the rebuild counted from their records.
  local fields = redis.call('HGETALL', main)
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 2) == 'u:' then
      local rid = string.sub(name, 3)
      if not counted[rid] then
        local value = fields[i + 1]
        local sep = string.find(value, ':', 1, true)
        local amount, bucket = string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
        if bucket == '0' then
          redis.call('HINCRBY', main, 'spent', amount)
        else
          redis.call('HINCRBY', buckets, bucket, amount)
        end
      end
      counted[rid] = nil
      redis.call('HDEL', main, name)
    end
  end
  for rid in pairs(counted) do redis.call('HSET', main, 'c:' .. rid, '1') end
  redis.call('HSET', main, 'init', '1')
  redis.call('HSETNX', main, 'spent', '0')
  redis.call('HSETNX', main, 'reserved', '0')
  if ttl == 0 then redis.call('PERSIST', main) end
end
if ttl > 0 then
  redis.call('EXPIRE', main, ttl)
  if redis.call('EXISTS', buckets) == 1 then redis.call('EXPIRE', buckets, ttl) end
end
return 1
"""

# KEYS: hash, deadlines, buckets. ARGV: now ms, oldest bucket.
_LEVELS = (
    _HELPERS
    + """
if redis.call('HEXISTS', KEYS[1], 'init') == 0 then return {'-1', '-1'} end
expire_reservations(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local spent = spent_of(KEYS[1], KEYS[3], tonumber(ARGV[2]))
return {string.format('%d', spent), redis.call('HGET', KEYS[1], 'reserved') or '0'}
"""
)


class RedisCounters:
    """Counters in one Redis server, shared by every replica that uses ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "thrifty:", timeout_s: float = 0.5) -> None:
        self.prefix = prefix
        # A connection dropped by a Redis restart is retried at once on a new one.
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._reserve: AsyncScript = self.client.register_script(_RESERVE)
        self._settle: AsyncScript = self.client.register_script(_SETTLE)
        self._load: AsyncScript = self.client.register_script(_LOAD)
        self._levels: AsyncScript = self.client.register_script(_LEVELS)

    async def reserve(
        self,
        request_id: str,
        budgets: list[BudgetCharge],
        rates: list[RateCharge],
        now: float,
        deadline: float,
    ) -> Outcome:
        keys: list[str] = []
        args: list[Any] = [request_id, _ms(now), _ms(deadline), len(budgets), len(rates)]
        for charge in budgets:
            keys += self._budget_keys(charge)
            args += [charge.limit, charge.amount, charge.oldest, charge.ttl_s]
        for rate in rates:
            keys += self._rate_keys(rate)
            args += [rate.limit, rate.amount, int(RATE_WINDOW_S * 1000)]
        reply = await self._reserve(keys=keys, args=args)
        status = reply[0]
        if status == "missing":
            return Missing(int(reply[1]) - 1)
        if status == "budget":
            return Refused("budget", int(reply[1]) - 1, int(reply[2]), int(reply[3]))
        if status == "rate":
            return Refused("rate", int(reply[1]) - 1, int(reply[2]))
        pairs = reply[1:]
        levels = tuple(
            BudgetLevel(int(pairs[i]), int(pairs[i + 1])) for i in range(0, len(pairs), 2)
        )
        return Admitted(levels)

    async def settle(
        self,
        request_id: str,
        budgets: list[tuple[BudgetCharge, int]],
        rates: list[tuple[RateCharge, int]],
        now: float,
    ) -> list[BudgetLevel | None]:
        keys: list[str] = []
        args: list[Any] = [request_id, len(budgets), len(rates)]
        for charge, actual in budgets:
            keys += self._budget_keys(charge)
            args += [actual, charge.bucket, charge.oldest]
        for rate, actual in rates:
            keys += self._rate_keys(rate)
            args.append(actual)
        reply = await self._settle(keys=keys, args=args)
        levels: list[BudgetLevel | None] = []
        for i in range(0, len(reply), 2):
            spent, reserved = int(reply[i]), int(reply[i + 1])
            levels.append(None if spent < 0 else BudgetLevel(spent, reserved))
        return levels

    async def load(
        self, charge: BudgetCharge, buckets: dict[int, int], counted: Sequence[str] = ()
    ) -> None:
        await self._write_spend(charge, buckets, "replace", counted)

    async def reconcile(self, charge: BudgetCharge, buckets: dict[int, int]) -> None:
        await self._write_spend(charge, buckets, "max", ())

    async def levels(self, budgets: list[BudgetCharge], now: float) -> list[BudgetLevel | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for charge in budgets:
                await self._levels(
                    keys=self._budget_keys(charge), args=[_ms(now), charge.oldest], client=pipe
                )
            replies = await pipe.execute()
        levels: list[BudgetLevel | None] = []
        for spent, reserved in replies:
            levels.append(None if int(spent) < 0 else BudgetLevel(int(spent), int(reserved)))
        return levels

    async def first_time(self, name: str, ttl_s: int) -> bool:
        return bool(await self.client.set(f"{self.prefix}once:{name}", "1", nx=True, ex=ttl_s))

    async def epoch(self) -> int | None:
        value = await self.client.get(f"{self.prefix}epoch")
        return int(value or 0)

    async def bump_epoch(self) -> None:
        await self.client.incr(f"{self.prefix}epoch")

    async def close(self) -> None:
        await self.client.aclose()

    async def _write_spend(
        self, charge: BudgetCharge, buckets: dict[int, int], mode: str, counted: Sequence[str]
    ) -> None:
        main, _, bucket_key = self._budget_keys(charge)
        args: list[Any] = [charge.ttl_s, mode, len(counted), *counted]
        for bucket, amount in buckets.items():
            args += [bucket, amount]
        await self._load(keys=[main, bucket_key], args=args)

    def _budget_keys(self, charge: BudgetCharge) -> list[str]:
        main = f"{self.prefix}budget:{charge.counter_id}"
        return [main, f"{main}:deadlines", f"{main}:buckets"]

    def _rate_keys(self, rate: RateCharge) -> list[str]:
        log = f"{self.prefix}rate:{rate.counter_id}"
        return [log, f"{log}:amounts"]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
