"""Contract tests: the Motilal Oswal adapter against its emulator, over real loopback HTTP."""

from __future__ import annotations

import hashlib
import logging
from datetime import time, timedelta
from decimal import Decimal

import pytest

from tests.brokers.motilal_fixtures import (
    SBIN,
    MotilalDesk,
    device_headers,
    login_params,
    order_request,
    password_hash,
    start_desk,
)
from tests.emulators.motilal import ROUTES
from webapp.brokers import broker_class
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
from webapp.brokers.motilal import MotilalBroker
from webapp.timeutil import IST, utcnow

MAYBE_PLACED = "the order may or may not be placed"
SESSION_GONE = "Motilal Oswal session is no longer valid (Invalid User Id or Auth Token); log in again"


@pytest.fixture(scope="module")
def module_desk():
    # One server for the module (stopping one costs half a second); reads relaxed here, the
    # 2 calls/s limit has its own tests on a default emulator.
    desk = start_desk(read_rate=1000)
    yield desk
    desk.close()


@pytest.fixture
def desk(module_desk: MotilalDesk):
    module_desk.reset()
    yield module_desk
    module_desk.reset()


@pytest.fixture
def creds(desk: MotilalDesk):
    return desk.account()


@pytest.fixture
def broker(desk: MotilalDesk, creds):
    return desk.login(creds)


def resting_limit(broker, *, quantity=10, price="1500.00", **kw):
    return broker.place(order_request(order_type=OrderType.LIMIT, quantity=quantity, price=price, **kw))


def book_order(broker, order_id):
    return next(o for o in broker.order_book() if o.order_id == order_id)


# --------------------------------------------------------------------------- adapter declaration


def test_adapter_is_registered_with_the_motilal_contract():
    assert broker_class("motilal") is MotilalBroker
    assert MotilalBroker.label == "Motilal Oswal"
    assert MotilalBroker.login_kind == "form"
    assert [(f.name, f.secret, f.required) for f in MotilalBroker.credential_fields] == [
        ("api_key", True, True),
        ("user_id", False, True),
        ("vendor_code", False, False),
    ]
    assert [(f.name, f.secret, f.required) for f in MotilalBroker.login_fields] == [
        ("password", True, True),
        ("two_fa", True, True),
        ("totp", True, False),
    ]
    assert (MotilalBroker.rate_limits.orders_per_second, MotilalBroker.rate_limits.reads_per_second) == (40, 2)
    assert MotilalBroker.tag_max_length == 10
    assert MotilalBroker.session_expiry_ist == time(6, 0)


# --------------------------------------------------------------------------- login


def test_login_posts_sha256_of_password_plus_api_key_to_v4_and_expires_at_0600_ist(desk, creds):
    broker = desk.broker(creds)
    session = broker.complete_login(login_params(creds))
    path, headers, body = desk.emulator.calls[-1]
    assert path == "/rest/login/v4/authdirectapi"
    assert body["userid"] == creds["user_id"]
    assert body["password"] == hashlib.sha256((creds["password"] + creds["api_key"]).encode()).hexdigest()
    assert body["2FA"] == creds["two_fa"] and len(body["totp"]) == 6
    assert headers["Authorization"] == "" and headers["Apikey"] == creds["api_key"]
    expiry = session.expires_at.astimezone(IST)
    assert (expiry.hour, expiry.minute) == (6, 0)
    assert timedelta(0) < session.expires_at - utcnow() <= timedelta(hours=24)
    assert session.access_token in desk.emulator.sessions
    assert broker.order_book() == []  # the adapter uses its fresh token at once


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("password", "wrong-password", "Login Id/Password Is Invalid"),
        ("two_fa", "01/01/1970", "Invalid 2FA, enter Date of Birth (DD/MM/YYYY) or PAN"),
        ("totp", "000000", "Invalid TOTP"),
    ],
)
def test_login_refusals_are_rejected_with_the_brokers_message(desk, creds, field, value, message):
    if field == "totp" and value == login_params(creds)["totp"]:
        value = "111111"
    with pytest.raises(Rejected) as caught:
        desk.broker(creds).complete_login(login_params(creds, **{field: value}))
    assert caught.value.reason == message


def test_login_accepts_pan_as_the_second_factor(desk, creds):
    session = desk.broker(creds).complete_login(login_params(creds, two_fa=creds["pan"].lower()))
    assert session.access_token


