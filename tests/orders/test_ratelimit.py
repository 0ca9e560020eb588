"""The per-account order throttle and the batch's child locks, against the real Redis."""

from __future__ import annotations

import time

from webapp.brokers.base import RateLimits
from webapp.trading.locks import LOCK_SECONDS, ChildLocks, child_lock, lock_name
from webapp.trading.ratelimit import OrderThrottle

FAST = RateLimits(orders_per_second=50)  # a broker that allows more than SEBI's 10 a second


def test_sebi_caps_an_account_at_ten_orders_a_second_in_one_call(redis_client):
    waits = OrderThrottle(redis_client).try_acquire_many([(7, FAST)] * 12)
    assert waits[:10] == [0.0] * 10
    assert all(0 < w <= 1.0 for w in waits[10:]), waits


def test_accounts_do_not_share_slots(redis_client):
    throttle = OrderThrottle(redis_client)
    assert throttle.try_acquire_many([(1, FAST)] * 10) == [0.0] * 10
    assert throttle.try_acquire_many([(2, FAST), (1, FAST), (3, FAST)])[0::2] == [0.0, 0.0]
    assert throttle.try_acquire(1, FAST) > 0


def test_a_broker_limit_below_sebis_and_a_per_minute_window_both_hold(redis_client):
    throttle = OrderThrottle(redis_client)
    per_second = RateLimits(orders_per_second=3)
    assert [w == 0 for w in throttle.try_acquire_many([(4, per_second)] * 4)] == [True, True, True, False]
    per_minute = RateLimits(orders_per_second=10, orders_per_minute=2)
    waits = throttle.try_acquire_many([(5, per_minute)] * 3)
    assert waits[:2] == [0.0, 0.0] and 59 < waits[2] <= 60


def test_a_refused_slot_is_not_taken(redis_client):
    throttle = OrderThrottle(redis_client)
    limits = RateLimits(orders_per_second=2)
    assert throttle.try_acquire_many([(6, limits)] * 5)[2:] != [0.0] * 3
    assert redis_client.zcard("fanout:rate:6:1") == 2


def test_acquire_waits_for_the_window(redis_client):
    throttle = OrderThrottle(redis_client)
    limits = RateLimits(orders_per_second=1)
    assert throttle.acquire(8, limits)
    assert not throttle.acquire(8, limits, timeout=0.05)  # the slot frees in ~1 s: past the deadline
    started = time.monotonic()
    assert throttle.acquire(8, limits, timeout=5)
    assert time.monotonic() - started > 0.5


def test_child_locks_take_only_free_children_and_exclude_send_child(redis_client):
    other = child_lock(redis_client, 2)
    assert other.acquire()  # another process is sending child 2
    locks = ChildLocks(redis_client)
    assert locks.acquire([1, 2, 3]) == {1, 3}
    assert 0 < redis_client.pttl(lock_name(1)) <= LOCK_SECONDS * 1000
    assert not child_lock(redis_client, 3).acquire()
    locks.release()
    assert redis_client.get(lock_name(1)) is None and redis_client.get(lock_name(3)) is None
    assert redis_client.get(lock_name(2)) is not None  # not ours: left alone
    other.release()


def test_child_locks_release_only_their_own_token(redis_client):
    locks = ChildLocks(redis_client)
    locks.acquire([9])
    redis_client.set(lock_name(9), "someone-else")  # ours expired and another process took it
    locks.release([9])
    assert redis_client.get(lock_name(9)) == "someone-else"
