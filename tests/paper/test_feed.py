"""Paper mode end to end: the simulator moves the market, the store publishes it, resting orders fill."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.paper.conftest import order
from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import Side
from webapp.brokers.paper import simulate_step
from webapp.marketdata import MarketSimulator, read_quote
from webapp.models import Instrument

CODE = "PA0001"


def test_resting_orders_fill_as_the_simulated_market_moves(exchange, engine, infy, redis_client, clock):
    with Session(engine) as s:
        simulator = MarketSimulator(s.scalars(sa.select(Instrument)).all(), seed=11)
    close = Decimal("1548.20")
    below = exchange.place(CODE, order(quantity=5, order_type="LIMIT", price=str(close - Decimal("0.50"))))
    above = exchange.place(CODE, order(Side.SELL, quantity=5, order_type="LIMIT", price=str(close + Decimal("0.50"))))
    filled: list[str] = []
    for second in range(300):
        filled += simulate_step(simulator, exchange, redis_client, clock() + timedelta(seconds=second))
    assert read_quote(redis_client, infy).timestamp == clock() + timedelta(seconds=299)
    book = {o.order_id: o for o in exchange.order_book(CODE)}
    assert set(filled) == {below, above}  # a random walk of 300 steps crosses ±5 ticks both ways
    assert book[below].status is Status.COMPLETE and book[below].average_price == close - Decimal("0.50")
    assert book[above].status is Status.COMPLETE and book[above].average_price == close + Decimal("0.50")