def test_blank_totp_is_refused_before_calling_motilal(desk, creds):
    with pytest.raises(Rejected) as caught:
        desk.broker(creds).complete_login(login_params(creds, totp=""))
    assert caught.value.reason == "Motilal needs the TOTP from your authenticator app"
    assert not desk.emulator.calls


def test_emulator_blank_totp_login_needs_verifyotp_on_v3(desk, creds):
    body = {"userid": creds["user_id"], "password": password_hash(creds), "2FA": creds["two_fa"], "totp": ""}
    answer = desk.post("/rest/login/v3/authdirectapi", body, device_headers(creds["api_key"])).json()
    assert (answer["status"], answer["isAuthTokenVerified"]) == ("SUCCESS", "FALSE")
    headers = device_headers(creds["api_key"], answer["AuthToken"])
    refused = desk.post("/rest/book/v2/getorderbook", {"clientcode": creds["client_code"]}, headers)
    assert refused.status_code == 401 and refused.json()["errorcode"] == "MO1001"
    otp = desk.emulator.sent_otps[creds["user_id"]]
    assert desk.post("/rest/login/v3/verifyotp", {"otp": otp}, headers).json()["status"] == "SUCCESS"
    assert desk.post("/rest/book/v2/getorderbook", {"clientcode": creds["client_code"]}, headers).status_code == 200


def test_no_session_or_a_past_expiry_is_auth_expired_without_a_call(desk, creds):
    with pytest.raises(AuthExpired) as caught:
        desk.broker(creds).order_book()
    assert caught.value.message == f"Motilal Oswal is not logged in for {creds['client_code']}; log in again"
    stale = BrokerSession("whatever", expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthExpired, match="session expired at 06:00 IST"):
        desk.broker(creds, session=stale).order_book()
    assert not desk.emulator.calls


# --------------------------------------------------------------------------- protocol (emulator)


@pytest.mark.parametrize("path", [p for paths in ROUTES.values() for p in paths])
def test_every_path_is_post_only(desk, path):
    assert desk.http.get(desk.url + path, timeout=5).status_code == 405


@pytest.mark.parametrize(
    "api_key, token, status, code",
    [
        (None, "x", 401, "MO1001"),
        ("key", None, 401, "MO1001"),
        ("key", "not-a-token", 401, "MO1001"),
    ],
)
def test_missing_or_bad_auth_headers_are_failure_401(desk, creds, api_key, token, status, code):
    response = desk.post(
        "/rest/book/v1/gettradebook", {"clientcode": creds["client_code"]}, device_headers(api_key, token)
    )
    assert response.status_code == status
    assert (response.json()["status"], response.json()["errorcode"]) == ("FAILURE", code)


def test_web_source_without_browser_headers_is_refused(desk, creds):
    headers = device_headers(creds["api_key"], desk.raw_token(creds))
    del headers["browsername"]
    response = desk.post("/rest/book/v1/gettradebook", {"clientcode": creds["client_code"]}, headers)
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid or missing header: browsername"


def test_adapter_sends_the_motilal_header_set(desk, creds, broker):
    broker.trades()
    _, headers, body = desk.emulator.calls[-1]
    assert headers["Authorization"] == broker._session.access_token  # raw token, no "Bearer"
    assert headers["Apikey"] == creds["api_key"] and headers["User-Agent"] == "MOSL/V.1.1.0"
    assert headers["Sourceid"] == "WEB" and headers["Vendorinfo"] == creds["user_id"]
    for name in ("Clientlocalip", "Clientpublicip", "Macaddress", "Browsername", "Browserversion", "Osname"):
        assert headers[name]
    assert body == {"clientcode": creds["client_code"]}


def test_emulator_admin_endpoint_creates_accounts(desk):
    created = desk.http.post(desk.url + "/_emulator/accounts", json={"client_codes": ["ADM1"]}, timeout=5).json()
    assert created["client_codes"] == ["ADM1"] and created["totp_secret"]


# --------------------------------------------------------------------------- place


