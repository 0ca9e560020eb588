"""The feed process: quotes into Redis, one feed at a time, candles, subscriptions, paper fills."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from rq import Queue

from webapp.extensions import db, get_redis, get_rq_redis
from webapp.marketdata.store import read_quote
from webapp.marketfeed.feed import HEARTBEAT_KEY, Feed, note_interest, wanted_tokens
from webapp.marketfeed.sources import PaperSource
from webapp.models import Candle, Order, WatchlistItem
from webapp.trading import engine, states, sync

T0 = datetime(2026, 11, 20, 5, 0, 10, tzinfo=UTC)  # 10:30:10 IST, a Friday


def test_a_step_stores_every_instruments_quote_and_a_heartbeat(app, desk):
    source = PaperSource(app, seed=7)
    feed = Feed(app, source)
    assert feed.step(T0) >= 1
    with app.app_context():
        quote = read_quote(get_redis(), desk.instrument)
        low, high = desk.instrument.circuit_limits()
        assert low <= quote.last_price <= high and (quote.last_price / desk.instrument.tick_size) % 1 == 0
        assert get_redis().get(HEARTBEAT_KEY) == T0.isoformat()


def test_only_one_feed_runs(app, desk):
    first, second = Feed(app, PaperSource(app, seed=1)), Feed(app, PaperSource(app, seed=2))
    assert first.step(T0) > 0
    assert second.step(T0) == 0  # a standby while the first holds the lock
    with app.app_context():
        get_redis().delete("fanout:feed:lock")  # the first one died and its lock expired
    assert second.step(T0 + timedelta(seconds=1)) > 0


def test_closed_minutes_become_candles(app, desk):
    feed = Feed(app, PaperSource(app, seed=3))
    for second in range(0, 120, 10):
        feed.step(T0 + timedelta(seconds=second))
    with app.app_context():
        candles = db.session.execute(sa.select(Candle).order_by(Candle.start)).scalars().all()
        assert [c.start for c in candles] == [T0.replace(second=0), T0.replace(second=0) + timedelta(minutes=1)]
        for c in candles:
            assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high


def test_subscriptions_follow_positions_orders_watchlists_and_charts(app, desk, factory):
    other = factory.instrument("TCS", 11536, price="3102.50", tick="0.10")
    charted = factory.instrument("SBIN", 3045, price="951.15", tick="0.05")
    watcher = factory.user("watcher")
    client = desk.paper_client("P")
    factory.batch(watcher, [client], desk.instrument, status=states.OPEN)
    with app.app_context():
        db.session.add(WatchlistItem(user_id=watcher.id, instrument_id=other.id))
        db.session.commit()
        redis = get_redis()
        note_interest(redis, charted.instrument_token)
        assert wanted_tokens(redis) == {
            desk.instrument.instrument_token,
            other.instrument_token,
            charted.instrument_token,
        }


def test_the_feed_fills_resting_paper_orders_and_asks_for_a_sync(app, desk, factory):
    from webapp.brokers.base import DepthLevel, Quote

    client = desk.paper_client("P")
    user = factory.user("u")
    source = PaperSource(app, seed=5)
    resting = factory.batch(user, [client], desk.instrument, order_type="LIMIT", price=Decimal("1394.00"))
    with app.app_context():
        engine.send_batch(resting.id, desk.context())  # a buy far below the market rests
        sync.sync_client(client.id, desk.context())
        assert (
            db.session.execute(sa.select(Order.status).where(Order.batch_id == resting.id)).scalar_one() == states.OPEN
        )
        crossed = Quote(
            exchange="NSE",
            tradingsymbol="INFY",
            last_price=Decimal("1393.40"),
            volume=10,
            bids=(DepthLevel(Decimal("1393.30"), 500),),
            asks=(DepthLevel(Decimal("1393.40"), 500),),
        )
        source.after({desk.instrument.instrument_token: crossed})  # the market falls through the limit
        assert Queue("sync", connection=get_rq_redis()).count == 1
    desk.run_worker()
    with app.app_context():
        assert (
            db.session.execute(sa.select(Order.status).where(Order.batch_id == resting.id)).scalar_one()
            == states.COMPLETE
        )
