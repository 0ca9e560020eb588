"""The broker's day: MIS auto square-off at 15:20 IST and the day roll (orders expire, CNC → T1 → settled)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import Product, Side
from webapp.brokers.paper.exchange import PaperExchange
from webapp.models.paper import PaperAccount, PaperOrder

D = Decimal
CODE = "PA0001"
BOOK = quote("1548.20", bids=[("1548.10", 500)], asks=[("1548.30", 500)])


@pytest.fixture
def market(exchange, infy, redis_client):
    publish(redis_client, infy, BOOK)
    return exchange


def stored_order(engine, order_id) -> PaperOrder:
    with Session(engine) as s:
        return s.execute(sa.select(PaperOrder).filter_by(order_id=order_id)).scalar_one()


def stored_account(engine, code=CODE) -> PaperAccount:
    with Session(engine) as s:
        return s.execute(sa.select(PaperAccount).filter_by(client_code=code)).scalar_one()


def test_square_off_does_nothing_before_1520_ist(market, clock):
    market.place(CODE, order(quantity=100))
    assert market.square_off_intraday(clock.at(15, 19)) == []
    assert market.positions(CODE)[0].quantity == 100


def test_at_1520_mis_is_closed_at_the_bid_and_open_mis_orders_are_cancelled(market, clock, engine):
    market.place(CODE, order(quantity=100))
    market.place(CODE, order(quantity=5, product="CNC"))
    waiting = market.place(CODE, order(quantity=10, order_type="LIMIT", price="1500.00"))
    placed = market.square_off_intraday(clock.at(15, 20))
    assert len(placed) == 1
    squared = next(o for o in market.order_book(CODE) if o.order_id == placed[0])
    assert (squared.side, squared.quantity, squared.status, squared.average_price, squared.status_message) == (
        Side.SELL,
        100,
        Status.COMPLETE,
        D("1548.10"),
        "Auto square-off at 15:20 IST",
    )
    assert stored_order(engine, waiting).status == "CANCELLED"
    positions = {p.product: p for p in market.positions(CODE)}
    assert positions[Product.MIS].quantity == 0
    assert positions[Product.MIS].realised_pnl == D("-20.00")  # (1548.10 − 1548.30) × 100
    assert positions[Product.CNC].quantity == 5
    assert market.square_off_intraday(clock.at(15, 25)) == []  # nothing left to do


def test_square_off_flattens_in_full_past_the_visible_depth(market, clock, redis_client, infy):
    market.place(CODE, order(Side.SELL, quantity=300))
    publish(redis_client, infy, quote("1550.00", asks=[("1550.10", 100), ("1550.50", 50)]))
    (placed,) = market.square_off_intraday(clock.at(15, 20))
    assert [(t.quantity, t.price) for t in market.trades(CODE) if t.order_id == placed] == [
        (100, D("1550.10")),
        (50, D("1550.50")),
        (150, D("1550.50")),
    ]
    assert market.positions(CODE)[0].quantity == 0


def test_the_square_off_time_is_an_option(engine, infy, clock, redis_client):
    exchange = PaperExchange.from_options(engine, {"redis": redis_client, "clock": clock, "square_off_time": "15:10"})
    exchange.place(CODE, order(quantity=10))
    assert len(exchange.square_off_intraday(clock.at(15, 10))) == 1


def test_cnc_buys_become_t1_holdings_at_the_roll_then_settle_at_the_next(market, clock, engine):
    market.place(CODE, order(quantity=10, product="CNC"))
    assert market.day_roll(clock.at(16, 0)) == [CODE]
    (holding,) = market.holdings(CODE)
    assert (holding.quantity, holding.t1_quantity, holding.average_price) == (0, 10, D("1548.30"))
    assert market.positions(CODE) == [] and market.order_book(CODE) == [] and market.trades(CODE) == []
    funds = market.funds(CODE)
    assert (funds.available_cash, funds.margin_used) == (D("984517.00"), D("0"))  # 10,00,000 − 10 × 1548.30
    assert market.day_roll(clock.at(18, 0)) == []  # once per IST date
    assert market.day_roll(clock.at(16, 0, days=1)) == [CODE]
    (holding,) = market.holdings(CODE)
    assert (holding.quantity, holding.t1_quantity) == (10, 0)


def test_the_roll_expires_open_orders_and_squares_off_leftover_mis(market, clock, engine):
    market.place(CODE, order(quantity=100))
    waiting = market.place(CODE, order(quantity=10, order_type="LIMIT", price="1500.00", product="CNC"))
    market.day_roll(clock.at(16, 0))
    expired = stored_order(engine, waiting)
    assert (expired.status, expired.status_message) == ("CANCELLED", "Expired at the end of the day")
    assert market.positions(CODE) == [] and market.holdings(CODE) == []
    account = stored_account(engine)
    assert account.opening_balance == D("999980.00")  # the square-off lost ₹20
    assert market.funds(CODE).available_margin == D("999980.00")


def test_realised_pnl_joins_the_opening_balance(market, clock, redis_client, infy, engine):
    market.place(CODE, order(quantity=100))
    publish(redis_client, infy, quote("1560.10", bids=[("1560.00", 500)], asks=[("1560.10", 500)]))
    market.place(CODE, order(Side.SELL, quantity=100))
    assert market.positions(CODE)[0].realised_pnl == D("1170.00")
    market.day_roll(clock.at(16, 0))
    assert stored_account(engine).opening_balance == D("1001170.00")
    assert market.funds(CODE).opening_balance == D("1001170.00")


def test_t1_holdings_can_be_sold_the_next_day_and_the_pnl_shows_in_positions(market, clock, redis_client, infy):
    market.place(CODE, order(quantity=10, product="CNC"))
    market.day_roll(clock.at(16, 0))
    clock.at(10, 0, days=1)
    publish(redis_client, infy, quote("1600.00", bids=[("1600.00", 500)], asks=[("1600.10", 500)]))
    market.place(CODE, order(Side.SELL, quantity=4, product="CNC"))
    (position,) = market.positions(CODE)
    assert (position.quantity, position.sell_quantity, position.realised_pnl) == (0, 4, D("206.80"))
    (holding,) = market.holdings(CODE)
    assert (holding.quantity, holding.t1_quantity) == (0, 6)


def test_mtf_holdings_cost_the_trader_only_the_unfunded_share(market, clock):
    market.place(CODE, order(quantity=100, product="MTF"))
    assert market.funds(CODE).margin_used == D("38707.50")  # 25% of 1,54,830
    market.day_roll(clock.at(16, 0))
    funds = market.funds(CODE)
    assert (funds.available_cash, funds.margin_used) == (D("961292.50"), D("0"))
    assert market.holdings(CODE)[0].t1_quantity == 100