def test_market_order_fills_and_shows_everywhere(desk, creds, broker):
    order_id = broker.place(order_request(quantity=5, tag="T1", algo_id="ALGO42"))
    body = desk.emulator.last_body("/placeorder")
    assert body == {
        "clientcode": creds["client_code"],
        "exchange": "NSE",
        "symboltoken": 1594,
        "buyorsell": "BUY",
        "ordertype": "MARKET",
        "producttype": "DELIVERY",
        "orderduration": "DAY",
        "price": 0,
        "triggerprice": 0,
        "quantityinlot": 5,
        "disclosedquantity": 0,
        "amoorder": "N",
        "algoid": "ALGO42",
        "goodtilldate": "",
        "tag": "T1",
        "participantcode": "",
    }
    assert [(e.account, e.order_id, e.tag) for e in desk.emulator.ledger.entries()] == [
        (creds["client_code"], order_id, "T1")
    ]
    order = book_order(broker, order_id)
    assert (order.status, order.filled_quantity, order.average_price, order.raw_status) == (
        BrokerOrderStatus.COMPLETE,
        5,
        Decimal("1534.60"),
        "Traded",
    )
    trade = broker.trades()[0]
    assert (trade.order_id, trade.quantity, trade.price, trade.side, trade.product) == (
        order_id,
        5,
        Decimal("1534.60"),
        Side.BUY,
        Product.CNC,
    )
    assert trade.filled_at.tzinfo is not None and abs(trade.filled_at - utcnow()) < timedelta(seconds=5)
    assert [(p.tradingsymbol, p.quantity) for p in broker.positions()] == [("INFY", 5)]


@pytest.mark.parametrize(
    "product, wire",
    [(Product.CNC, "DELIVERY"), (Product.MIS, "VALUEPLUS"), (Product.MTF, "MTF"), (Product.NRML, "NORMAL")],
)
def test_products_map_both_ways(desk, broker, product, wire):
    order_id = resting_limit(broker, quantity=2, product=product)
    assert desk.emulator.last_body("/placeorder")["producttype"] == wire
    assert book_order(broker, order_id).product is product


@pytest.mark.parametrize(
    "order_type, price, trigger, wire, wire_price, echoed",
    [
        (OrderType.LIMIT, "1500.00", None, "LIMIT", Decimal("1500.00"), "Limit"),
        (OrderType.MARKET, None, None, "MARKET", 0, "Market"),
        (OrderType.SL, "1550.00", "1549.00", "STOPLOSS", Decimal("1550.00"), "Stoploss"),
        (OrderType.SLM, None, "1549.00", "STOPLOSS", 0, "Stoploss"),
    ],
)
def test_order_types_map_both_ways(desk, broker, order_type, price, trigger, wire, wire_price, echoed):
    order_id = broker.place(order_request(order_type=order_type, price=price, trigger=trigger))
    body = desk.emulator.last_body("/placeorder")
    assert (body["ordertype"], body["price"], body["triggerprice"]) == (wire, wire_price, Decimal(trigger or 0))
    assert desk.emulator.book.order(order_id).row()["ordertype"] == echoed
    assert book_order(broker, order_id).order_type is order_type


def test_ioc_goes_out_as_ioc_and_an_unmatched_ioc_is_cancelled(desk, broker):
    order_id = resting_limit(broker, validity=Validity.IOC)
    assert desk.emulator.last_body("/placeorder")["orderduration"] == "IOC"
    order = book_order(broker, order_id)
    assert (order.status, order.status_message) == (BrokerOrderStatus.CANCELLED, "IOC order cancelled by the exchange")


def test_price_1234_05_goes_out_and_comes_back_exactly(desk, broker):
    desk.emulator.add_instrument("ROUNDTRIP", 99001, "1234.00", tick="0.05")
    ref = {"exchange": "NSE", "tradingsymbol": "ROUNDTRIP", "exchange_token": 99001}
    order_id = broker.place(order_request(ref, order_type=OrderType.LIMIT, quantity=3, price="1234.05"))
    assert desk.emulator.last_body("/placeorder")["price"] == Decimal("1234.05")
    assert book_order(broker, order_id).price == Decimal("1234.05")
    desk.emulator.fill(order_id)
    assert broker.trades()[0].price == Decimal("1234.05")
    assert broker.positions()[0].average_price == Decimal("1234.05")
    assert book_order(broker, order_id).average_price == Decimal("1234.05")


@pytest.mark.parametrize(
    "request_kw, message",
    [
        ({"tag": "ELEVENCHARS"}, "Motilal Oswal order tags are 1 to 10 letters and digits"),
        ({"tag": "bad-tag"}, "Motilal Oswal order tags are 1 to 10 letters and digits"),
        ({"order_type": OrderType.LIMIT}, "A LIMIT order needs a price"),
        ({"order_type": OrderType.SLM}, "A SL-M order needs a trigger price"),
        ({"order_type": OrderType.SL, "trigger": "1500.00"}, "A SL order needs a price"),
        ({"quantity": 0}, "Quantity must be a positive whole number"),
    ],
)
def test_malformed_orders_are_invalid_input_and_never_sent(desk, broker, request_kw, message):
    with pytest.raises(InvalidInput) as caught:
        broker.place(order_request(**request_kw))
    assert caught.value.message == message
    assert desk.emulator.ledger.count() == 0


