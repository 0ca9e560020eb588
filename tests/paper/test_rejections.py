"""Rejections carry the reason a broker's RMS would give, word for word, and change nothing."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import Rejected, Side
from webapp.brokers.paper.exchange import PaperExchange
from webapp.extensions import db
from webapp.models import Instrument
from webapp.timeutil import IST, UTC

CODE = "PA0001"


@pytest.mark.parametrize(
    "request_, reason",
    [
        (order(quantity=0), "Quantity must be greater than zero"),
        (order(quantity=-5), "Quantity must be greater than zero"),
        (order(product="NRML"), "Product NRML is for F&O; use CNC, MIS or MTF for equity"),
        (order(order_type="LIMIT"), "A LIMIT order needs a price above zero"),
        (order(order_type="SL", price="1560.00"), "An SL order needs a trigger price above zero"),
        (order(order_type="SL-M"), "An SL-M order needs a trigger price above zero"),
        (order(order_type="LIMIT", price="1548.23"), "Price 1,548.23 is not a multiple of the tick size 0.10"),
        (order(order_type="LIMIT", price="1703.10"), "Price 1,703.10 is outside the circuit band 1,393.40–1,703.00"),
        (
            order(Side.SELL, order_type="LIMIT", price="1393.30"),
            "Price 1,393.30 is outside the circuit band 1,393.40–1,703.00",
        ),
        (order(order_type="SL-M", trigger="1560.05"), "Trigger price 1,560.05 is not a multiple of the tick size 0.10"),
        (
            order(order_type="SL-M", trigger="1540.00"),
            "Trigger price 1,540.00 for a stop-loss BUY must be above the last price 1,548.20",
        ),
        (
            order(Side.SELL, order_type="SL-M", trigger="1550.00"),
            "Trigger price 1,550.00 for a stop-loss SELL must be below the last price 1,548.20",
        ),
        (
            order(order_type="SL", trigger="1560.00", price="1559.00"),
            "Price for a stop-loss BUY must be at or above the trigger price 1,560.00",
        ),
        (order(symbol="NOPE"), "Unknown instrument NSE:NOPE"),
        (
            order(quantity=1000, product="CNC", order_type="LIMIT", price="1548.30"),
            "Insufficient funds: required ₹15,48,300.00, available ₹10,00,000.00",
        ),
        (order(Side.SELL, quantity=10, product="CNC"), "Insufficient holdings to sell 10 INFY (CNC): 0 available"),
        (order(Side.SELL, quantity=10, product="MTF"), "Insufficient holdings to sell 10 INFY (MTF): 0 available"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_rejected_with_the_brokers_reason_and_nothing_placed(exchange, infy, request_, reason):
    with pytest.raises(Rejected) as caught:
        exchange.place(CODE, request_)
    assert caught.value.reason == reason
    assert exchange.order_book(CODE) == [] and exchange.trades(CODE) == []


@pytest.mark.parametrize(
    "when",
    [
        datetime(2025, 1, 6, 9, 14, tzinfo=IST),  # Monday, before the open
        datetime(2025, 1, 6, 15, 30, tzinfo=IST),  # the close
        datetime(2025, 1, 4, 11, 0, tzinfo=IST),  # Saturday
        datetime(2025, 1, 5, 11, 0, tzinfo=IST),  # Sunday
    ],
    ids=["before-open", "at-close", "saturday", "sunday"],
)
def test_orders_are_refused_while_nse_is_closed(exchange, infy, clock, when):
    clock.now = when.astimezone(UTC)
    with pytest.raises(Rejected, match="^Market is closed: NSE equity trades 09:15–15:30 IST, Monday to Friday$"):
        exchange.place(CODE, order())


def test_the_opening_minute_trades(exchange, infy, clock):
    clock.now = datetime(2025, 1, 6, 9, 15, tzinfo=IST).astimezone(UTC)
    assert exchange.place(CODE, order())


def test_a_configured_holiday_is_closed(engine, infy, clock):
    exchange = PaperExchange(engine, clock=clock, holidays=[date(2025, 1, 6)])
    with pytest.raises(Rejected, match="^Market is closed"):
        exchange.place(CODE, order())


def test_always_open_trades_on_a_sunday_night(engine, infy, clock):
    clock.now = datetime(2025, 1, 5, 23, 0, tzinfo=IST).astimezone(UTC)
    exchange = PaperExchange(engine, clock=clock, always_open=True)
    assert exchange.place(CODE, order())


def test_new_mis_exposure_is_blocked_after_the_square_off_time_but_exits_are_not(exchange, infy, clock):
    exchange.place(CODE, order(quantity=10))
    clock.at(15, 21)
    with pytest.raises(Rejected, match="^New MIS positions are blocked after the 15:20 IST square-off; use CNC$"):
        exchange.place(CODE, order(quantity=1))
    assert exchange.place(CODE, order(Side.SELL, quantity=10))  # closing the long is allowed
    assert exchange.place(CODE, order(quantity=1, product="CNC"))


def test_a_rejection_leaves_the_funds_untouched(exchange, infy):
    before = exchange.funds(CODE)
    with pytest.raises(Rejected):
        exchange.place(CODE, order(quantity=100000, product="CNC", order_type="LIMIT", price="1548.30"))
    assert exchange.funds(CODE) == before


def test_holdings_already_promised_to_an_open_sell_cannot_be_sold_twice(exchange, infy, redis_client, clock):
    exchange.place(CODE, order(quantity=10, product="CNC"))
    exchange.place(CODE, order(Side.SELL, quantity=6, product="CNC", order_type="LIMIT", price="1600.00"))
    with pytest.raises(Rejected, match=r"^Insufficient holdings to sell 5 INFY \(CNC\): 4 available$"):
        exchange.place(CODE, order(Side.SELL, quantity=5, product="CNC"))
    assert exchange.place(CODE, order(Side.SELL, quantity=4, product="CNC"))


def test_an_instrument_with_neither_a_tick_nor_a_close_cannot_be_traded(app, exchange, factory):
    factory.instrument("NEWIPO", 999, "1.00", "0.01", None)
    with app.app_context():  # listed today: no close in the master yet
        db.session.execute(sa.update(Instrument).filter_by(tradingsymbol="NEWIPO").values(last_price=None))
        db.session.commit()
    with pytest.raises(Rejected, match="^No market price for NSE:NEWIPO yet$"):
        exchange.place(CODE, order(symbol="NEWIPO"))


def test_a_band_from_the_feed_overrides_the_master(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 10)], band=("1500.00", "1600.00")))
    with pytest.raises(Rejected, match="^Price 1,600.10 is outside the circuit band 1,500.00–1,600.00$"):
        exchange.place(CODE, order(order_type="LIMIT", price="1600.10"))
