"""Modify, cancel and the order tag: the order book behaves like a broker's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.paper.conftest import order, publish, quote
from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import OrderType, Rejected, Side

D = Decimal
CODE = "PA0001"


@pytest.fixture
def book(exchange, infy, redis_client):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 100)], asks=[("1548.30", 100), ("1548.40", 100)]))
    return exchange


def get(exchange, order_id, code=CODE):
    return next(o for o in exchange.order_book(code) if o.order_id == order_id)


def resting(exchange, quantity=10, price="1540.00", **kw):
    return exchange.place(CODE, order(quantity=quantity, order_type="LIMIT", price=price, **kw))


def test_cancel_an_open_order_and_its_margin_comes_back(book):
    free = book.funds(CODE).available_margin
    order_id = resting(book, quantity=100)
    assert book.funds(CODE).available_margin == free - D("30800.00")  # 100 × 1540 × 20%
    assert book.cancel(CODE, order_id) == order_id
    cancelled = get(book, order_id)
    assert (cancelled.status, cancelled.status_message) == (Status.CANCELLED, "Cancelled on request")
    assert book.funds(CODE).available_margin == free


def test_a_complete_order_cannot_be_cancelled_or_modified(book):
    order_id = book.place(CODE, order(quantity=1))
    with pytest.raises(Rejected, match=f"^Order {order_id} is COMPLETE and can no longer be cancelled$"):
        book.cancel(CODE, order_id)
    with pytest.raises(Rejected, match=f"^Order {order_id} is COMPLETE and can no longer be modified$"):
        book.modify(CODE, order_id, price=D("1541.00"))


def test_an_unknown_order_and_another_clients_order_are_not_found(book):
    theirs = resting(book)
    with pytest.raises(Rejected, match="^Order NOPE not found$"):
        book.cancel(CODE, "NOPE")
    with pytest.raises(Rejected, match=f"^Order {theirs} not found$"):
        book.cancel("PA0002", theirs)
    assert get(book, theirs).status is Status.OPEN


def test_modify_the_price_through_the_ask_fills_it_against_the_depth(book):
    order_id = resting(book, quantity=250)
    book.modify(CODE, order_id, price=D("1548.40"))
    modified = get(book, order_id)
    assert (modified.status, modified.filled_quantity, modified.price) == (Status.PARTIAL, 200, D("1548.40"))
    assert [(t.quantity, t.price) for t in book.trades(CODE)] == [(100, D("1548.30")), (100, D("1548.40"))]


def test_modify_quantity_and_price_of_a_resting_order(book):
    order_id = resting(book)
    book.modify(CODE, order_id, quantity=25, price=D("1541.50"))
    modified = get(book, order_id)
    assert (modified.status, modified.quantity, modified.price) == (Status.OPEN, 25, D("1541.50"))


def test_modify_to_market_executes_it_at_once(book):
    order_id = resting(book)
    book.modify(CODE, order_id, order_type=OrderType.MARKET)
    modified = get(book, order_id)
    assert (modified.status, modified.average_price, modified.price) == (Status.COMPLETE, D("1548.30"), None)


def test_modify_below_the_filled_quantity_is_refused(book):
    order_id = resting(book, quantity=50)
    book.match_resting([quote("1540.00", asks=[("1540.00", 30)])])
    with pytest.raises(Rejected, match="^Quantity must be more than the 30 already filled$"):
        book.modify(CODE, order_id, quantity=30)
    with pytest.raises(Rejected, match="^Quantity must be greater than zero$"):
        book.modify(CODE, resting(book), quantity=0)


def test_modify_rechecks_tick_band_and_funds_and_leaves_the_order_as_it_was(book):
    order_id = resting(book, product="CNC")
    with pytest.raises(Rejected, match="^Price 1,540.05 is not a multiple of the tick size 0.10$"):
        book.modify(CODE, order_id, price=D("1540.05"))
    with pytest.raises(Rejected, match="^Price 1,800.00 is outside the circuit band 1,393.40–1,703.00$"):
        book.modify(CODE, order_id, price=D("1800.00"))
    with pytest.raises(Rejected, match=r"^Insufficient funds: required ₹15,40,000.00, available ₹10,00,000.00$"):
        book.modify(CODE, order_id, quantity=1000)  # its own ₹15,400 block is not counted twice
    unchanged = get(book, order_id)
    assert (unchanged.quantity, unchanged.price, unchanged.status) == (10, D("1540.00"), Status.OPEN)


def test_orders_by_tag_finds_only_this_clients_order_with_that_tag(book):
    mine = book.place(CODE, order(quantity=1, tag="B42C7"))
    resting(book, tag="B42C8")
    book.place("PA0002", order(quantity=1, tag="B42C7"))
    found = book.orders_by_tag(CODE, "B42C7")
    assert [(o.order_id, o.tag) for o in found] == [(mine, "B42C7")]
    assert book.orders_by_tag(CODE, "NOSUCH") == []


def test_order_ids_are_unique_and_carry_the_trade_date(book):
    ids = [book.place(CODE, order(quantity=1, side=side)) for side in (Side.BUY, Side.SELL, Side.BUY)]
    assert len(set(ids)) == 3 and all(i.startswith("P250106") for i in ids)
    assert [o.order_id for o in book.order_book(CODE)] == ids
