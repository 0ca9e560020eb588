"""Limit chase: resting LIMIT children follow the LTP a step per interval, up to the distance, then
are left or converted to market."""

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers.base import DepthLevel, Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.store import write_quotes
from webapp.models import Batch, Order
from webapp.timeutil import utcnow
from webapp.trading import chase, engine, states, sync
from webapp.trading.chase import chase_price


def test_chase_price_steps_toward_the_ltp_within_the_cap():
    tick = Decimal("0.05")
    assert chase_price("BUY", Decimal("100.00"), Decimal("100.12"), tick, 10) == Decimal("100.15")
    assert chase_price("BUY", Decimal("100.00"), Decimal("101.00"), tick, 10) == Decimal("100.50")
    assert chase_price("SELL", Decimal("100.00"), Decimal("99.93"), tick, 10) == Decimal("99.90")


def market(app, desk, ltp: str):
    last, tick = Decimal(ltp), desk.instrument.tick_size
    with app.app_context():  # the market is there, but the paper book only fills what crosses its depth
        write_quotes(
            get_redis(),
            {
                desk.instrument.instrument_token: Quote(
                    "NSE", "INFY", last, bids=(DepthLevel(last - tick, 10),), asks=(DepthLevel(last + tick, 10),)
                )
            },
        )


def children(app, batch_id):
    with app.app_context():
        return db.session.execute(
            sa.select(Order.price, Order.order_type, Order.status).where(Order.batch_id == batch_id)
        ).all()


def test_a_batch_chases_then_converts_to_market(app, desk, factory):
    paper = desk.paper_client("P")
    market(app, desk, "1600.00")
    batch = factory.batch(
        factory.user("root", role="admin"), [paper], desk.instrument, order_type="LIMIT", price=Decimal("1590.00")
    )
    with app.app_context():
        stored = db.session.get(Batch, batch.id)
        stored.price, stored.chase_seconds, stored.chase_max_ticks, stored.chase_then = (
            Decimal("1590.00"),
            5,
            20,
            "market",
        )
        db.session.commit()
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    assert children(app, batch.id) == [(Decimal("1590.0000"), "LIMIT", states.OPEN)]
    now = utcnow()
    with app.app_context():
        assert chase.chase(desk.context(), now) == 1  # toward 1600.00, capped at 20 ticks: 1592.00
    assert children(app, batch.id)[0][0] == Decimal("1592.0000")
    with app.app_context():
        assert chase.chase(desk.context(), now + timedelta(seconds=1)) == 0  # not due yet
        assert chase.chase(desk.context(), now + timedelta(seconds=6)) == 1  # at the cap: to market
        sync.sync_client(paper.id, desk.context())
    price, order_type, status = children(app, batch.id)[0]
    assert order_type == "MARKET" and status == states.COMPLETE
