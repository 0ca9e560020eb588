"""Per-account order rate limits in Redis, shared by every worker process.

A sliding window per (client, window) in a sorted set, checked and taken atomically by a Lua
script (one call for a whole batch): the broker's per-second and per-minute limits, and SEBI's
10 orders per second per account.
`acquire` blocks until a slot is free (or the deadline passes).
"""

from __future__ import annotations

import time
import uuid

import redis as redis_lib

from webapp.brokers.base import RateLimits

SEBI_ORDERS_PER_SECOND = 10  # above this an algo needs its own registered id (NSE, 2025)

# KEYS: every account's window keys, in order. ARGV: now, then per account its member, its number
# of windows n, and n (window, limit) pairs. Returns each account's wait in seconds ("0": taken).
_SCRIPT = """
local now = tonumber(ARGV[1])
local waits = {}
local k, a = 1, 2
while a <= #ARGV do
  local member, n = ARGV[a], tonumber(ARGV[a + 1])
  local wait = 0
  for i = 0, n - 1 do
    local key, window, limit = KEYS[k + i], tonumber(ARGV[a + 2 + i * 2]), tonumber(ARGV[a + 3 + i * 2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      local free_at = tonumber(oldest[2]) + window - now
      if free_at > wait then wait = free_at end
    end
  end
  if wait == 0 then
    for i = 0, n - 1 do
      local key, window = KEYS[k + i], tonumber(ARGV[a + 2 + i * 2])
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
    end
  end
  waits[#waits + 1] = tostring(wait)
  k, a = k + n, a + 2 + n * 2
end
return waits
"""


def windows(limits: RateLimits) -> list[tuple[float, int]]:
    per_second = min(limits.orders_per_second, SEBI_ORDERS_PER_SECOND)
    result = [(1.0, per_second)]
    if limits.orders_per_minute:
        result.append((60.0, limits.orders_per_minute))
    return result


class OrderThrottle:
    def __init__(self, redis: redis_lib.Redis):
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)

    def try_acquire(self, client_id: int, limits: RateLimits) -> float:
        """Take a slot now (returns 0) or say how many seconds until one frees."""
        return self.try_acquire_many([(client_id, limits)])[0]

    def try_acquire_many(self, accounts: list[tuple[int, RateLimits]]) -> list[float]:
        """`try_acquire` for each (client, limits), in order, in one script call: a batch's children
        take their slots in one round trip, in the order given (two children of one account compete
        for its slots as two calls would)."""
        if not accounts:
            return []
        keys: list[str] = []
        args: list = [repr(time.time())]
        for client_id, limits in accounts:
            spec = windows(limits)
            keys += [f"fanout:rate:{client_id}:{int(w)}" for w, _ in spec]
            args += [uuid.uuid4().hex, len(spec)]
            for window, limit in spec:
                args += [window, limit]
        return [float(wait) for wait in self._script(keys=keys, args=args)]

    def acquire(self, client_id: int, limits: RateLimits, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_acquire(client_id, limits)
            if wait <= 0:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(min(wait, 0.25))
