"""Who is talking to the broker about a child: a Redis lock per child, and the send marks.

A child's lock is held by whoever calls its broker (a batch send, a one-child send, a cancel or
modify), from before its state is read until after the answer is written. Its value names the RQ
worker holding it, so a dead worker's locks are found and broken at once (`orphaned_children` in
webapp/trading/engine.py) instead of waiting LOCK_SECONDS for them to expire.

While a batch is being sent it is marked in SENDING: background syncs wait for it to go out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import redis as redis_lib

LOCK_SECONDS = 60  # longer than any broker timeout: a dead worker's lock frees itself
SENDING = "fanout:sending"  # sorted set of the batches being sent: lock token -> when the mark lapses
SENDING_SECONDS = 15  # past any broker timeout: a dead worker's mark lapses by itself


def lock_name(order_id: int) -> str:
    return f"fanout:lock:child:{order_id}"


def child_lock(redis: redis_lib.Redis, order_id: int) -> redis_lib.lock.Lock:
    return redis.lock(lock_name(order_id), timeout=LOCK_SECONDS, blocking=False)


def lock_token(holder: str) -> str:
    """A lock's value: unique, and naming the worker that holds it (the orphan search reads it)."""
    return f"{uuid.uuid4().hex}@{holder}" if holder else uuid.uuid4().hex


def holder_of(token: str | bytes | None) -> str:
    if isinstance(token, bytes):
        token = token.decode()
    return token.split("@", 1)[1] if token and "@" in token else ""


class ChildLocks:
    """The per-child locks of a whole batch, taken and released with one script call each. They are
    the same keys and token scheme as redis-py's Lock, so `child_lock` and these exclude each other.
    While any are held, the batch is marked in SENDING."""

    _ACQUIRE = (
        "local held = {} for i, key in ipairs(KEYS) do "
        "if i > 1 and redis.call('set', key, ARGV[1], 'NX', 'PX', ARGV[2]) then held[#held + 1] = i - 1 end "
        "end redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[4]) "
        "if #held > 0 then redis.call('zadd', KEYS[1], ARGV[3], ARGV[1]) end return held"
    )
    _RELEASE = (
        "for i, key in ipairs(KEYS) do "
        "if i > 1 and redis.call('get', key) == ARGV[1] then redis.call('del', key) end end "
        "if ARGV[2] == '1' then redis.call('zrem', KEYS[1], ARGV[1]) end return 0"
    )

    def __init__(self, redis: redis_lib.Redis, holder: str = ""):
        self._acquire, self._release = redis.register_script(self._ACQUIRE), redis.register_script(self._RELEASE)
        self._token = lock_token(holder)
        self.held: set[int] = set()

    def acquire(self, order_ids: Iterable[int]) -> set[int]:
        ids = list(order_ids)
        if ids:
            taken = self._acquire(
                keys=[SENDING] + [lock_name(i) for i in ids],
                args=[self._token, LOCK_SECONDS * 1000, time.time() + SENDING_SECONDS, time.time()],
            )
            self.held |= {ids[n - 1] for n in taken}
        return self.held

    def release(self, order_ids: Iterable[int] | None = None) -> None:
        ids = [i for i in (self.held if order_ids is None else order_ids) if i in self.held]
        if not ids:
            return
        last = "1" if self.held <= set(ids) else "0"  # the batch's mark goes with its last lock
        self._release(keys=[SENDING] + [lock_name(i) for i in ids], args=[self._token, last])
        self.held -= set(ids)


def sends_in_flight(redis: redis_lib.Redis) -> bool:
    return bool(redis.zcount(SENDING, time.time(), "+inf"))


_BREAK = (
    "local n = 0 for i, key in ipairs(KEYS) do "
    "if redis.call('get', key) == ARGV[i] then redis.call('del', key) n = n + 1 end end return n"
)


def break_locks(redis: redis_lib.Redis, broken: list[tuple[int, str | bytes]]) -> None:
    """Delete these children's locks, each only if it still has the token it was seen with."""
    if broken:
        redis.eval(_BREAK, len(broken), *[lock_name(i) for i, _ in broken], *[t for _, t in broken])


def dead_holders(redis: redis_lib.Redis, names: set[str]) -> set[str]:
    """Of these RQ workers, those gone: the worker's key lapsed (no heartbeat) or records its death."""
    if not names:
        return set()
    from rq.worker import Worker as RQWorker

    ordered = sorted(names)
    pipe = redis.pipeline(transaction=False)
    for name in ordered:
        pipe.hmget(RQWorker.redis_worker_namespace_prefix + name, ["birth", "death"])
    return {name for name, (birth, death) in zip(ordered, pipe.execute()) if birth is None or death is not None}