@pytest.mark.parametrize(
    "request_kw, message",
    [
        ({"price": "1534.65"}, "Price 1534.65 should be in multiples of tick size 0.10"),
        ({"price": "1700.00"}, "Price 1700.00 is outside the circuit limits 1381.10 - 1688.10"),
        ({"price": "1500.00", "quantity": 1000}, "RMS: Margin Exceeds, Required: 1500000.00, Available: 1000000.00"),
    ],
)
def test_broker_refusals_are_rejected_with_the_brokers_message(desk, broker, request_kw, message):
    with pytest.raises(Rejected) as caught:
        broker.place(order_request(order_type=OrderType.LIMIT, **request_kw))
    assert caught.value.reason == message
    assert desk.emulator.ledger.count() == 0


# --------------------------------------------------------------------------- status words


@pytest.mark.parametrize(
    "word, filled, expected",
    [
        ("Confirm", 0, BrokerOrderStatus.PENDING),
        ("Sent", 0, BrokerOrderStatus.PENDING),
        ("Open", 0, BrokerOrderStatus.OPEN),
        ("Open", 3, BrokerOrderStatus.PARTIAL),
        ("Partially Traded", 3, BrokerOrderStatus.PARTIAL),
        ("Traded", 0, BrokerOrderStatus.COMPLETE),
        ("Complete", 0, BrokerOrderStatus.COMPLETE),
        ("Cancel", 0, BrokerOrderStatus.CANCELLED),
        ("Rejected", 0, BrokerOrderStatus.REJECTED),
        ("Error", 0, BrokerOrderStatus.REJECTED),
    ],
)
def test_motilal_status_words_map_to_the_port(desk, broker, word, filled, expected):
    order_id = resting_limit(broker)
    if filled:
        desk.emulator.fill(order_id, filled)
    desk.emulator.set_status(order_id, word, reason="RMS:Blocked" if word in ("Rejected", "Error") else "")
    order = book_order(broker, order_id)
    assert (order.status, order.raw_status, order.filled_quantity) == (expected, word, filled)
    if expected is BrokerOrderStatus.REJECTED:
        assert order.status_message == "RMS:Blocked"


def test_partial_fill_is_open_with_qtytradedtoday_on_the_wire(desk, broker):
    order_id = resting_limit(broker)
    desk.emulator.fill(order_id, 4, "1499.90")
    assert desk.emulator.book.order(order_id).row()["orderstatus"] == "Open"
    order = book_order(broker, order_id)
    assert (order.status, order.filled_quantity, order.pending_quantity, order.average_price) == (
        BrokerOrderStatus.PARTIAL,
        4,
        6,
        Decimal("1499.90"),
    )


def test_orders_by_tag_finds_only_that_tag(broker):
    resting_limit(broker, tag="A1")
    wanted = resting_limit(broker, tag="B2")
    resting_limit(broker)
    assert [o.order_id for o in broker.orders_by_tag("B2")] == [wanted]


# --------------------------------------------------------------------------- modify and cancel


def test_modify_reads_the_book_first_and_echoes_lastmodifiedtime(desk, broker):
    order_id = resting_limit(broker)
    desk.emulator.fill(order_id, 3)
    row = desk.emulator.book.order(order_id).row()
    assert broker.modify(order_id, price=Decimal("1501.50")) == order_id
    paths = [path for path, _, _ in desk.emulator.calls][-2:]
    assert paths == ["/rest/book/v2/getorderbook", "/rest/trans/v2/modifyorder"]
    body = desk.emulator.last_body("/modifyorder")
    assert body == {
        "clientcode": broker.account.client_code,
        "uniqueorderid": order_id,
        "newordertype": "LIMIT",
        "neworderduration": "DAY",
        "newquantityinlot": 10,
        "newdisclosedquantity": 0,
        "newprice": Decimal("1501.50"),
        "newtriggerprice": 0,
        "newgoodtilldate": "",
        "lastmodifiedtime": row["lastmodifiedtime"],
        "qtytradedtoday": 3,
    }
    order = book_order(broker, order_id)
    assert (order.price, order.quantity, order.status) == (Decimal("1501.50"), 10, BrokerOrderStatus.PARTIAL)


