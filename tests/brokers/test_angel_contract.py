"""Contract tests: the Angel One adapter against its emulator, over real loopback HTTP."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from tests.brokers.angel_fixtures import (
    API_URL_SETTING,
    SBIN,
    AngelDesk,
    desk_account,
    headers,
    login_params,
    order_request,
    start_desk,
)
from tests.emulators.angel import ROUTES
from tests.emulators.common import FaultPlan
from webapp.brokers import broker_class, broker_options
from webapp.brokers.angel import AngelBroker
from webapp.brokers.base import (
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
from webapp.timeutil import IST, utcnow

MAYBE_PLACED = "the order may or may not be placed"
SESSION_GONE = "Angel One session is no longer valid (Invalid Token); log in again"
INFY_REF = InstrumentRef("NSE", "INFY", 1594)
SBIN_REF = InstrumentRef("NSE", "SBIN", 3045)


@pytest.fixture(scope="module")
def module_desk():
    # One server for the module; reads relaxed here, the 1/s limits have their own test.
    desk = start_desk(read_rate=1000)
    yield desk
    desk.close()


@pytest.fixture
def desk(module_desk: AngelDesk):
    module_desk.reset()
    yield module_desk
    module_desk.reset()


@pytest.fixture
def creds(desk):
    return desk.account(cash="1000000", holdings=[{"tradingsymbol": "SBIN", "quantity": 40, "average_price": "800"}])


@pytest.fixture
def broker(desk, creds):
    return desk.broker(creds)


# --------------------------------------------------------------------------- declaration


def test_adapter_is_registered_with_the_angel_contract():
    cls = broker_class("angel")
    assert cls is AngelBroker
    assert (cls.label, cls.login_kind, cls.tag_max_length) == ("Angel One", "form", 20)
    assert [f.name for f in cls.credential_fields] == ["api_key"] and cls.credential_fields[0].secret
    assert [f.name for f in cls.login_fields] == ["mpin", "totp"] and all(f.secret for f in cls.login_fields)
    assert cls.session_expiry_ist == time(5, 0)
    assert (cls.rate_limits.orders_per_second, cls.rate_limits.orders_per_minute) == (20, 500)
    assert cls.capabilities.quotes and cls.capabilities.historical_candles and cls.capabilities.streaming
    assert cls.settings["ANGEL_API_URL"] == "https://apiconnect.angelone.in"
    assert "ANGEL_STREAM_URL" in cls.settings
    options = broker_options("angel", {API_URL_SETTING: "http://127.0.0.1:9", "BROKER_TIMEOUT_SECONDS": 3})
    assert options == {"base_url": "http://127.0.0.1:9", "timeout": 3}
    assert cls.stream_token(INFY_REF) == "NSE|1594"


def test_desk_account_gives_a_live_session_the_adapter_uses(desk, creds):
    code, credentials, session = desk_account(creds)
    assert (code, credentials) == (creds["client_code"], {"api_key": creds["api_key"]})
    assert session.access_token == creds["jwt_token"] and session.extra["feed_token"] == creds["feed_token"]
    assert timedelta(hours=7) < session.expires_at - utcnow() <= timedelta(hours=8)
    assert desk.broker(creds).funds().available_cash == Decimal("1000000")


def test_emulator_admin_endpoint_creates_accounts(desk):
    answer = requests.post(desk.url + "/_emulator/accounts", json={"cash": "100"}, timeout=5).json()
    assert answer["cash"] == "100" and answer["jwt_token"] and answer["feed_token"] and answer["mpin"]
    assert desk.broker(answer).funds().available_cash == Decimal("100")


# --------------------------------------------------------------------------- login


def test_login_with_mpin_and_totp_keeps_jwt_feed_and_refresh_tokens(desk, creds):
    broker = desk.login(creds)
    session = broker._session
    body = desk.emulator.last_body("loginByPassword")
    assert body["clientcode"] == creds["client_code"] and body["password"] == creds["mpin"]
    assert len(body["totp"]) == 6
    assert session.access_token in desk.emulator.sessions
    assert desk.emulator.feed_tokens[session.extra["feed_token"]] == creds["client_code"]
    assert desk.emulator.refresh_tokens[session.extra["refresh_token"]] == creds["client_code"]
    expiry = session.expires_at.astimezone(IST)
    assert (expiry.hour, expiry.minute) == (5, 0) and timedelta(0) < session.expires_at - utcnow() <= timedelta(days=1)
    assert [o.tag for o in broker.order_book()] == []


@pytest.mark.parametrize(
    "field, value, message",
    [("mpin", "0000x", "Invalid clientcode or MPIN"), ("totp", "000000", "Invalid totp")],
)
def test_login_refusals_are_rejected_with_the_brokers_message(desk, creds, field, value, message):
    broker = desk.broker(creds, session=None)
    with pytest.raises(Rejected) as caught:
        broker.complete_login(login_params(creds, **{field: value}))
    assert caught.value.message == message


def test_login_with_another_apps_key_is_rejected(desk, creds):
    broker = desk.broker({**creds, "api_key": "0" * 16}, session=None)
    with pytest.raises(Rejected, match="Invalid API Key"):
        broker.complete_login(login_params(creds))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"mpin": "", "totp": "123456"}, "Angel One needs the client's MPIN"),
        ({"mpin": "1234", "totp": ""}, "The TOTP is the 6-digit code from your authenticator app"),
        ({"mpin": "1234", "totp": "12ab56"}, "The TOTP is the 6-digit code from your authenticator app"),
    ],
)
def test_incomplete_login_is_invalid_input_before_any_call(desk, creds, params, message):
    broker = desk.broker(creds, session=None)
    before = len(desk.emulator.requests)
    with pytest.raises(InvalidInput) as caught:
        broker.complete_login(params)
    assert caught.value.message == message
    assert len(desk.emulator.requests) == before


def test_no_session_or_a_past_expiry_is_auth_expired_without_a_call(desk, creds):
    before = len(desk.emulator.requests)
    with pytest.raises(AuthExpired):
        desk.broker(creds, session=None).order_book()
    dead = BrokerSession(creds["jwt_token"], utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthExpired):
        desk.broker(creds, session=dead).positions()
    assert len(desk.emulator.requests) == before


def test_adapter_sends_the_smartapi_header_set(desk, creds, broker):
    broker.order_book()
    _, sent, _ = desk.emulator.calls[-1]
    assert sent["X-Privatekey"] == creds["api_key"] and sent["Authorization"] == f"Bearer {creds['jwt_token']}"
    assert (sent["X-Usertype"], sent["X-Sourceid"]) == ("USER", "WEB")
    assert sent["X-Clientlocalip"] and sent["X-Clientpublicip"] and sent["X-Macaddress"]


def test_missing_headers_or_a_bad_token_are_refused(desk, creds):
    url = desk.url + ROUTES["order_book"][0]
    bare = desk.http.get(url, headers={"Authorization": f"Bearer {creds['jwt_token']}"}, timeout=5)
    assert bare.json()["status"] is False
    bad = desk.http.get(url, headers=headers(creds["api_key"], "not-a-token"), timeout=5)
    assert bad.status_code == 403 and bad.json()["errorCode"] == "AG8001"


# --------------------------------------------------------------------------- orders


def test_market_order_fills_and_shows_everywhere(desk, creds, broker):
    order_id = broker.place(order_request(quantity=3, tag="MKT1"))
    body = desk.emulator.last_body("placeOrder")
    assert body == {
        "variety": "NORMAL",
        "tradingsymbol": "INFY-EQ",
        "symboltoken": "1594",
        "transactiontype": "BUY",
        "exchange": "NSE",
        "ordertype": "MARKET",
        "producttype": "DELIVERY",
        "duration": "DAY",
        "price": "0",
        "triggerprice": "0",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": "3",
        "ordertag": "MKT1",
    }
    [order] = broker.order_book()
    assert (order.order_id, order.status, order.tag, order.raw_status) == (
        order_id,
        BrokerOrderStatus.COMPLETE,
        "MKT1",
        "complete",
    )
    assert (order.tradingsymbol, order.filled_quantity, order.average_price) == ("INFY", 3, Decimal("1548.2"))
    assert order.updated_at is not None and order.updated_at.tzinfo is not None
    [trade] = broker.trades()
    assert (trade.order_id, trade.quantity, trade.price, trade.side) == (order_id, 3, Decimal("1548.20"), Side.BUY)
    [position] = broker.positions()
    assert (position.tradingsymbol, position.product, position.quantity, position.average_price) == (
        "INFY",
        Product.CNC,
        3,
        Decimal("1548.20"),
    )
    funds = broker.funds()
    assert funds.margin_used == Decimal("4644.60")
    assert funds.available_margin == Decimal("1000000") - Decimal("4644.60")
    assert desk.emulator.ledger.count(creds["client_code"], "MKT1") == 1


@pytest.mark.parametrize(
    "product, wire",
    [(Product.CNC, "DELIVERY"), (Product.MIS, "INTRADAY"), (Product.NRML, "CARRYFORWARD"), (Product.MTF, "MARGIN")],
)
def test_products_map_both_ways(desk, broker, product, wire):
    broker.place(order_request(product=product))
    assert desk.emulator.last_body("placeOrder")["producttype"] == wire
    assert broker.order_book()[0].product is product


@pytest.mark.parametrize(
    "order_type, price, trigger, variety, wire, wire_price, wire_trigger",
    [
        (OrderType.LIMIT, "1400", None, "NORMAL", "LIMIT", "1400", "0"),
        (OrderType.SL, "1700", "1690", "STOPLOSS", "STOPLOSS_LIMIT", "1700", "1690"),
        (OrderType.SLM, None, "1690", "STOPLOSS", "STOPLOSS_MARKET", "0", "1690"),
    ],
)
def test_order_types_map_both_ways(desk, broker, order_type, price, trigger, variety, wire, wire_price, wire_trigger):
    broker.place(order_request(order_type=order_type, price=price, trigger=trigger))
    body = desk.emulator.last_body("placeOrder")
    assert (body["variety"], body["ordertype"], body["price"], body["triggerprice"]) == (
        variety,
        wire,
        wire_price,
        wire_trigger,
    )
    [order] = broker.order_book()
    assert order.order_type is order_type
    expected = BrokerOrderStatus.OPEN if order_type is OrderType.LIMIT else BrokerOrderStatus.TRIGGER_PENDING
    assert order.status is expected


def test_a_stop_triggers_and_fills_when_the_price_crosses(desk, broker):
    order_id = broker.place(order_request(order_type=OrderType.SLM, trigger="1600"))
    desk.emulator.set_price("INFY", "1601.5")
    [order] = [o for o in broker.order_book() if o.order_id == order_id]
    assert (order.status, order.average_price) == (BrokerOrderStatus.COMPLETE, Decimal("1601.5"))


def test_ioc_goes_out_as_ioc_and_an_unmatched_ioc_is_cancelled(desk, broker):
    broker.place(order_request(order_type=OrderType.LIMIT, price="1400", validity=Validity.IOC))
    assert desk.emulator.last_body("placeOrder")["duration"] == "IOC"
    assert broker.order_book()[0].status is BrokerOrderStatus.CANCELLED


def test_price_1234_05_goes_out_and_comes_back_exactly(desk, broker):
    desk.emulator.set_price("INFY", "1234.10")
    broker.place(order_request(order_type=OrderType.LIMIT, price="1234.05", tag="EXACT"))
    assert desk.emulator.last_body("placeOrder")["price"] == "1234.05"
    [order] = broker.orders_by_tag("EXACT")
    assert order.price == Decimal("1234.05") and isinstance(order.price, Decimal)


@pytest.mark.parametrize(
    "request_kw, message",
    [
        (dict(quantity=0), "Quantity must be a positive whole number"),
        (dict(order_type=OrderType.LIMIT), "A LIMIT order needs a price"),
        (dict(order_type=OrderType.SLM), "A SL-M order needs a trigger price"),
        (dict(tag="X" * 21), "Angel One order tags are 1 to 20 letters and digits"),
        (dict(tag="bad-tag"), "Angel One order tags are 1 to 20 letters and digits"),
    ],
)
def test_malformed_orders_are_invalid_input_and_never_sent(desk, broker, request_kw, message):
    with pytest.raises(InvalidInput) as caught:
        broker.place(order_request(**request_kw))
    assert caught.value.message == message
    assert desk.emulator.ledger.count() == 0


def test_a_symbol_angel_does_not_know_is_invalid_input(desk, broker):
    with pytest.raises(InvalidInput, match="Invalid symbol token"):
        broker.place(order_request({"exchange": "NSE", "tradingsymbol": "NOPE", "exchange_token": 99999}))


def test_too_little_cash_is_a_broker_side_rejection_in_the_book(desk):
    poor = desk.account(cash="100")
    broker = desk.broker(poor)
    order_id = broker.place(order_request(quantity=1, tag="POOR1"))
    [order] = broker.orders_by_tag("POOR1")
    assert (order.order_id, order.status) == (order_id, BrokerOrderStatus.REJECTED)
    assert order.status_message.startswith("Your order has been rejected due to Insufficient Funds")
    assert broker.trades() == [] and broker.funds().margin_used == 0


def test_a_limit_outside_the_circuit_is_rejected_with_angels_text(desk, broker):
    broker.place(order_request(order_type=OrderType.LIMIT, price="2000", tag="BAND1"))
    [order] = broker.orders_by_tag("BAND1")
    assert order.status is BrokerOrderStatus.REJECTED and "circuit" in order.status_message


@pytest.mark.parametrize(
    "word, filled, expected",
    [
        ("open", 0, BrokerOrderStatus.OPEN),
        ("open", 2, BrokerOrderStatus.PARTIAL),
        ("open pending", 0, BrokerOrderStatus.PENDING),
        ("validation pending", 0, BrokerOrderStatus.PENDING),
        ("put order req received", 0, BrokerOrderStatus.PENDING),
        ("modify pending", 0, BrokerOrderStatus.PENDING),
        ("trigger pending", 0, BrokerOrderStatus.TRIGGER_PENDING),
        ("modified", 0, BrokerOrderStatus.OPEN),
        ("complete", 5, BrokerOrderStatus.COMPLETE),
        ("cancelled", 2, BrokerOrderStatus.CANCELLED),
        ("rejected", 0, BrokerOrderStatus.REJECTED),
        ("some new word", 0, BrokerOrderStatus.PENDING),
    ],
)
def test_angel_status_words_map_to_the_port(desk, broker, word, filled, expected):
    order_id = broker.place(order_request(quantity=5, order_type=OrderType.LIMIT, price="1400"))
    if filled:
        desk.emulator.fill(order_id, filled, "1400")
    desk.emulator.set_status(order_id, word, "why")
    [order] = broker.order_book()
    assert (order.status, order.raw_status, order.filled_quantity) == (expected, word, filled)


def test_orders_by_tag_finds_only_that_tag(broker):
    broker.place(order_request(tag="AAA1"))
    broker.place(order_request(tag="BBB1"))
    broker.place(order_request())
    assert [o.tag for o in broker.orders_by_tag("AAA1")] == ["AAA1"]
    assert broker.find_order(order_request(tag="BBB1"), utcnow()) == broker.orders_by_tag("BBB1")
    assert broker.orders_by_tag("CCC1") == []


def test_modify_sends_the_whole_order_with_the_changes(desk, broker):
    order_id = broker.place(order_request(quantity=2, order_type=OrderType.LIMIT, price="1400"))
    assert broker.modify(order_id, quantity=4, price=Decimal("1405.5")) == order_id
    body = desk.emulator.last_body("modifyOrder")
    assert body == {
        "variety": "NORMAL",
        "orderid": order_id,
        "ordertype": "LIMIT",
        "producttype": "DELIVERY",
        "duration": "DAY",
        "price": "1405.5",
        "triggerprice": "0",
        "quantity": "4",
        "tradingsymbol": "INFY-EQ",
        "symboltoken": "1594",
        "exchange": "NSE",
    }
    [order] = broker.order_book()
    assert (order.quantity, order.price, order.status) == (4, Decimal("1405.5"), BrokerOrderStatus.OPEN)


def test_modify_to_market_fills_at_once(desk, broker):
    order_id = broker.place(order_request(order_type=OrderType.LIMIT, price="1400"))
    broker.modify(order_id, order_type=OrderType.MARKET)
    assert desk.emulator.last_body("modifyOrder")["price"] == "0"
    assert broker.order_book()[0].status is BrokerOrderStatus.COMPLETE


def test_modify_or_cancel_of_an_unknown_order_is_rejected(broker):
    with pytest.raises(Rejected, match="has no order 999"):
        broker.modify("999", price=Decimal("1"))
    with pytest.raises(Rejected, match="has no order 999"):
        broker.cancel("999")


def test_cancel_sends_the_orders_variety_and_a_complete_order_cannot_be_cancelled(desk, broker):
    stop = broker.place(order_request(order_type=OrderType.SLM, trigger="1690"))
    assert broker.cancel(stop) == stop
    assert desk.emulator.last_body("cancelOrder") == {"variety": "STOPLOSS", "orderid": stop}
    assert broker.order_book()[0].status is BrokerOrderStatus.CANCELLED
    done = broker.place(order_request())
    with pytest.raises(Rejected, match="already complete"):
        broker.cancel(done)


# --------------------------------------------------------------------------- portfolio and market data


def test_positions_net_and_realised_from_buy_and_sell(desk, broker):
    broker.place(order_request(quantity=5, product=Product.MIS))
    desk.emulator.set_price("INFY", "1560")
    broker.place(order_request(quantity=2, product=Product.MIS, side=Side.SELL))
    [position] = broker.positions()
    assert (position.quantity, position.buy_quantity, position.sell_quantity) == (3, 5, 2)
    assert position.average_price == Decimal("1548.20")
    assert position.realised_pnl == Decimal("23.60")
    assert position.unrealised_pnl == Decimal("35.40")


def test_holdings_and_a_delivery_sell_from_them(desk, broker):
    [holding] = broker.holdings()
    assert (holding.tradingsymbol, holding.quantity, holding.average_price, holding.isin) == (
        "SBIN",
        40,
        Decimal("800"),
        "INE062A01020",
    )
    assert holding.last_price == Decimal("951.15")
    broker.place(order_request(SBIN, side=Side.SELL, quantity=10))
    assert broker.holdings()[0].quantity == 30


def test_empty_books_come_back_as_null_and_read_as_empty(desk, creds, broker):
    answer = desk.get(ROUTES["order_book"][0], creds).json()
    assert answer["status"] is True and answer["data"] is None
    assert broker.order_book() == broker.trades() == broker.positions() == []


def test_quotes_are_full_mode_exact_with_depth_and_circuits(desk, broker):
    desk.emulator.set_price("INFY", "1550.35")
    quotes = broker.quotes([INFY_REF, SBIN_REF])
    body = desk.emulator.last_body("quote")
    assert body == {"mode": "FULL", "exchangeTokens": {"NSE": ["1594", "3045"]}}
    infy = quotes["NSE:INFY"]
    assert infy.last_price == Decimal("1550.35") and infy.close == Decimal("1548.20")
    assert (infy.lower_circuit, infy.upper_circuit) == (Decimal("1393.38"), Decimal("1703.02"))
    assert infy.bids[0].price == Decimal("1550.25") and infy.asks[0].price == Decimal("1550.45")
    assert len(infy.bids) == len(infy.asks) == 5
    assert quotes["NSE:SBIN"].last_price == Decimal("951.15")


def test_quotes_skip_tokens_angel_cannot_fetch(broker):
    quotes = broker.quotes([INFY_REF, InstrumentRef("NSE", "NOPE", 99999)])
    assert list(quotes) == ["NSE:INFY"]


def test_quotes_go_fifty_tokens_a_request(desk, broker):
    refs = [INFY_REF] * 51
    broker.quotes(refs)
    sizes = [len(body["exchangeTokens"]["NSE"]) for path, _, body in desk.emulator.calls if path.endswith("/quote")]
    assert sizes == [50, 1]


def test_historical_candles_split_by_angels_span_and_come_back_in_utc(desk, broker):
    start = datetime(2026, 10, 1, 9, 15, tzinfo=IST)
    end = datetime(2026, 11, 20, 15, 29, tzinfo=IST)
    bars = broker.historical_candles(INFY_REF, 60, start, end)
    requests_sent = [body for path, _, body in desk.emulator.calls if path.endswith("getCandleData")]
    assert [b["interval"] for b in requests_sent] == ["ONE_HOUR"]
    assert requests_sent[0]["fromdate"] == "2026-10-01 09:15" and requests_sent[0]["todate"] == "2026-11-20 15:29"
    assert bars and all(start <= b.start <= end for b in bars)
    assert bars[0].start == start.astimezone(bars[0].start.tzinfo) and bars[0].start.utcoffset() == timedelta(0)
    assert all(isinstance(b.open, Decimal) for b in bars)
    minutes = broker.historical_candles(INFY_REF, 1, start, end)
    spans = [body for path, _, body in desk.emulator.calls if path.endswith("getCandleData")][1:]
    assert len(spans) == 2 and spans[0]["interval"] == "ONE_MINUTE"  # 50 days of minutes: 30 + 20
    assert len(minutes) == 375 * len({b.start.astimezone(IST).date() for b in minutes})
    with pytest.raises(InvalidInput, match="has no 2-minute candles"):
        broker.historical_candles(INFY_REF, 2, start, end)


def test_margin_required_asks_angels_margin_batch(desk, broker):
    total = broker.margin_required(
        [
            order_request(quantity=10),
            order_request(SBIN, quantity=10, product=Product.MIS, order_type=OrderType.LIMIT, price="950"),
        ]
    )
    body = desk.emulator.last_body("batch")
    assert body["positions"][0] == {
        "exchange": "NSE",
        "qty": 10,
        "price": 0,
        "productType": "DELIVERY",
        "token": "1594",
        "tradeType": "BUY",
        "orderType": "MARKET",
    }
    assert body["positions"][1]["price"] == 950
    assert total == Decimal("15482.00") + Decimal("1900.00")


def test_instruments_from_the_scrip_master_with_tick_sizes_in_paise(desk, broker):
    rows = {r.tradingsymbol: r for r in broker.instruments()}
    assert (rows["INFY"].exchange_token, rows["INFY"].tick_size) == (1594, Decimal("0.1"))
    assert (rows["HDFCBANK"].exchange_token, rows["HDFCBANK"].tick_size) == (1333, Decimal("0.05"))
    assert all(r.exchange == "NSE" and r.instrument_type == "EQ" for r in rows.values())


# --------------------------------------------------------------------------- faults on place


def test_timeout_after_accept_is_unavailable_and_the_tag_finds_the_order(desk, creds):
    broker = desk.broker(creds, timeout=0.3)
    desk.emulator.faults.script("place", "timeout_after_accept")
    with pytest.raises(Unavailable) as caught:
        broker.place(order_request(tag="TMO1"))
    assert caught.value.message == f"Angel One did not answer in 0.3 s; {MAYBE_PLACED}"
    assert desk.emulator.ledger.count(tag="TMO1") == 1
    assert [o.status for o in broker.find_order(order_request(tag="TMO1"), utcnow())] == [BrokerOrderStatus.COMPLETE]


@pytest.mark.parametrize(
    "fault, booked, message",
    [
        ("drop_after_accept", 1, "Angel One closed the connection without an answer; " + MAYBE_PLACED),
        ("error_5xx_after_accept", 1, "Angel One answered HTTP 503; " + MAYBE_PLACED),
        ("error_5xx", 0, "Angel One answered HTTP 503; " + MAYBE_PLACED),
    ],
)
def test_ambiguous_place_outcomes_are_unavailable(desk, broker, fault, booked, message):
    desk.emulator.faults.script("place", fault)
    with pytest.raises(Unavailable) as caught:
        broker.place(order_request(tag="AMB1"))
    assert caught.value.message == message
    assert desk.emulator.ledger.count(tag="AMB1") == booked
    assert len(broker.orders_by_tag("AMB1")) == booked


def test_rate_limit_is_rate_limited_and_nothing_booked(desk, broker):
    desk.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited) as caught:
        broker.place(order_request())
    assert (caught.value.message, caught.value.retry_after) == (
        "Angel One is rate limiting this account; wait and retry",
        1.0,
    )
    assert desk.emulator.ledger.count() == 0


def test_token_expiry_mid_session_is_auth_expired_from_then_on(desk, broker):
    desk.emulator.faults.script("place", "expire_token")
    with pytest.raises(AuthExpired) as caught:
        broker.place(order_request())
    assert caught.value.message == SESSION_GONE
    with pytest.raises(AuthExpired):
        broker.order_book()
    assert desk.emulator.ledger.count() == 0


def test_expire_sessions_by_client_code_and_the_admin_endpoint(desk, creds, broker):
    other = desk.account()
    requests.post(desk.url + "/_emulator/expire", json={"account": creds["client_code"]}, timeout=5)
    with pytest.raises(AuthExpired):
        broker.positions()
    assert desk.broker(other).positions() == []


def test_modify_timeout_is_unavailable_but_applied(desk, creds):
    broker = desk.broker(creds, timeout=0.3)
    order_id = broker.place(order_request(order_type=OrderType.LIMIT, price="1400"))
    desk.emulator.faults.script("modify", "timeout_after_accept")
    with pytest.raises(Unavailable, match="the change may or may not have been applied"):
        broker.modify(order_id, price=Decimal("1401"))
    assert broker.order_book()[0].price == Decimal("1401")


def test_cancel_5xx_after_accept_is_unavailable_but_cancelled(desk, broker):
    order_id = broker.place(order_request(order_type=OrderType.LIMIT, price="1400"))
    desk.emulator.faults.script("cancel", "error_5xx_after_accept")
    with pytest.raises(Unavailable, match="the order may or may not be cancelled"):
        broker.cancel(order_id)
    assert broker.order_book()[0].status is BrokerOrderStatus.CANCELLED


def refusal(message: str, code: str) -> dict:
    return {"status": False, "message": message, "errorcode": code, "data": None}


SUCCESS_WITHOUT_ID = {"status": True, "message": "SUCCESS", "errorcode": "", "data": None}
UNREADABLE_BOOK = {"status": True, "message": "SUCCESS", "errorcode": "", "data": [{"orderid": "1"}]}
TAG_TOO_LONG = "Ordertag length should not exceed 20 characters"


@pytest.mark.parametrize(
    "kind, status, body, error, message",
    [
        ("place", 200, SUCCESS_WITHOUT_ID, Unavailable, "no order id"),
        ("place", 200, "not json", Unavailable, "unreadable answer"),
        ("place", 200, refusal("Something Went Wrong", "AB1004"), Unavailable, "technical error"),
        ("place", 200, refusal("AMX Session Expired", "AB1010"), AuthExpired, "log in again"),
        ("place", 200, refusal("Client is blocked", "AB1006"), Rejected, "Client is blocked"),
        ("place", 200, refusal(TAG_TOO_LONG, "AB4008"), InvalidInput, "Ordertag length"),
        ("read", 429, {"message": "Too many"}, RateLimited, "rate limiting"),
        ("read", 403, "Access denied because of exceeding access rate", RateLimited, "rate limiting"),
        ("read", 502, "<html>bad gateway</html>", Unavailable, "HTTP 502"),
        ("read", 200, UNREADABLE_BOOK, Unavailable, "order book the desk cannot read"),
    ],
)
def test_error_answers_map_to_typed_errors(desk, broker, kind, status, body, error, message):
    desk.emulator.override_next(kind, status, body)
    with pytest.raises(error, match=message):
        broker.place(order_request()) if kind == "place" else broker.order_book()
    assert desk.emulator.ledger.count() == 0


def test_read_faults_are_unavailable_or_auth_expired(desk, broker):
    desk.emulator.faults.script("read", "error_5xx", "expire_token")
    with pytest.raises(Unavailable, match="HTTP 503"):
        broker.holdings()
    with pytest.raises(AuthExpired):
        broker.funds()


def test_an_unreachable_broker_says_nothing_was_sent(creds):
    broker = AngelBroker(desk_account_for(creds), {"base_url": "http://127.0.0.1:9", "timeout": 0.5})
    with pytest.raises(Unavailable, match="could not be reached; nothing was sent"):
        broker.place(order_request())


def desk_account_for(creds):
    from webapp.brokers.base import Account

    code, credentials, session = desk_account(creds)
    return Account(code, credentials, session)


# --------------------------------------------------------------------------- rate limits


def test_angels_own_limits_answer_over_the_limit_and_the_adapter_paces_its_reads(desk, creds):
    strict = start_desk()  # Angel's published limits: the order book 1/s, orders 20/s
    try:
        account = strict.account()
        unpaced = strict.broker(account)  # the fixture's read_interval 0: no pacing
        unpaced.order_book()
        with pytest.raises(RateLimited):
            unpaced.order_book()
        unpaced.trades()  # another endpoint has its own budget
        paced = strict.broker(account, read_interval=None)  # Angel's limits, as the desk runs it
        assert paced.positions() == [] and paced.positions() == []  # the second waits its turn
        outcomes = []
        for _ in range(21):
            try:
                unpaced.place(order_request())
                outcomes.append("ok")
            except RateLimited:
                outcomes.append("limited")
        assert outcomes.count("ok") <= 20 and "limited" in outcomes
        assert strict.emulator.ledger.count() == outcomes.count("ok")
    finally:
        strict.close()


# --------------------------------------------------------------------------- logs


def test_logs_are_key_value_and_never_carry_secrets(desk, creds, caplog):
    caplog.set_level(logging.INFO, logger="webapp.brokers.angel")
    broker = desk.login(creds)
    broker.place(order_request(tag="LOG1"))
    desk.emulator.override_next("read", 200, {"status": False, "message": "bad", "errorcode": "AB9999", "data": None})
    with pytest.raises(Rejected):
        broker.order_book()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "broker=angel op=place" in text and "broker=angel op=login" in text
    for secret in (creds["mpin"], creds["api_key"], broker._session.access_token, broker._session.extra["feed_token"]):
        assert secret not in text


# --------------------------------------------------------------------------- the order engine


@pytest.fixture
def angel_server(desk, app):
    desk.emulator.faults = FaultPlan(hang_seconds=1.0)
    app.config.update({API_URL_SETTING: desk.url, "BROKER_TIMEOUT_SECONDS": 0.3})
    return desk.emulator


def angel_client(app, factory, emulator, name):
    from webapp.extensions import db
    from webapp.models import Client
    from webapp.trading.sessions import store_session
    from webapp.vault import current_vault

    creds = emulator.add_account()
    code, credentials, session = desk_account(creds)
    client = factory.client(name, broker="angel", code=code, credentials=credentials)
    with app.app_context():
        store_session(db.session.get(Client, client.id), session, current_vault())
        db.session.commit()
    return client


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_the_engine_resolves_a_lost_answer_by_ordertag_and_never_places_twice(app, factory, angel_server, fault):
    from webapp.extensions import db
    from webapp.models import Order
    from webapp.trading import engine, states
    from webapp.trading.context import build_context

    trader = factory.user("tara", role="trader")
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    clients = [angel_client(app, factory, angel_server, f"AN{n}") for n in range(3)]
    batch = factory.batch(trader, clients, instrument, quantity=1)
    angel_server.faults.script("place", fault, "ok", "ok")
    with app.app_context():
        engine.send_batch(batch.id, build_context(app))
    codes = {c.client_code for c in clients}
    counts = Counter((e.account, e.tag) for e in angel_server.ledger.entries() if e.account in codes)
    assert len(counts) == 3 and set(counts.values()) == {1}
    with app.app_context():
        rows = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()
        assert {r.status for r in rows} <= {states.PLACED, states.OPEN, states.COMPLETE}
        assert [r.attempts for r in rows] == [1, 1, 1]
        assert all(r.broker_order_id for r in rows)


# --------------------------------------------------------------------------- the stream pair


def test_a_logged_in_session_opens_the_stream_and_ticks_follow_set_price(desk, creds):
    from webapp.brokers.base import Account

    broker = desk.login(creds)
    account = Account(creds["client_code"], {"api_key": creds["api_key"]}, broker._session)
    ws_url = desk.url.replace("http://", "ws://") + "/smart-stream"
    desk.emulator.set_price("INFY", "1602.35")
    stream = AngelBroker.open_stream(account, {"ANGEL_STREAM_URL": ws_url})
    try:
        stream.connect()
        token = AngelBroker.stream_token(INFY_REF)
        stream.subscribe([token])
        ticks = []
        for _ in range(10):
            ticks += stream.read(0.5)
            if ticks:
                break
        assert ticks and ticks[0][0] == token and ticks[0][1].last_price == Decimal("1602.35")
    finally:
        stream.close()
