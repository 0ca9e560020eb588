"""The Dhan adapter against its emulator over real HTTP (loopback), no mocks."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pyotp
import pytest
import sqlalchemy as sa

from tests.brokers.dhan_fixtures import INFY, SBIN, desk_account, order_request
from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.dhan import DhanEmulator
from webapp.brokers.base import (
    Account,
    AuthExpired,
    BrokerOrderStatus,
    BrokerSession,
    InstrumentRef,
    InvalidInput,
    OrderType,
    Product,
    RateLimited,
    Rejected,
    Side,
    Unavailable,
    Validity,
)
from webapp.brokers.dhan.adapter import DhanBroker
from webapp.extensions import db
from webapp.models import Client, Order
from webapp.timeutil import UTC, utcnow
from webapp.trading import engine, states
from webapp.trading.context import build_context
from webapp.trading.sessions import store_session
from webapp.vault import current_vault

HANG = 0.8
TIMEOUT = 0.3


@pytest.fixture(scope="module")
def server():
    emulator = DhanEmulator(quotes_per_second=1000)
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
def emu(server) -> DhanEmulator:
    server.app.reset(FaultPlan(hang_seconds=HANG))
    return server.app


def make(server, creds: dict, *, session: BrokerSession | None = None, **options) -> DhanBroker:
    code, credentials, live = desk_account(creds)
    opts = {
        "base_url": server.url,
        "auth_url": server.url,
        "instruments_url": server.url + "/api-scrip-master.csv",
        "quote_interval": 0,
        "timeout": 2,
        **options,
    }
    return DhanBroker(Account(code, credentials, session or live), opts)


@pytest.fixture
def creds(emu) -> dict:
    return emu.add_account(cash="500000", holdings={"SBIN": 20})


@pytest.fixture
def broker(server, creds) -> DhanBroker:
    return make(server, creds)


# ---------------------------------------------------------------------------------------------- orders


def test_market_order_fills_and_carries_the_tag_as_correlation_id(emu, creds, broker):
    order_id = broker.place(order_request(INFY, quantity=3, tag="Tag0000001"))
    body = emu.last_body("/v2/orders")
    headers = emu.last_headers("/v2/orders")
    assert body["correlationId"] == "Tag0000001" and body["securityId"] == "1594"
    assert body["exchangeSegment"] == "NSE_EQ" and body["productType"] == "CNC" and body["orderType"] == "MARKET"
    assert body["dhanClientId"] == creds["client_id"]
    assert headers["Access-Token"] == creds["access_token"] and headers["Client-Id"] == creds["client_id"]
    [order] = broker.order_book()
    assert order.order_id == order_id and order.status is BrokerOrderStatus.COMPLETE and order.raw_status == "TRADED"
    assert order.tag == "Tag0000001" and order.filled_quantity == 3 and order.average_price == Decimal("1548.2")
    assert order.placed_at is not None and order.placed_at.tzinfo is not None
    assert emu.ledger.count(creds["client_id"], "Tag0000001") == 1


def test_products_order_types_modify_and_cancel(emu, broker):
    limit_id = broker.place(
        order_request(SBIN, product=Product.MIS, order_type=OrderType.LIMIT, price="700.00", quantity=4)
    )
    assert emu.last_body("/v2/orders")["productType"] == "INTRADAY"
    stop_id = broker.place(
        order_request(INFY, side=Side.SELL, product=Product.NRML, order_type=OrderType.SLM, trigger="1400.00")
    )
    assert emu.last_body("/v2/orders")["orderType"] == "STOP_LOSS_MARKET"
    book = {o.order_id: o for o in broker.order_book()}
    assert book[limit_id].status is BrokerOrderStatus.OPEN and book[limit_id].price == Decimal("700")
    assert book[stop_id].status is BrokerOrderStatus.TRIGGER_PENDING and book[stop_id].product is Product.NRML
    # modify echoes the unchanged fields; a marketable price fills
    assert broker.modify(limit_id, price=Decimal("720.50")) == limit_id
    sent = emu.last_body(f"/v2/orders/{limit_id}")
    assert sent["quantity"] == 4 and sent["orderType"] == "LIMIT" and Decimal(str(sent["price"])) == Decimal("720.50")
    broker.modify(limit_id, price=Decimal("955.00"), validity=Validity.DAY)
    assert {o.order_id: o for o in broker.order_book()}[limit_id].status is BrokerOrderStatus.COMPLETE
    assert broker.cancel(stop_id) == stop_id
    assert {o.order_id: o for o in broker.order_book()}[stop_id].status is BrokerOrderStatus.CANCELLED
    with pytest.raises(Rejected):
        broker.cancel(stop_id)  # already final
    with pytest.raises(Rejected):
        broker.modify(limit_id, price=Decimal("900.00"))


def test_stop_triggers_when_the_price_moves(emu, broker):
    order_id = broker.place(order_request(INFY, order_type=OrderType.SL, price="1601.00", trigger="1600.00"))
    assert broker.order_book()[0].status is BrokerOrderStatus.TRIGGER_PENDING
    emu.set_price("INFY", "1600.50")
    [order] = broker.order_book()
    assert order.order_id == order_id and order.status is BrokerOrderStatus.COMPLETE
    assert order.average_price == Decimal("1600.5")


def test_a_client_without_the_cash_is_rejected_by_the_broker(emu, server):
    poor = emu.add_account(cash="100")
    broker = make(server, poor)
    with pytest.raises(Rejected, match="Margin Shortfall"):
        broker.place(order_request(INFY, quantity=1, tag="Poor000001"))
    assert emu.ledger.count(poor["client_id"]) == 0
    [order] = broker.order_book()
    assert order.status is BrokerOrderStatus.REJECTED and "insufficient" in (order.status_message or "")


def test_input_refusals(emu, broker):
    with pytest.raises(Rejected, match="tick"):
        broker.place(order_request(INFY, order_type=OrderType.LIMIT, price="1500.03"))
    with pytest.raises(InvalidInput):
        broker.place(order_request(INFY, tag="bad-tag"))  # the desk's own check, before a byte is sent
    with pytest.raises(InvalidInput):
        broker.place(order_request({**INFY, "exchange": "LSE"}))
    assert emu.ledger.count() == 0


# ---------------------------------------------------------------------------------- portfolio and data


def test_trades_positions_holdings_and_funds(emu, creds, broker):
    funds_before = broker.funds()
    assert funds_before.available_cash == Decimal("500000") and isinstance(funds_before.available_cash, Decimal)
    broker.place(order_request(INFY, quantity=2, product=Product.MIS))
    broker.place(order_request(INFY, side=Side.SELL, quantity=1, product=Product.MIS))
    trades = broker.trades()
    assert [(t.side, t.quantity, t.price) for t in trades] == [
        (Side.BUY, 2, Decimal("1548.2")),
        (Side.SELL, 1, Decimal("1548.2")),
    ]
    assert trades[0].filled_at is not None and trades[0].filled_at.tzinfo is not None
    [position] = broker.positions()
    assert position.tradingsymbol == "INFY" and position.product is Product.MIS and position.quantity == 1
    assert position.buy_quantity == 2 and position.sell_quantity == 1 and position.average_price == Decimal("1548.2")
    [holding] = broker.holdings()
    assert holding.tradingsymbol == "SBIN" and holding.quantity == 20 and holding.isin == "INE062A01020"
    after = broker.funds()
    assert after.available_cash == Decimal("500000") - Decimal("1548.2")
    raw = emu.last_body("/v2/fundlimit")
    assert raw == {}  # a GET: no body


def test_empty_holdings_read_as_none(emu, server):
    assert make(server, emu.add_account()).holdings() == []


def test_quotes_batch_and_follow_the_price(emu, broker):
    refs = [InstrumentRef(**INFY), InstrumentRef(**SBIN)]
    emu.set_price("SBIN", "955.25")
    quotes = broker.quotes(refs)
    assert emu.last_body("/v2/marketfeed/quote") == {"NSE_EQ": [1594, 3045], "dhanClientId": broker.account.client_code}
    assert quotes["NSE:SBIN"].last_price == Decimal("955.25") and quotes["NSE:INFY"].last_price == Decimal("1548.2")
    assert len(quotes["NSE:INFY"].bids) == 5 and quotes["NSE:INFY"].bids[0].price == Decimal("1548.1")
    assert quotes["NSE:INFY"].upper_circuit is not None


def test_quotes_are_paced_to_one_call_a_second(server, creds):
    server.app.limiter.limits["quotes"] = [(1, 1.0)]
    try:
        broker = make(server, creds, quote_interval=None)
        ref = [InstrumentRef(**INFY)]
        assert broker.quotes(ref) and broker.quotes(ref)  # the second waits instead of meeting DH-904
        hurried = make(server, creds, quote_interval=0)
        with pytest.raises(RateLimited):
            hurried.quotes(ref)
            hurried.quotes(ref)
    finally:
        server.app.limiter.limits["quotes"] = [(1000, 1.0)]


def test_margin_required_asks_the_calculator(emu, broker):
    total = broker.margin_required(
        [
            order_request(INFY, quantity=2, order_type=OrderType.LIMIT, price="1500.00"),
            order_request(SBIN, quantity=10, product=Product.MIS, order_type=OrderType.LIMIT, price="800.00"),
        ]
    )
    assert total == Decimal("3000") + Decimal("1600")


def test_instruments_from_the_compact_scrip_master(broker):
    rows = {r.tradingsymbol: r for r in broker.instruments()}
    assert rows["INFY"].exchange_token == 1594 and rows["INFY"].tick_size == Decimal("0.1")
    assert rows["HDFCBANK"].tick_size == Decimal("0.05") and rows["INFY"].exchange == "NSE"


def test_historical_candles_split_into_90_day_requests(emu, broker):
    start = datetime(2026, 6, 1, 3, 45, tzinfo=UTC)
    end = datetime(2026, 10, 30, 10, 0, tzinfo=UTC)
    bars = broker.historical_candles(InstrumentRef(**INFY), 60, start, end)
    calls = [c for c in emu.calls if c[1] == "/v2/charts/intraday"]
    assert len(calls) == 2 and calls[0][3]["interval"] == "60"
    assert bars[0].start == start and bars[-1].start <= end
    assert all(b.start.tzinfo is not None and isinstance(b.close, Decimal) for b in bars)
    assert [b.start for b in bars] == sorted({b.start for b in bars})
    with pytest.raises(InvalidInput):
        broker.historical_candles(InstrumentRef(**INFY), 3, start, end)


# ------------------------------------------------------------------------------------------- errors


def test_dead_sessions(emu, server, creds, broker):
    emu.expire_sessions(creds["client_id"])
    with pytest.raises(AuthExpired):
        broker.order_book()
    stale = make(server, creds, session=BrokerSession("x", expires_at=utcnow() - timedelta(minutes=1)))
    before = len(emu.calls)
    with pytest.raises(AuthExpired):
        stale.funds()
    assert len(emu.calls) == before  # refused locally, nothing sent


def test_faults_before_accept_book_nothing(emu, creds, broker):
    emu.faults.script("place", "burst_429", "error_5xx", "expire_token")
    with pytest.raises(RateLimited):
        broker.place(order_request(INFY, tag="Burst00001"))
    with pytest.raises(Unavailable):
        broker.place(order_request(INFY, tag="Fivexx0001"))
    with pytest.raises(AuthExpired):
        broker.place(order_request(INFY, tag="Expire0001"))
    assert emu.ledger.count() == 0


def test_order_rate_limit_answers_dh_904(server, emu):
    fast = DhanEmulator(orders_per_second=2)
    with EmulatorServer(fast) as own:
        broker = make(own, fast.add_account())
        broker.place(order_request(INFY))
        broker.place(order_request(INFY))
        with pytest.raises(RateLimited) as caught:
            broker.place(order_request(INFY))
        assert caught.value.retry_after == 1.0
        assert fast.ledger.count() == 2


def test_unreadable_answers_are_unavailable(emu, broker):
    emu.override_next("read", 200, "<html>maintenance</html>")
    with pytest.raises(Unavailable):
        broker.order_book()
    emu.override_next("read", 200, [{"orderId": "1", "orderStatus": "WHATEVER"}])
    with pytest.raises(Unavailable):
        broker.order_book()
    emu.override_next("place", 200, {"orderStatus": "TRANSIT"})
    with pytest.raises(Unavailable, match="may or may not"):
        broker.place(order_request(INFY))
    emu.override_next("place", 500, {"errorType": "Internal", "errorCode": "DH-908", "errorMessage": "oops"})
    with pytest.raises(Unavailable):
        broker.place(order_request(INFY))


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_a_lost_place_answer_is_found_by_its_tag_and_not_placed_twice(emu, server, creds, fault):
    broker = make(server, creds, timeout=TIMEOUT)
    request = order_request(INFY, quantity=2, tag="Lost" + fault.replace("_", "")[:6])
    emu.faults.script("place", fault)
    with pytest.raises(Unavailable):
        broker.place(request)
    found = broker.find_order(request, utcnow() - timedelta(minutes=1))
    assert [o.tag for o in found] == [request.tag] and found[0].quantity == 2
    assert emu.ledger.count(creds["client_id"], request.tag) == 1
    paths = [p for _, p, _, _ in emu.calls]
    assert paths[-1] == f"/v2/orders/external/{request.tag}"  # one lookup, not the whole book


def test_a_tag_never_placed_is_provably_absent(emu, broker):
    assert broker.orders_by_tag("Never00001") == []
    assert [p for _, p, _, _ in emu.calls][-2:] == ["/v2/orders/external/Never00001", "/v2/orders"]


# -------------------------------------------------------------------------------------------- login


def test_login_with_a_pasted_access_token(emu, server, creds):
    broker = make(server, creds, session=None)
    broker = DhanBroker(Account(creds["client_id"], {}, None), broker.options)
    session = broker.complete_login({"access_token": creds["access_token"], "pin": "", "totp": ""})
    assert session.access_token == creds["access_token"]
    expected = datetime.fromisoformat(creds["expires_at"]).astimezone(UTC).replace(second=0)
    assert session.expires_at == expected
    assert broker.funds().available_cash == Decimal("500000")
    other = emu.add_account()
    with pytest.raises(Rejected):
        broker.complete_login({"access_token": other["access_token"]})
    with pytest.raises(Rejected):
        broker.complete_login({"access_token": "eyJnot-a-token"})


def test_login_with_pin_and_totp(emu, server, creds):
    options = make(server, creds).options
    broker = DhanBroker(Account(creds["client_id"], {}, None), options)
    totp = pyotp.TOTP(creds["totp_secret"]).now()
    session = broker.complete_login({"access_token": "", "pin": creds["pin"], "totp": totp})
    assert session.access_token != creds["access_token"] and session.expires_at > utcnow() + timedelta(hours=23)
    assert broker.order_book() == []
    sent = [(m, p) for m, p, _, _ in emu.calls if p == "/app/generateAccessToken"]
    assert sent == [("POST", "/app/generateAccessToken")]
    with pytest.raises(Rejected):
        broker.complete_login({"pin": "000000" if creds["pin"] != "000000" else "111111", "totp": totp})
    with pytest.raises(InvalidInput, match="access token"):
        broker.complete_login({"access_token": "", "pin": creds["pin"], "totp": ""})
    with pytest.raises(InvalidInput, match="6-digit"):
        broker.complete_login({"pin": creds["pin"], "totp": "12ab"})


# ----------------------------------------------------------------------------------- through the desk


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_the_engine_resolves_a_lost_answer_by_tag_and_never_sends_twice(app, factory, server, emu, fault):
    """A batch of three Dhan clients through the order engine; the first place's answer is lost."""
    app.config.update(DHAN_API_URL=server.url, BROKER_TIMEOUT_SECONDS=TIMEOUT)
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    trader = factory.user("tara", role="trader")
    clients = []
    for n in range(3):
        code, credentials, session = desk_account(emu.add_account())
        client = factory.client(f"Dhan{n}", broker="dhan", code=code, credentials=credentials)
        with app.app_context():
            store_session(db.session.get(Client, client.id), session, current_vault())
            db.session.commit()
        clients.append(client)
    batch = factory.batch(trader, clients, instrument, quantity=1)
    emu.faults.script("place", fault, "ok", "ok")
    with app.app_context():
        engine.send_batch(batch.id, build_context(app))
        rows = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()
        assert {row.status for row in rows} <= {states.PLACED, states.OPEN, states.COMPLETE}
        assert all(row.attempts == 1 for row in rows)
    codes = {c.client_code for c in clients}
    booked = Counter((e.account, e.tag) for e in emu.ledger.entries() if e.account in codes)
    assert len(booked) == 3 and set(booked.values()) == {1}
    assert any(p.startswith("/v2/orders/external/") for _, p, _, _ in emu.calls)