def test_modify_to_sl_m_sends_stoploss_with_price_zero(desk, broker):
    order_id = resting_limit(broker, quantity=4)
    broker.modify(order_id, order_type=OrderType.SLM, trigger_price=Decimal("1550.00"), quantity=6)
    body = desk.emulator.last_body("/modifyorder")
    assert (body["newordertype"], body["newprice"], body["newtriggerprice"], body["newquantityinlot"]) == (
        "STOPLOSS",
        0,
        Decimal("1550.00"),
        6,
    )
    assert book_order(broker, order_id).order_type is OrderType.SLM


@pytest.mark.parametrize("race", ["touched", "filled"])
def test_modify_on_a_stale_view_is_rejected_like_motilal(desk, broker, monkeypatch, race):
    order_id = resting_limit(broker)
    read_row = broker._order_row

    def row_then_order_changes(oid):
        row = read_row(oid)
        if race == "touched":
            desk.emulator.set_status(oid, "Open")
        else:
            desk.emulator.fill(oid, 1)
        return row

    monkeypatch.setattr(broker, "_order_row", row_then_order_changes)
    with pytest.raises(Rejected) as caught:
        broker.modify(order_id, price=Decimal("1490.00"))
    assert caught.value.reason == "Order has been modified, please refresh"
    assert desk.emulator.book.order(order_id).price == Decimal("1500.00")


def test_modify_of_an_unknown_order_is_rejected(broker):
    with pytest.raises(Rejected) as caught:
        broker.modify("0999999T000000", price=Decimal("1500.00"))
    assert caught.value.reason == "Motilal Oswal has no order 0999999T000000 today"


def test_cancel_and_cancel_of_a_traded_order(desk, broker):
    open_id = resting_limit(broker)
    assert broker.cancel(open_id) == open_id
    assert desk.emulator.last_body("/cancelorder") == {
        "clientcode": broker.account.client_code,
        "uniqueorderid": open_id,
    }
    assert book_order(broker, open_id).status is BrokerOrderStatus.CANCELLED
    traded_id = broker.place(order_request())
    with pytest.raises(Rejected) as caught:
        broker.cancel(traded_id)
    assert caught.value.reason == "Order is already in Traded state"


# --------------------------------------------------------------------------- portfolio


def test_positions_net_and_average_come_from_the_buy_and_sell_legs(desk, broker):
    broker.place(order_request(quantity=10, product=Product.MIS))
    desk.emulator.set_ltp("INFY", "1540.00")
    broker.place(order_request(side=Side.SELL, quantity=4, product=Product.MIS))
    broker.place(order_request(SBIN, side=Side.SELL, quantity=5, product=Product.MIS))
    infy, sbin = sorted(broker.positions(), key=lambda p: p.tradingsymbol)
    assert (infy.quantity, infy.buy_quantity, infy.sell_quantity, infy.product) == (6, 10, 4, Product.MIS)
    assert (infy.average_price, infy.last_price) == (Decimal("1534.60"), Decimal("1540.00"))
    assert (infy.realised_pnl, infy.unrealised_pnl) == (Decimal("21.60"), Decimal("32.40"))
    assert (sbin.quantity, sbin.average_price) == (-5, Decimal("812.35"))
    assert (
        desk.emulator.book.position_rows(desk.emulator.book.clients[broker.account.client_code])[0]["productname"]
        == "VALUEPLUS"
    )


def test_dp_holdings(desk):
    creds = desk.account(holdings={"TCS": [3, "3300.25"]})
    holding = desk.login(creds).holdings()[0]
    assert (holding.exchange, holding.tradingsymbol, holding.quantity, holding.average_price, holding.isin) == (
        "NSE",
        "TCS",
        3,
        Decimal("3300.25"),
        "INE467B01029",
    )


def test_funds_read_srno_102_220_and_300(desk):
    creds = desk.account(cash="250000.50", collateral="1000")
    broker = desk.login(creds)
    broker.place(order_request(quantity=10))
    funds = broker.funds()
    assert (funds.available_cash, funds.collateral, funds.margin_used) == (
        Decimal("250000.50"),
        Decimal("1000"),
        Decimal("15346.00"),
    )
    assert funds.available_margin == Decimal("235654.50")


