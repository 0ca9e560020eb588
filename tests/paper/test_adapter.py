"""The paper adapter through the port: registry, every method, latency, isolation from the desk's session."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.paper.conftest import order, publish, quote
from webapp.brokers import broker_class, create_broker
from webapp.brokers.base import (
    Account,
    InstrumentRef,
    InvalidInput,
    Product,
    Rejected,
    Side,
    Unavailable,
)
from webapp.brokers.base import (
    BrokerOrderStatus as Status,
)
from webapp.brokers.paper import PaperBroker, ensure_account
from webapp.brokers.paper.exchange import PaperExchange
from webapp.extensions import db
from webapp.models import Client

D = Decimal
ACCOUNT = Account(client_code="PA0001", client_id=1)


@pytest.fixture
def broker(engine, redis_client, clock, infy):
    publish(redis_client, infy, quote("1548.20", bids=[("1548.10", 500)], asks=[("1548.30", 500)]))
    return create_broker("paper", ACCOUNT, {"engine": engine, "redis": redis_client, "clock": clock})


def test_the_paper_broker_is_registered_with_its_card():
    cls = broker_class("paper")
    assert cls is PaperBroker
    assert (cls.name, cls.label, cls.login_kind, cls.credential_fields, cls.tag_max_length) == (
        "paper",
        "Paper (simulated)",
        "none",
        (),
        20,
    )
    assert cls.rate_limits.orders_per_second == 50


def test_every_port_method_answers_in_port_types(broker, infy):
    order_id = broker.place(order(quantity=10, tag="T1"))
    assert [o.order_id for o in broker.order_book()] == [order_id]
    assert broker.orders_by_tag("T1")[0].status is Status.COMPLETE
    assert [(t.quantity, t.price) for t in broker.trades()] == [(10, D("1548.30"))]
    (position,) = broker.positions()
    assert (position.product, position.quantity, position.last_price, position.unrealised_pnl) == (
        Product.MIS,
        10,
        D("1548.20"),
        D("-1.00"),
    )
    assert broker.holdings() == []
    assert broker.funds().margin_used == D("3096.60")
    assert broker.margin_required([order(quantity=10, product="CNC")]) == D("15483.00")
    ref = InstrumentRef("NSE", "INFY", 1594, infy.instrument_token)
    assert broker.quotes([ref, InstrumentRef("NSE", "NOPE", 1)])["NSE:INFY"].last_price == D("1548.20")
    assert [(row.tradingsymbol, row.tick_size) for row in broker.instruments()] == [("INFY", D("0.10"))]
    resting = broker.place(order(Side.SELL, quantity=10, order_type="LIMIT", price="1560.00"))
    assert broker.modify(resting, price=D("1561.00")) == resting
    assert broker.cancel(resting) == resting
    with pytest.raises(Rejected, match="can no longer be cancelled"):
        broker.cancel(resting)


def test_a_tag_longer_than_twenty_characters_is_invalid_input(broker):
    with pytest.raises(InvalidInput, match="^Paper \\(simulated\\) order tags are 1 to 20 letters and digits$"):
        broker.place(order(tag="X" * 21))
    assert broker.place(order(tag="X" * 20))


def test_latency_and_seeded_jitter_are_slept_before_every_call(engine, redis_client, clock, infy):
    def slept_with(seed):
        naps: list[float] = []
        paper = PaperBroker(
            ACCOUNT,
            {
                "engine": engine,
                "redis": redis_client,
                "clock": clock,
                "latency_ms": 100,
                "jitter_ms": 50,
                "latency_seed": seed,
                "sleep": naps.append,
            },
        )
        paper.funds()
        paper.place(order(quantity=1))
        paper.order_book()
        return naps

    naps = slept_with(7)
    assert len(naps) == 3 and all(0.100 <= nap <= 0.150 for nap in naps)
    assert slept_with(7) == naps  # reproducible for benchmarks
    assert slept_with(8) != naps


def test_latency_really_waits(engine, redis_client, clock, infy):
    paper = PaperBroker(ACCOUNT, {"engine": engine, "redis": redis_client, "clock": clock, "latency_ms": 60})
    started = time.perf_counter()
    paper.funds()
    assert time.perf_counter() - started >= 0.06


def test_the_exchange_neither_sees_nor_commits_the_desks_pending_work(app, broker):
    with app.app_context():
        db.session.add(Client(name="Pending", broker="paper", client_code="PX1"))
        broker.place(order(quantity=1))
        db.session.rollback()
        assert db.session.execute(sa.select(Client).filter_by(client_code="PX1")).first() is None
    assert len(broker.order_book()) == 1


def test_a_broken_database_is_unavailable_not_rejected(clock):
    paper = PaperBroker(
        ACCOUNT, {"engine": sa.create_engine("sqlite:////nonexistent/dir/book.db"), "redis": None, "clock": clock}
    )
    with pytest.raises(Unavailable, match="^Paper exchange database unavailable$"):
        paper.place(order())


def test_a_redis_that_is_down_makes_the_exchange_unavailable(engine, clock, infy):
    paper = PaperBroker(ACCOUNT, {"engine": engine, "redis_url": "redis://127.0.0.1:1/0", "clock": clock})
    with pytest.raises(Unavailable, match="^Paper exchange cannot read quotes"):
        paper.place(order())
    assert paper.order_book() == []


def test_ensure_account_opens_the_demo_account_once(app):
    with app.app_context():
        assert ensure_account("DEMO1", D("500000")).available_cash == D("500000")
        assert ensure_account("DEMO1", D("1")).available_cash == D("500000")


def test_concurrent_orders_never_spend_the_same_rupee_twice(engine, redis_client, clock, infy):
    """Ten threads, ten connections, cash for three orders: exactly three are accepted."""
    publish(redis_client, infy, quote("1548.20", asks=[("1548.30", 5000)]))
    exchange = PaperExchange(engine, redis=redis_client, clock=clock)
    exchange.ensure_account("RACE", D("500000"))  # 3 × 1,54,830 fits, 4 do not
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def buy():
        start.wait()
        try:
            exchange.place("RACE", order(quantity=100, product="CNC"))
            outcomes.append("placed")
        except Rejected as exc:
            outcomes.append(exc.reason.split(":")[0])

    threads = [threading.Thread(target=buy) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["Insufficient funds"] * 7 + ["placed"] * 3
    assert exchange.funds("RACE").available_margin == D("500000") - 3 * D("154830.00")
