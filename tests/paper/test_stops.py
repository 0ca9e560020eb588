"""Stop-loss orders: TRIGGER_PENDING until the last price reaches the trigger, then LIMIT / MARKET."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import Rejected, Side

D = Decimal
CODE = "PA0001"


@pytest.fixture
def long_100(exchange, infy, redis_client):
    """An MIS long of 100 bought at 1548.30, the market quoted 1548.20."""
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 500)], asks=[("1548.30", 500)]))
    exchange.place(CODE, order(quantity=100))
    return exchange


def get(exchange, order_id):
    return next(o for o in exchange.order_book(CODE) if o.order_id == order_id)


def test_an_sl_m_sell_waits_then_sells_at_the_bid_once_the_price_falls_to_the_trigger(long_100):
    stop = long_100.place(CODE, order(Side.SELL, quantity=100, order_type="SL-M", trigger="1530.00"))
    assert get(long_100, stop).status is Status.TRIGGER_PENDING
    assert long_100.match_resting([quote("1530.10", bids=[("1530.00", 500)])]) == []
    assert get(long_100, stop).status is Status.TRIGGER_PENDING
    assert long_100.match_resting([quote("1530.00", bids=[("1529.80", 60), ("1529.50", 500)])]) == [stop]
    fired = get(long_100, stop)
    assert (fired.status, fired.filled_quantity) == (Status.COMPLETE, 100)
    assert [(t.quantity, t.price) for t in long_100.trades(CODE) if t.order_id == stop] == [
        (60, D("1529.80")),
        (40, D("1529.50")),
    ]
    assert long_100.positions(CODE)[0].quantity == 0


def test_an_sl_sell_triggers_into_a_limit_that_rests_when_the_bid_is_below_it(long_100):
    stop = long_100.place(CODE, order(Side.SELL, quantity=100, order_type="SL", trigger="1530.00", price="1529.00"))
    long_100.match_resting([quote("1529.50", bids=[("1528.00", 500)])])
    triggered = get(long_100, stop)
    assert (triggered.status, triggered.filled_quantity) == (Status.OPEN, 0)
    long_100.match_resting([quote("1529.00", bids=[("1529.20", 500)])])
    assert [(t.quantity, t.price) for t in long_100.trades(CODE) if t.order_id == stop] == [(100, D("1529.00"))]


def test_an_sl_buy_covers_a_short_when_the_price_rises(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 500)], asks=[("1548.30", 500)]))
    exchange.place(CODE, order(Side.SELL, quantity=20))
    stop = exchange.place(CODE, order(Side.BUY, quantity=20, order_type="SL", trigger="1560.00", price="1561.00"))
    assert exchange.match_resting([quote("1559.90", asks=[("1560.00", 500)])]) == []
    assert exchange.match_resting([quote("1560.00", asks=[("1560.20", 5), ("1561.10", 500)])]) == [stop]
    partly = get(exchange, stop)
    assert (partly.status, partly.filled_quantity) == (Status.PARTIAL, 5)  # 1561.10 is past its limit


def test_an_untriggered_stop_can_be_moved_and_is_checked_against_the_market_again(long_100):
    stop = long_100.place(CODE, order(Side.SELL, quantity=100, order_type="SL-M", trigger="1530.00"))
    long_100.modify(CODE, stop, trigger_price=D("1540.00"))
    assert get(long_100, stop).trigger_price == D("1540.00")
    with pytest.raises(Rejected, match="^Trigger price 1,550.00 for a stop-loss SELL must be below the last price"):
        long_100.modify(CODE, stop, trigger_price=D("1550.00"))


def test_a_stop_blocks_margin_at_its_trigger_while_it_waits(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 500)], asks=[("1548.30", 500)]))
    free = exchange.funds(CODE).available_margin
    exchange.place(CODE, order(Side.BUY, quantity=100, order_type="SL-M", trigger="1600.00"))
    assert free - exchange.funds(CODE).available_margin == D("32000.00")  # 100 × 1600 × 20%
