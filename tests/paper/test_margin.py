"""Margin by product: CNC pays in full, MIS is leveraged (5× by default), MTF part-funded (75% by default)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import Product, Rejected, Side
from webapp.brokers.paper.exchange import PaperExchange
from webapp.brokers.paper.rules import MarginPolicy

D = Decimal
CODE = "PA0001"


@pytest.fixture
def market(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 5000)], asks=[("1548.30", 5000)]))
    return exchange


@pytest.mark.parametrize(
    "product, required",
    [
        ("CNC", D("154830.00")),  # 100 × 1548.30
        ("MIS", D("30966.00")),  # a fifth
        ("MTF", D("38707.50")),  # the quarter the broker does not fund
    ],
)
def test_margin_required_by_product(market, product, required):
    assert market.margin_required(CODE, [order(quantity=100, product=product)]) == required


def test_margin_required_sums_a_basket_and_creates_nothing(market):
    basket = [
        order(quantity=100, product="MIS"),
        order(quantity=10, order_type="LIMIT", price="1540.00", product="CNC"),
    ]
    assert market.margin_required("NEWCLIENT", basket) == D("30966.00") + D("15400.00")
    assert market.order_book("NEWCLIENT") == [] and market.positions("NEWCLIENT") == []


def test_an_order_that_closes_a_position_needs_no_margin(market):
    market.place(CODE, order(Side.SELL, quantity=100))
    assert market.margin_required(CODE, [order(quantity=100)]) == D("0")
    assert market.margin_required(CODE, [order(quantity=150)]) == D("15483.00")  # only the 50 that go long


def test_a_market_order_is_valued_at_the_worst_level_it_will_reach(engine, infy, clock):
    # no tick in Redis: the master quote's asks are 32 @ 1548.30, 64 @ 1548.40, 96 @ 1548.50, ...
    exchange = PaperExchange(engine, clock=clock)
    assert exchange.margin_required(CODE, [order(quantity=100, product="MIS")]) == D("30970.00")  # 100 × 1548.50 / 5


def test_funds_follow_the_fills(market):
    market.place(CODE, order(quantity=100))  # MIS
    market.place(CODE, order(quantity=10, product="CNC"))
    funds = market.funds(CODE)
    assert funds.available_cash == D("1000000.00")  # nothing settled yet: equity at cost
    assert funds.margin_used == D("30966.00") + D("15483.00")
    assert funds.available_margin == D("953551.00")


def test_market_order_funds_are_checked_against_the_depth_it_will_take(market):
    with pytest.raises(Rejected, match="^Insufficient funds: required ₹10,83,810.00, available ₹10,00,000.00$"):
        market.place(CODE, order(quantity=700, product="CNC"))


def test_an_open_order_holds_margin_so_a_second_cannot_spend_it(market):
    market.place(CODE, order(quantity=600, order_type="LIMIT", price="1540.00", product="CNC"))  # ₹9,24,000
    with pytest.raises(Rejected, match="^Insufficient funds: required ₹1,54,000.00, available ₹76,000.00$"):
        market.place(CODE, order(quantity=100, order_type="LIMIT", price="1540.00", product="CNC"))


def test_leverage_and_mtf_funding_are_options(market, engine, clock, redis_client):
    exchange = PaperExchange.from_options(
        engine, {"clock": clock, "redis": redis_client, "mis_leverage": 4, "mtf_funded_pct": "50"}
    )
    assert exchange.margin_required(CODE, [order(quantity=100, product="MIS")]) == D("38707.50")
    assert exchange.margin_required(CODE, [order(quantity=100, product="MTF")]) == D("77415.00")


def test_margin_is_rounded_up_to_the_paisa():
    policy = MarginPolicy(mis_leverage=D(3))
    assert policy.margin(Product.MIS, D("100.00")) == D("33.34")
    assert policy.margin(Product.MTF, D("-10.01")) == D("2.51")  # shorts hold margin on their size
    assert policy.margin(Product.CNC, D("10.0001")) == D("10.0001")


@pytest.mark.parametrize("leverage, funded", [(D("0.5"), D(75)), (D(5), D(100)), (D(5), D(-1))])
def test_a_nonsense_margin_policy_is_refused(leverage, funded):
    with pytest.raises(ValueError):
        MarginPolicy(leverage, funded)


def test_the_opening_cash_is_an_option_and_ensure_account_never_resets(engine, infy, clock):
    exchange = PaperExchange(engine, clock=clock, opening_cash=D("250000"))
    assert exchange.funds("PA0009").available_cash == D("250000")
    assert exchange.ensure_account("PA0010", D("500000")).available_cash == D("500000")
    exchange.place("PA0010", order(quantity=10, product="CNC"))
    assert exchange.ensure_account("PA0010", D("900000")).margin_used == D("15483.00")
    assert exchange.funds("PA0010").available_cash == D("500000")
