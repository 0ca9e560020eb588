"""Fills: MARKET at the touch with slippage from depth, IOC-style remainders, LIMIT resting and crossing."""

from __future__ import annotations

from decimal import Decimal

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import Side

D = Decimal
CODE = "PA0001"


def get(exchange, order_id, code=CODE):
    return next(o for o in exchange.order_book(code) if o.order_id == order_id)


def fills(exchange, order_id, code=CODE):
    return [(t.quantity, t.price) for t in exchange.trades(code) if t.order_id == order_id]


def test_a_market_buy_fills_at_the_best_ask(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 100)], asks=[("1548.30", 100)]))
    placed = get(exchange, exchange.place(CODE, order(quantity=40)))
    assert (placed.status, placed.filled_quantity, placed.average_price) == (Status.COMPLETE, 40, D("1548.30"))
    assert fills(exchange, placed.order_id) == [(40, D("1548.30"))]


def test_a_market_sell_fills_at_the_best_bid(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 100)], asks=[("1548.30", 100)]))
    placed = get(exchange, exchange.place(CODE, order(Side.SELL, quantity=40)))
    assert placed.average_price == D("1548.10")


def test_a_large_market_order_walks_the_depth_and_pays_the_slippage(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 50), ("1548.40", 20), ("1548.60", 100)]))
    placed = get(exchange, exchange.place(CODE, order(quantity=100)))
    assert fills(exchange, placed.order_id) == [(50, D("1548.30")), (20, D("1548.40")), (30, D("1548.60"))]
    # (50 × 1548.30 + 20 × 1548.40 + 30 × 1548.60) / 100
    assert placed.average_price == D("1548.41")
    assert placed.status is Status.COMPLETE


def test_depth_too_short_fills_part_and_cancels_the_rest_of_a_market_order(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 30), ("1548.40", 20)]))
    placed = get(exchange, exchange.place(CODE, order(quantity=80)))
    assert (placed.status, placed.filled_quantity) == (Status.CANCELLED, 50)
    assert placed.status_message == "30 of 80 cancelled: no more depth within the market protection"
    assert exchange.positions(CODE)[0].quantity == 50


def test_market_protection_stops_the_walk_five_percent_from_the_last_price(exchange, infy, redis_client):
    # 1548.20 × 1.05 = 1625.61 → the worst acceptable price is 1625.60
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 10), ("1625.60", 10), ("1625.70", 10)]))
    placed = get(exchange, exchange.place(CODE, order(quantity=30)))
    assert fills(exchange, placed.order_id) == [(10, D("1548.30")), (10, D("1625.60"))]
    assert placed.status is Status.CANCELLED


def test_no_sellers_at_the_upper_circuit_means_nothing_fills(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1703.00", bids=[("1703.00", 900)], asks=[]))
    placed = get(exchange, exchange.place(CODE, order(quantity=10)))
    assert (placed.status, placed.filled_quantity) == (Status.CANCELLED, 0)
    assert exchange.positions(CODE) == []


def test_without_a_tick_the_exchange_quotes_the_master_close_one_tick_wide(exchange, infy):
    bought = get(exchange, exchange.place(CODE, order(quantity=5)))
    sold = get(exchange, exchange.place(CODE, order(Side.SELL, quantity=5)))
    assert (bought.average_price, sold.average_price) == (D("1548.30"), D("1548.10"))


def test_a_limit_below_the_ask_rests_then_fills_at_its_own_price_when_crossed(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 100)], asks=[("1548.30", 100)]))
    order_id = exchange.place(CODE, order(quantity=10, order_type="LIMIT", price="1545.00"))
    assert get(exchange, order_id).status is Status.OPEN
    assert exchange.match_resting([quote("1547.00", asks=[("1546.00", 100)])]) == []  # not crossed yet
    crossed = quote("1544.00", bids=[("1543.90", 10)], asks=[("1544.10", 100)])
    assert exchange.match_resting([crossed]) == [order_id]
    assert get(exchange, order_id).status is Status.COMPLETE
    assert fills(exchange, order_id) == [(10, D("1545.00"))]  # its price, not the 1544.10 ask


def test_a_resting_limit_fills_partly_when_the_crossing_side_is_thin(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 100)]))
    order_id = exchange.place(CODE, order(quantity=100, order_type="LIMIT", price="1545.00"))
    exchange.match_resting([quote("1545.00", asks=[("1545.00", 30), ("1545.10", 500)])])
    assert (get(exchange, order_id).status, get(exchange, order_id).filled_quantity) == (Status.PARTIAL, 30)
    exchange.match_resting([quote("1544.00", asks=[("1544.00", 70), ("1544.50", 10)])])
    assert get(exchange, order_id).status is Status.COMPLETE
    assert fills(exchange, order_id) == [(30, D("1545.00")), (70, D("1545.00"))]


def test_a_marketable_limit_takes_the_depth_up_to_its_price_and_rests_the_rest(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 10), ("1548.50", 10), ("1549.00", 50)]))
    order_id = exchange.place(CODE, order(quantity=50, order_type="LIMIT", price="1548.50"))
    placed = get(exchange, order_id)
    assert fills(exchange, order_id) == [(10, D("1548.30")), (10, D("1548.50"))]  # price improvement on 10
    assert (placed.status, placed.filled_quantity) == (Status.PARTIAL, 20)


def test_an_ioc_limit_cancels_what_does_not_match_at_once(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 10), ("1549.00", 50)]))
    placed = get(
        exchange, exchange.place(CODE, order(quantity=30, order_type="LIMIT", price="1548.50", validity="IOC"))
    )
    assert (placed.status, placed.filled_quantity) == (Status.CANCELLED, 10)
    assert placed.status_message == "20 of 30 cancelled: not matched immediately (IOC)"


def test_a_resting_sell_limit_fills_when_the_bid_reaches_it(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 100)], asks=[("1548.30", 100)]))
    order_id = exchange.place(CODE, order(Side.SELL, quantity=10, order_type="LIMIT", price="1560.00"))
    assert exchange.match_resting([quote("1559.00", bids=[("1559.90", 100)])]) == []
    assert exchange.match_resting([quote("1561.00", bids=[("1560.50", 100)])]) == [order_id]
    assert fills(exchange, order_id) == [(10, D("1560.00"))]


def test_match_resting_ignores_quotes_for_other_instruments(exchange, infy, factory, redis_client):
    factory.instrument("TCS", 11536, "3102.50", "0.10", "10")
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 100)]))
    order_id = exchange.place(CODE, order(quantity=10, order_type="LIMIT", price="1545.00"))
    tcs = quote("1500.00", asks=[("1500.00", 100)], symbol="TCS", band=("2792.30", "3412.70"))
    assert exchange.match_resting([tcs]) == []
    assert get(exchange, order_id).status is Status.OPEN