def test_empty_books_come_back_as_null_and_read_as_empty(desk, broker):
    raw = desk.post(
        "/rest/book/v1/gettradebook",
        {"clientcode": broker.account.client_code},
        device_headers(broker._api_key, broker._session.access_token),
    ).json()
    assert (raw["status"], raw["data"]) == ("SUCCESS", None)
    assert broker.order_book() == [] and broker.trades() == [] and broker.positions() == []
    assert broker.holdings() == []


# --------------------------------------------------------------------------- market data


def test_quotes_convert_paise_to_rupees_exactly(desk, broker):
    desk.emulator.add_instrument("PAISA", 99002, "123.57")
    raw = desk.post(
        "/rest/report/v1/getltpdata",
        {"clientcode": broker.account.client_code, "exchange": "NSE", "scripcode": 99002},
        device_headers(broker._api_key, broker._session.access_token),
    ).json()["data"]
    assert (raw["ltp"], raw["bid"], raw["ask"]) == (12357, 12356, 12358)
    refs = [InstrumentRef("NSE", "PAISA", 99002), InstrumentRef("NSE", "INFY", 1594)]
    quotes = broker.quotes(refs)
    paisa = quotes["NSE:PAISA"]
    assert (paisa.last_price, paisa.bids[0].price, paisa.asks[0].price, paisa.close) == (
        Decimal("123.57"),
        Decimal("123.56"),
        Decimal("123.58"),
        Decimal("123.57"),
    )
    assert quotes["NSE:INFY"].last_price == Decimal("1534.60")
    assert desk.emulator.last_body("/getltpdata") == {
        "clientcode": broker.account.client_code,
        "exchange": "NSE",
        "scripcode": 1594,
    }


def test_margin_required_is_a_conservative_value_estimate(desk, broker):
    desk.emulator.add_instrument("ROUNDTRIP", 99001, "1234.00", tick="0.05")
    roundtrip = {"exchange": "NSE", "tradingsymbol": "ROUNDTRIP", "exchange_token": 99001}
    requests_ = [
        order_request(roundtrip, order_type=OrderType.LIMIT, quantity=10, price="1234.05"),  # 12340.50
        order_request(quantity=2, product=Product.MIS),  # 2 × LTP 1534.60
        order_request(SBIN, side=Side.SELL, quantity=3, product=Product.MIS),  # a short: 3 × 812.35
        order_request(side=Side.SELL, quantity=100),  # CNC sell out of holdings: nothing
        order_request(SBIN, order_type=OrderType.SLM, trigger="850.00", quantity=2),  # trigger above LTP
    ]
    assert broker.margin_required(requests_) == Decimal("12340.50") + Decimal("3069.20") + Decimal("2437.05") + Decimal(
        "1700.00"
    )


def test_instruments_from_the_scrip_master_with_tick_sizes_in_paise(desk, broker):
    raw = desk.post(
        "/rest/report/v1/getscripsbyexchangename",
        {"clientcode": broker.account.client_code, "exchangename": "NSE"},
        device_headers(broker._api_key, broker._session.access_token),
    ).json()["data"]
    assert {r["scripshortname"]: r["ticksize"] for r in raw}["INFY"] == 10
    rows = {row.tradingsymbol: row for row in broker.instruments()}
    assert set(rows) == {"INFY", "RELIANCE", "TCS", "HDFCBANK", "SBIN", "ITC"}
    assert (rows["INFY"].exchange_token, rows["INFY"].tick_size, rows["INFY"].lot_size) == (1594, Decimal("0.10"), 1)
    assert (rows["HDFCBANK"].exchange_token, rows["HDFCBANK"].tick_size) == (1333, Decimal("0.05"))
    assert rows["TCS"].exchange_token == 11536 and rows["TCS"].instrument_type == "EQ"


# --------------------------------------------------------------------------- faults on place


def test_timeout_after_accept_is_unavailable_and_the_tag_finds_the_order(desk, creds):
    broker = desk.login(creds, timeout=0.3)
    desk.emulator.faults.script("place", "timeout_after_accept")
    with pytest.raises(Unavailable) as caught:
        broker.place(order_request(tag="TMO1"))
    assert caught.value.message == f"Motilal Oswal did not answer in 0.3 s; {MAYBE_PLACED}"
    assert desk.emulator.ledger.count(tag="TMO1") == 1
    assert [o.status for o in broker.orders_by_tag("TMO1")] == [BrokerOrderStatus.COMPLETE]


