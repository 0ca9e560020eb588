"""The feed process (`flask feed run`): one market-data session for the whole desk.

Every second it takes a batch of ticks — from the paper simulator, or from a broker stream — writes
the latest quote per instrument to Redis and publishes it, lets the paper exchange fill what the
move reaches, and builds 1-minute candles. A Redis lock keeps it single: a second feed process
waits as a standby and takes over when the first one's lock expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import redis as redis_lib
import sqlalchemy as sa
from flask import Flask

from webapp.automation import runner
from webapp.automation.stops import StopIndex
from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.health.roles import beat
from webapp.marketdata.candles import CandleBuilder, publish_forming, save_bars
from webapp.marketdata.store import write_quotes
from webapp.models import Instrument, Order, Position, WatchlistItem
from webapp.timeutil import utcnow
from webapp.trading import states

log = logging.getLogger(__name__)

LOCK_KEY = "fanout:feed:lock"
HEARTBEAT_KEY = "fanout:feed:heartbeat"
SUBSCRIPTIONS_KEY = "fanout:feed:subscriptions"
INTEREST_KEY = "fanout:feed:interest"  # sorted set: instrument token → until when a page shows its chart
LOCK_SECONDS = 10
RESUBSCRIBE_EVERY = 5  # steps


def note_interest(redis, token: int, seconds: int = 120) -> None:
    """A page opened a chart or ticker for this instrument: keep it subscribed for a while."""
    redis.zadd(INTEREST_KEY, {str(token): time.time() + seconds})


def wanted_tokens(redis) -> set[int]:
    """Instruments with an open position, an open order, a watchlist entry or an open chart, and the
    header's index tickers (every page shows them)."""
    from webapp.instruments.watch import header_indices  # a blueprint's domain module (it imports this one)

    held = sa.select(Position.instrument_id).where(Position.quantity != 0)
    ordered = sa.select(Order.instrument_id).where(Order.status.in_(states.AT_BROKER | states.IN_FLIGHT))
    watched = sa.select(WatchlistItem.instrument_id)
    deployed = runner.deployed_instruments()  # ACTIVE deployments: the feed builds their candles
    ids = sa.union(held, ordered, watched, deployed).subquery()
    tokens = set(
        db.session.execute(sa.select(Instrument.instrument_token).where(Instrument.id.in_(sa.select(ids)))).scalars()
    )
    tokens.update(i.instrument_token for i in header_indices())
    redis.zremrangebyscore(INTEREST_KEY, "-inf", time.time())
    tokens.update(int(t) for t in redis.zrange(INTEREST_KEY, 0, -1))
    return tokens


TickSource = Callable[[datetime, set[int]], Mapping[int, Quote]]


class Feed:
    def __init__(
        self,
        app: Flask,
        source: TickSource,
        on_quotes: Callable[[Mapping[int, Quote]], None] | None = None,
        interval: float = 1.0,
    ):
        self.app, self.source, self.on_quotes, self.interval = app, source, on_quotes, interval
        self.candles = CandleBuilder()
        self.steps = 0
        self.wanted: set[int] = set()
        self._lock = None
        self.stops = StopIndex()  # ARMED stop rules per instrument, checked on every step

    def _holds_lock(self, redis) -> bool:
        if self._lock is None:
            self._lock = redis.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=False)
        try:
            return self._lock.reacquire() if self._lock.owned() else self._lock.acquire()
        except (redis_lib.ConnectionError, redis_lib.TimeoutError):
            # Redis away: keep the token; a lock that outlives the outage is still ours (else it
            # expires, and whichever feed process asks first after it takes it)
            return False
        except Exception:  # noqa: BLE001  (a lock lost to expiry: try to take it fresh next time)
            self._lock = None
            return False

    def step(self, now: datetime | None = None) -> int:
        """One round; returns how many quotes it stored (0 as a standby)."""
        now = now or utcnow()
        with self.app.app_context():
            redis = get_redis()
            beat(redis, "feed")  # the standby too: /health shows every feed process alive
            if not self._holds_lock(redis):
                return 0
            try:
                if self.steps % RESUBSCRIBE_EVERY == 0:
                    self.wanted = wanted_tokens(redis) | self.stops.tokens()  # a stop on a holding too
                    redis.delete(SUBSCRIPTIONS_KEY)
                    if self.wanted:
                        redis.sadd(SUBSCRIPTIONS_KEY, *self.wanted)
                quotes = self.source(now, self.wanted)
                write_quotes(redis, quotes)
                self._check_stops(redis, quotes, now)
                if self.on_quotes is not None:
                    self.on_quotes(quotes)
                self._candles(redis, quotes, now)
                redis.set(HEARTBEAT_KEY, now.isoformat())
                self.steps += 1
                return len(quotes)
            finally:
                db.session.remove()

    def _check_stops(self, redis, quotes: Mapping[int, Quote], now: datetime) -> None:
        """Fire the stop rules this step's prices crossed (DESIGN §8); their trouble never stops the feed."""
        try:
            self.stops.on_quotes(redis, quotes, now)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError):
            raise
        except Exception:
            db.session.rollback()
            log.exception("op=feed state=stops-failed")

    def _candles(self, redis, quotes: Mapping[int, Quote], now: datetime) -> None:
        closed = self.candles.update(quotes, now)
        if closed:
            ids = dict(
                db.session.execute(
                    sa.select(Instrument.instrument_token, Instrument.id).where(
                        Instrument.instrument_token.in_([t for t, _ in closed])
                    )
                ).all()
            )
            save_bars(db.session, closed, ids)
            db.session.commit()
            # candle close: one evaluation job per bucket an ACTIVE deployment trades (a repeat queues nothing)
            runner.announce_closed(redis, [(ids[token], bar.start) for token, bar in closed if token in ids])
        publish_forming(redis, self.candles.forming(self.wanted))

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        log.info("op=feed state=started interval=%s", self.interval)
        next_at = time.monotonic()
        while not stop():
            try:
                self.step()
            except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:  # Redis away: wait for it, quietly
                log.warning("op=feed state=redis-unavailable error=%s", exc)
            except Exception:  # one bad round must not end the desk's only market-data session
                log.exception("op=feed state=step-failed")
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > 5 * self.interval:  # fell far behind: do not burst to catch up
                next_at = time.monotonic()
