"""The paper exchange never holds an account's lock (on SQLite: the database's one write lock) while
it waits on Redis (issue 10 item 5). A placement whose quote read hangs on a paused redis-server
(SIGSTOP: the server stops answering, the connection stays open) must not stop another placement
on the same account. Before the fix the quote was read inside the locked transaction, and the
second placement waited for the lock until it timed out into UNKNOWN."""

import os
import signal
import threading
import time

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.paper.conftest import order
from webapp.brokers.paper.exchange import PaperExchange
from webapp.embedded_redis import EmbeddedRedis
from webapp.extensions import db
from webapp.models.paper import PaperOrder

BOUND = 20.0  # seconds a failing run waits for the second placement before it says so


class PausedRedis:
    """A client connected to a redis-server that is then paused (SIGSTOP); `resume()` continues it."""

    def __init__(self, server: EmbeddedRedis):
        self.server = server
        # a generous timeout: the paused read waits until resumed (redis-py's default would give up at 5 s)
        self.client = redis_lib.Redis.from_url(server.url, decode_responses=True, socket_timeout=60)
        self.client.ping()  # connected before the pause: a command is sent, then never answered
        os.kill(server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)


@pytest.fixture
def paused_redis():
    with EmbeddedRedis() as server:
        paused = PausedRedis(server)
        try:
            yield paused
        finally:
            paused.resume()
            paused.client.close()


def waiting_on(client: redis_lib.Redis) -> bool:
    """A command of this client is out and unanswered (its connection is checked out of the pool)."""
    return bool(client.connection_pool._in_use_connections)


def test_a_placement_waiting_on_redis_does_not_hold_the_accounts_lock(app, engine, exchange, clock, infy, paused_redis):
    exchange.ensure_account("ZP1")
    stalled = PaperExchange(engine, redis=paused_redis.client, clock=clock)
    results: dict[str, object] = {}

    def place(name: str, where: PaperExchange) -> None:
        try:
            results[name] = where.place("ZP1", order(quantity=1, tag=name))
        except Exception as exc:  # reported by the assertions below
            results[name] = exc
        results[f"{name} done, slow still waiting"] = "slow" not in results

    slow = threading.Thread(target=place, args=("slow", stalled), daemon=True)
    slow.start()
    deadline = time.monotonic() + BOUND
    while not waiting_on(paused_redis.client) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waiting_on(paused_redis.client), "the first placement never reached Redis"

    fast = threading.Thread(target=place, args=("fast", exchange), daemon=True)
    fast.start()
    fast.join(BOUND)
    assert not fast.is_alive(), "the second placement waited for the first one's lock"
    assert isinstance(results["fast"], str), results["fast"]  # an order id, not a lock timeout
    assert results["fast done, slow still waiting"] and slow.is_alive()

    paused_redis.resume()
    slow.join(BOUND)
    assert isinstance(results.get("slow"), str), results.get("slow")
    with app.app_context():
        tags = db.session.execute(sa.select(PaperOrder.tag).order_by(PaperOrder.id)).scalars().all()
    assert tags == ["fast", "slow"]