@pytest.mark.parametrize(
    "fault, booked, message",
    [
        ("drop_after_accept", 1, "Motilal Oswal closed the connection without an answer; " + MAYBE_PLACED),
        ("error_5xx_after_accept", 1, "Motilal Oswal answered HTTP 503; " + MAYBE_PLACED),
        ("error_5xx", 0, "Motilal Oswal answered HTTP 503; " + MAYBE_PLACED),
    ],
)
def test_ambiguous_place_outcomes_are_unavailable(desk, broker, fault, booked, message):
    desk.emulator.faults.script("place", fault)
    with pytest.raises(Unavailable) as caught:
        broker.place(order_request(tag="AMB1"))
    assert caught.value.message == message
    assert desk.emulator.ledger.count(tag="AMB1") == booked
    assert len(broker.orders_by_tag("AMB1")) == booked


def test_burst_429_is_rate_limited_with_retry_after_and_nothing_booked(desk, broker):
    desk.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited) as caught:
        broker.place(order_request())
    assert (caught.value.message, caught.value.retry_after) == (
        "Motilal Oswal is rate limiting this account; wait and retry",
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


def test_expire_sessions_by_client_code_logs_the_dealer_out(desk, creds, broker):
    desk.emulator.expire_sessions(creds["client_code"])
    with pytest.raises(AuthExpired):
        broker.positions()


# --------------------------------------------------------------------------- faults on modify, cancel, reads


def test_modify_timeout_is_unavailable_but_applied(desk, creds):
    broker = desk.login(creds, timeout=0.3)
    order_id = resting_limit(broker)
    desk.emulator.faults.script("modify", "timeout_after_accept")
    with pytest.raises(Unavailable) as caught:
        broker.modify(order_id, price=Decimal("1490.00"))
    assert caught.value.message == "Motilal Oswal did not answer in 0.3 s; the change may or may not have been applied"
    assert desk.emulator.book.order(order_id).price == Decimal("1490.00")


def test_cancel_5xx_after_accept_is_unavailable_but_cancelled(desk, broker):
    order_id = resting_limit(broker)
    desk.emulator.faults.script("cancel", "error_5xx_after_accept")
    with pytest.raises(Unavailable) as caught:
        broker.cancel(order_id)
    assert caught.value.message == "Motilal Oswal answered HTTP 503; the order may or may not be cancelled"
    assert book_order(broker, order_id).status is BrokerOrderStatus.CANCELLED


@pytest.mark.parametrize(
    "fault, error, message",
    [
        ("error_5xx", Unavailable, "Motilal Oswal answered HTTP 503; try again"),
        ("drop_after_accept", Unavailable, "Motilal Oswal closed the connection without an answer; try again"),
        ("burst_429", RateLimited, "Motilal Oswal is rate limiting this account; wait and retry"),
        ("expire_token", AuthExpired, SESSION_GONE),
    ],
)
def test_read_faults_map_like_writes(desk, broker, fault, error, message):
    desk.emulator.faults.script("read", fault)
    with pytest.raises(error) as caught:
        broker.order_book()
    assert caught.value.message == message


# --------------------------------------------------------------------------- error envelopes


@pytest.mark.parametrize(
    "kind, status, body, error, message",
    [
        (
            "place",
            200,
            {"status": "FAILURE", "message": "Technical Error", "errorcode": "MO8000", "data": None},
            Unavailable,
            "Motilal Oswal reported a technical error (Technical Error); " + MAYBE_PLACED,
        ),
        (
            "place",
            200,
            {"status": "FAILURE", "message": "RMS:Rule: Check circuit limit", "errorcode": "MO5100"},
            Rejected,
            "RMS:Rule: Check circuit limit",
        ),
        (
            "place",
            200,
            {"status": "SUCCESS", "message": "Order Placed Successfully", "errorcode": ""},
            Unavailable,
            "Motilal Oswal said the order was accepted but sent no order id; " + MAYBE_PLACED,
        ),
        (
            "place",
            200,
            "<html>Bad gateway page</html>",
            Unavailable,
            "Motilal Oswal sent an unreadable answer (HTTP 200); " + MAYBE_PLACED,
        ),
        (
            "place",
            400,
            {"status": "ERROR", "message": "Invalid Exchange", "errorcode": ""},
            Rejected,
            "Invalid Exchange",
        ),
        (
            "read",
            200,
            {"status": "ERROR", "message": "Invalid User Id or Auth Token", "errorcode": "MO1001"},
            AuthExpired,
            SESSION_GONE,
        ),
        (
            "read",
            200,
            {"status": "FAILURE", "message": "Login Id/Password Is Invalid", "errorcode": "MOSL100"},
            AuthExpired,
            "Motilal Oswal session is no longer valid (Login Id/Password Is Invalid); log in again",
        ),
        (
            "read",
            200,
            {"status": "SUCCESS", "message": "SUCCESS", "data": [{"uniqueorderid": "X"}]},
            Unavailable,
            "Motilal Oswal sent an order book the desk cannot read; try again",
        ),
        ("read", 200, "", Unavailable, "Motilal Oswal sent an unreadable answer (HTTP 200); try again"),
    ],
)
def test_error_envelopes_map_to_typed_errors(desk, broker, kind, status, body, error, message):
    desk.emulator.override_next(kind, status, body)
    call = (lambda: broker.place(order_request())) if kind == "place" else broker.order_book
    with pytest.raises(error) as caught:
        call()
    assert caught.value.message == message
    assert desk.emulator.ledger.count() == 0


def test_order_id_inside_data_is_accepted(desk, broker):
    desk.emulator.override_next(
        "place", 200, {"status": "SUCCESS", "message": "", "errorcode": "", "data": {"uniqueorderid": "1500006T024312"}}
    )
    assert broker.place(order_request()) == "1500006T024312"


# --------------------------------------------------------------------------- rate limits


def test_more_than_40_orders_a_second_is_rate_limited(desk, broker):
    for _ in range(40):
        resting_limit(broker, quantity=1)
    with pytest.raises(RateLimited) as caught:
        resting_limit(broker, quantity=1)
    assert caught.value.retry_after == 1.0
    assert desk.emulator.ledger.count() == 40


@pytest.fixture(scope="module")
def strict_desk():
    desk = start_desk()  # Motilal's own 2 calls/s for everything but orders
    yield desk
    desk.close()


def test_a_third_read_within_a_second_is_rate_limited(strict_desk):
    strict_desk.reset()
    broker = strict_desk.login(strict_desk.account())  # login is not counted
    broker.order_book()
    broker.trades()
    with pytest.raises(RateLimited):
        broker.positions()


def test_paced_reads_stay_under_two_a_second(strict_desk):
    strict_desk.reset()
    broker = strict_desk.login(strict_desk.account(), read_interval=None)  # the adapter's own pacing
    refs = [InstrumentRef("NSE", s, t) for s, t in (("INFY", 1594), ("SBIN", 3045), ("ITC", 1660))]
    assert set(broker.quotes(refs)) == {"NSE:INFY", "NSE:SBIN", "NSE:ITC"}


# --------------------------------------------------------------------------- dealer mode


def test_one_dealer_token_acts_for_each_granted_client_separately(desk):
    creds = desk.account(client_codes=["C1001", "C1002"])
    first = desk.login(creds)
    second = desk.broker(creds, client_code="C1002", session=first._session)
    first_id = first.place(order_request(tag="D1"))
    second.place(order_request(tag="D2"))
    assert [o.order_id for o in first.order_book()] == [first_id]
    assert [o.tag for o in second.order_book()] == ["D2"]
    assert {(e.account, e.tag) for e in desk.emulator.ledger.entries()} == {("C1001", "D1"), ("C1002", "D2")}
    stranger = desk.broker(creds, client_code="ZZ9999", session=first._session)
    with pytest.raises(Rejected) as caught:
        stranger.order_book()
    assert caught.value.reason == f"Client code ZZ9999 is not mapped to dealer {creds['user_id']}"


# --------------------------------------------------------------------------- logs


def test_logs_are_key_value_and_never_carry_secrets(desk, creds, caplog):
    caplog.set_level(logging.DEBUG)
    broker = desk.broker(creds)
    params = login_params(creds)
    session = broker.complete_login(params)
    broker.place(order_request(tag="LOG1"))
    desk.emulator.override_next(
        "read", 200, {"status": "FAILURE", "message": "bad", "errorcode": "MO1", "AuthToken": session.access_token}
    )
    with pytest.raises(Rejected):
        broker.order_book()
    text = caplog.text
    assert f"broker=motilal op=place client={creds['client_code']} status=200" in text
    assert "op=order_book" in text and '"AuthToken":"***"' in text
    for secret in (
        creds["password"],
        creds["api_key"],
        params["totp"],
        creds["two_fa"],
        session.access_token,
        password_hash(creds),
    ):
        assert secret not in text
