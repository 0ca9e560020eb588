"""Contract tests: the ShareKhan adapter against its emulator over real HTTP on loopback."""

from __future__ import annotations

import logging
import socket
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.brokers.sharekhan_fixtures import (
    INFY,
    SBIN,
    ShareKhanDesk,
    limit,
    order_request,
    service_headers,
    start_desk,
)
from webapp.brokers import broker_class
from webapp.brokers.base import (
    Account,
    AuthExpired,
    BrokerOrderStatus,
    Holding,
    InstrumentRef,
    InvalidInput,
    OrderType,
    Position,
    Product,
    RateLimited,
    Rejected,
    Side,
    Unavailable,
    Validity,
)
from webapp.brokers.sharekhan import ShareKhan
from webapp.timeutil import IST, UTC, utcnow

PLACE_LOST = "; the order may or may not be placed"
OMS_DOWN = "ShareKhan answered HTTP 503 (Order management system is not reachable)"


@pytest.fixture(scope="module")
def shared_desk():
    desk = start_desk()
    yield desk
    desk.close()


@pytest.fixture
def desk(shared_desk: ShareKhanDesk):
    shared_desk.reset()
    yield shared_desk
    shared_desk.reset()


@pytest.fixture
def creds(desk: ShareKhanDesk):
    return desk.account()


@pytest.fixture
def broker(desk: ShareKhanDesk, creds) -> ShareKhan:
    return desk.adapter(creds)


def booked(desk: ShareKhanDesk, creds) -> list[dict]:
    return [e.payload for e in desk.emulator.ledger.entries() if e.account == creds["customer_id"]]


def only_order(broker: ShareKhan):
    [order] = broker.order_book()
    return order


# ---------------------------------------------------------------------------- the adapter's card


def test_registered_with_redirect_login_no_tag_and_ten_orders_a_second():
    assert broker_class("sharekhan") is ShareKhan
    assert (ShareKhan.tag_max_length, ShareKhan.login_kind, ShareKhan.rate_limits.orders_per_second) == (
        None,
        "redirect",
        10,
    )
    assert {f.name: (f.secret, f.required) for f in ShareKhan.credential_fields} == {
        "api_key": (False, True),
        "secret_key": (True, True),
        "vendor_key": (True, False),
        "version_id": (False, False),
    }


@pytest.mark.parametrize(
    "extra, query",
    [
        ({}, "api_key=K1&state=s-1"),
        ({"vendor_key": "V9", "version_id": "1005"}, "api_key=K1&state=s-1&version_id=1005"),  # no secret in a URL
        ({"secret_key": "S" * 32, "vendor_key": "V9"}, "api_key=K1&state=s-1"),
    ],
)
def test_login_url(extra, query):
    adapter = ShareKhan(Account("73101", {"api_key": "K1", **extra}), {"login_url": "https://sk.example/"})
    assert adapter.login_url("https://desk/cb", "s-1") == f"https://sk.example/skapi/auth/login.html?{query}"
    adapter.close()


def test_session_dies_at_the_next_six_in_the_morning_ist():
    assert ShareKhan.session_expires_at(datetime(2025, 10, 28, 10, 0, tzinfo=IST)) == datetime(
        2025, 10, 29, 0, 30, tzinfo=UTC
    )
    assert ShareKhan.session_expires_at(datetime(2025, 10, 28, 5, 0, tzinfo=IST)) == datetime(
        2025, 10, 28, 0, 30, tzinfo=UTC
    )


# ---------------------------------------------------------------------------- login


@pytest.mark.parametrize(
    "account_fields, extra",
    [
        ({}, {}),
        ({}, {"version_id": "1005"}),
        ({"vendor_key": "VEND1"}, {"version_id": "1006"}),
    ],
)
def test_browser_login_gives_a_working_session(desk, account_fields, extra):
    creds = desk.account(logged_in=False, **account_fields)
    adapter = desk.adapter(creds, credentials=extra)
    params = desk.browser_login(adapter, creds, state="40213")
    assert params["state"] == "40213"
    session = adapter.complete_login(params)
    assert session.extra == {"customer_id": creds["customer_id"], "login_id": creds["login_id"]}
    assert session.expires_at == ShareKhan.session_expires_at(utcnow())
    logged_in = desk.adapter(creds | {"access_token": session.access_token}, credentials=extra)
    assert logged_in.funds().available_cash == Decimal("1000000.00")


def test_wrong_password_shows_the_form_again(desk, creds):
    answer = desk.http.post(
        f"{desk.url}/skapi/auth/login.html",
        timeout=5,
        allow_redirects=False,
        data={"api_key": creds["api_key"], "state": "1", "customer_id": creds["customer_id"], "password": "nope"},
    )
    assert answer.status_code == 401 and "Invalid customer id or password" in answer.text


def test_request_token_is_single_use(desk, creds):
    adapter = desk.adapter(creds, logged_in=False)
    params = desk.browser_login(adapter, creds)
    adapter.complete_login(params)
    with pytest.raises(AuthExpired) as error:
        adapter.complete_login(params)
    assert error.value.message == (
        "ShareKhan session is no longer valid (Request token is invalid or expired); log in again"
    )


@pytest.mark.parametrize(
    "secret, message",
    [
        (
            "0" * 32,
            "The ShareKhan login answer could not be decrypted with this client's secret key; "
            "check the secret key and log in again",
        ),
        ("short", "The ShareKhan secret key must be exactly 32 characters; check this client's credentials"),
    ],
)
def test_a_wrong_secret_key_cannot_finish_the_login(desk, creds, secret, message):
    params = desk.browser_login(desk.adapter(creds), creds)
    with pytest.raises(InvalidInput) as error:
        desk.adapter(creds, credentials={"secret_key": secret}).complete_login(params)
    assert error.value.message == message


def test_a_login_for_another_customer_is_refused(desk, creds):
    params = desk.browser_login(desk.adapter(creds), creds)
    with pytest.raises(InvalidInput) as error:
        desk.adapter(creds, client_code="99999").complete_login(params)
    assert error.value.message == (
        f"This login is for ShareKhan customer {creds['customer_id']}, but this client "
        "is 99999; log in with the client's own account"
    )
    with pytest.raises(InvalidInput, match="no request_token"):
        desk.adapter(creds).complete_login({"state": "1"})


# ---------------------------------------------------------------------------- placing


def test_a_limit_order_goes_out_in_sharekhans_shape_and_comes_back_open(desk, creds, broker):
    order_id = broker.place(limit("1500.30", quantity=3))
    assert booked(desk, creds) == [
        {
            "customerId": int(creds["customer_id"]),
            "scripCode": 1594,
            "tradingSymbol": "INFY",
            "exchange": "NC",
            "transactionType": "B",
            "quantity": 3,
            "disclosedQty": 0,
            "price": "1500.30",
            "triggerPrice": "0",
            "rmsCode": "ANY",
            "afterHour": "N",
            "orderType": "NORMAL",
            "channelUser": creds["login_id"],
            "validity": "GFD",
            "requestType": "NEW",
            "productType": "INVESTMENT",
        }
    ]
    order = only_order(broker)
    assert (order.order_id, order.status, order.raw_status, order.exchange, order.side, order.order_type) == (
        order_id,
        BrokerOrderStatus.OPEN,
        "Pending",
        "NSE",
        Side.BUY,
        OrderType.LIMIT,
    )
    assert (order.price, order.trigger_price, order.quantity, order.filled_quantity) == (Decimal("1500.30"), None, 3, 0)
    assert order.placed_at.tzinfo is UTC and abs(order.placed_at - utcnow()) < timedelta(seconds=5)
    assert order.tag is None and order.exchange_order_id


def test_a_decimal_price_round_trips_exactly(desk, creds, broker):
    desk.emulator.add_instrument("TICKCO", 990001, "1200.00", "0.05")
    broker.place(limit("1234.05", instrument={"exchange": "NSE", "tradingsymbol": "TICKCO", "exchange_token": 990001}))
    assert booked(desk, creds)[0]["price"] == "1234.05"
    assert only_order(broker).price == Decimal("1234.05")


def test_a_market_order_fills_into_a_trade_a_position_and_used_margin(broker):
    order_id = broker.place(order_request(quantity=10, product=Product.MIS))
    order = only_order(broker)
    assert (order.status, order.raw_status, order.filled_quantity, order.average_price, order.price) == (
        BrokerOrderStatus.COMPLETE,
        "Fully Executed",
        10,
        Decimal("1500.00"),
        None,
    )
    [trade] = broker.trades()
    assert (trade.order_id, trade.side, trade.product, trade.quantity, trade.price) == (
        order_id,
        Side.BUY,
        Product.MIS,
        10,
        Decimal("1500.00"),
    )
    assert trade.filled_at.tzinfo is UTC
    assert broker.positions() == [
        Position(
            "NSE",
            "INFY",
            Product.MIS,
            10,
            Decimal("1500.00"),
            Decimal("1500.00"),
            Decimal("0.00"),
            Decimal("0.00"),
            10,
            0,
        )
    ]
    assert broker.funds().margin_used == Decimal("3000.00")  # 20% of 15,000 for BIGTRADE


@pytest.mark.parametrize(
    "product, word", [(Product.CNC, "INVESTMENT"), (Product.MIS, "BIGTRADE"), (Product.MTF, "MTF")]
)
def test_products_map_both_ways(desk, creds, broker, product, word):
    broker.place(limit("1490.00", product=product))
    assert booked(desk, creds)[0]["productType"] == word
    assert only_order(broker).product is product


@pytest.mark.parametrize(
    "order_type, side, price, trigger, wire",
    [
        (OrderType.SL, Side.SELL, "1480.00", "1490.00", ("1480.00", "1490.00")),
        (OrderType.SLM, Side.SELL, None, "1490.00", ("0", "1490.00")),
    ],
)
def test_stop_loss_orders_carry_the_trigger(desk, creds, broker, order_type, side, price, trigger, wire):
    broker.place(order_request(order_type=order_type, side=side, price=price, trigger=trigger, quantity=2))
    assert (booked(desk, creds)[0]["price"], booked(desk, creds)[0]["triggerPrice"]) == wire
    order = only_order(broker)
    assert (order.order_type, order.trigger_price, order.status) == (
        order_type,
        Decimal(trigger),
        BrokerOrderStatus.OPEN,
    )


def test_ioc_goes_out_as_ioc_and_an_unmatched_ioc_is_cancelled(desk, creds, broker):
    broker.place(limit("1490.00", validity=Validity.IOC))
    assert booked(desk, creds)[0]["validity"] == "IOC"
    assert only_order(broker).status is BrokerOrderStatus.CANCELLED


@pytest.mark.parametrize(
    "request_, message",
    [
        (order_request(product=Product.NRML), "ShareKhan has no NRML product for cash equity; use CNC, MIS or MTF"),
        (
            order_request({**INFY, "exchange": "NFO"}),
            "ShareKhan orders from the desk are cash equity only (NSE, BSE), not NFO",
        ),
        (order_request(quantity=0), "Quantity must be a positive whole number"),
        (order_request(order_type=OrderType.LIMIT), "A LIMIT order needs a price"),
        (order_request(order_type=OrderType.SLM), "A SL-M order needs a trigger price"),
    ],
)
def test_requests_sharekhan_cannot_take_are_refused_before_sending(desk, creds, broker, request_, message):
    with pytest.raises(InvalidInput) as error:
        broker.place(request_)
    assert error.value.message == message
    assert booked(desk, creds) == []


@pytest.mark.parametrize(
    "price, message",
    [
        ("1500.03", "Price 1500.03 is not a multiple of the tick size 0.10"),
        ("1700.00", "Price 1700.00 is outside the circuit limits 1350.00 - 1650.00"),
    ],
)
def test_tick_size_and_circuit_refusals_are_rejections(desk, creds, broker, price, message):
    with pytest.raises(Rejected) as error:
        broker.place(limit(price))
    assert error.value.reason == message
    assert booked(desk, creds) == []


def test_insufficient_funds_is_a_rejection(desk):
    creds = desk.account(cash="1000")
    with pytest.raises(Rejected) as error:
        desk.adapter(creds).place(limit("1500.00", quantity=10))
    assert error.value.reason == "Insufficient funds: required 15000.00, available 1000.00"


# ---------------------------------------------------------------------------- status words and fills


@pytest.mark.parametrize(
    "word, status",
    [
        ("In-Process", BrokerOrderStatus.PENDING),
        ("Pending", BrokerOrderStatus.OPEN),
        ("Trigger Pending", BrokerOrderStatus.TRIGGER_PENDING),
        ("Partly Executed", BrokerOrderStatus.PARTIAL),
        ("Fully Executed", BrokerOrderStatus.COMPLETE),
        ("Rejected", BrokerOrderStatus.REJECTED),
        ("Cancelled", BrokerOrderStatus.CANCELLED),
        ("Queued At Exchange", BrokerOrderStatus.PENDING),
    ],
)
def test_status_words(desk, broker, word, status):
    reason = "RMS: scrip in ban" if word == "Rejected" else ""
    desk.emulator.set_status(broker.place(limit("1490.00")), word, reason=reason)
    order = only_order(broker)
    assert (order.status, order.raw_status, order.status_message) == (status, word, reason or None)


def test_partial_fills_are_partial_whatever_the_word(desk, broker):
    order_id = broker.place(limit("1500.00", quantity=10))
    desk.emulator.fill(order_id, 4, "1500.10")
    order = only_order(broker)
    assert (order.status, order.raw_status, order.filled_quantity, order.average_price, order.pending_quantity) == (
        BrokerOrderStatus.PARTIAL,
        "Partly Executed",
        4,
        Decimal("1500.10"),
        6,
    )
    desk.emulator.set_status(order_id, "Pending")
    assert only_order(broker).status is BrokerOrderStatus.PARTIAL
    broker.cancel(order_id)
    order = only_order(broker)
    assert (order.status, order.filled_quantity) == (BrokerOrderStatus.CANCELLED, 4)
    assert [(t.quantity, t.price) for t in broker.trades()] == [(4, Decimal("1500.10"))]
    assert [o.raw_status for o in broker.order_history(order_id)] == [
        "In-Process",
        "Pending",
        "Partly Executed",
        "Pending",
        "Cancelled",
    ]


def test_modify_sends_the_whole_order_again(desk, broker):
    order_id = broker.place(limit("1500.00", quantity=10))
    assert broker.modify(order_id, quantity=5, price=Decimal("1495.50")) == order_id
    order = only_order(broker)
    assert (order.quantity, order.price, order.status) == (5, Decimal("1495.50"), BrokerOrderStatus.OPEN)
    with pytest.raises(Rejected, match="^Trigger price must not be above the price of a buy stop-loss order$"):
        broker.modify(order_id, order_type=OrderType.SL, trigger_price=Decimal("1496.00"))
    assert broker.modify(order_id, order_type=OrderType.SL, trigger_price=Decimal("1495.00")) == order_id
    assert (only_order(broker).order_type, only_order(broker).trigger_price) == (OrderType.SL, Decimal("1495.00"))
    with pytest.raises(InvalidInput, match="A LIMIT order needs a price"):
        broker.modify(broker.place(order_request(quantity=1)), order_type=OrderType.LIMIT)


def test_changing_a_finished_or_unknown_order_is_rejected(broker):
    order_id = broker.place(order_request())
    with pytest.raises(Rejected) as error:
        broker.modify(order_id, quantity=2)
    assert error.value.reason == f"Order {order_id} is Fully Executed and cannot be modified"
    with pytest.raises(Rejected) as error:
        broker.cancel(order_id)
    assert error.value.reason == f"Order {order_id} is Fully Executed and cannot be cancelled"
    with pytest.raises(Rejected) as error:
        broker.cancel("999")
    assert error.value.reason == "ShareKhan has no order 999 today for this client"


# ---------------------------------------------------------------------------- finding an order without a tag


def test_orders_by_tag_refuses_to_guess(broker):
    with pytest.raises(Unavailable) as error:
        broker.orders_by_tag("B1C2")
    assert error.value.message == (
        "ShareKhan orders carry no tag, so order B1C2 cannot be looked up by tag; "
        "it is matched by instrument, side, quantity and time instead"
    )


def test_find_order_matches_instrument_side_quantity_product_and_time(desk, creds, broker):
    sent_at = utcnow()
    wanted = limit("1490.00", quantity=7)
    order_id = broker.place(wanted)
    broker.place(limit("1490.00", quantity=8))
    broker.place(limit("1490.00", quantity=7, product=Product.MIS))
    broker.place(limit("1510.00", quantity=7, side=Side.SELL))
    broker.place(limit("819.00", quantity=7, instrument=SBIN))
    desk.adapter(desk.account()).place(wanted)  # the same order at another client
    assert [o.order_id for o in broker.find_order(wanted, sent_at)] == [order_id]
    assert broker.find_order(wanted, sent_at + timedelta(minutes=1)) == []
    second = broker.place(wanted)
    assert [o.order_id for o in broker.find_order(wanted, sent_at)] == [order_id, second]
    with pytest.raises(InvalidInput):
        broker.find_order(wanted, datetime.now())  # noqa: DTZ005  (a naive time is what must be refused)


# ---------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    "fault, message, booked_count",
    [
        ("timeout_after_accept", f"ShareKhan did not answer in 0.3 s{PLACE_LOST}", 1),
        ("drop_after_accept", f"ShareKhan closed the connection without answering{PLACE_LOST}", 1),
        ("error_5xx_after_accept", OMS_DOWN + PLACE_LOST, 1),
        ("error_5xx", OMS_DOWN + PLACE_LOST, 0),
    ],
)
def test_lost_answers_are_unavailable_and_the_order_is_found_or_not(desk, creds, fault, message, booked_count):
    broker = desk.adapter(creds, timeout=0.3)
    desk.emulator.faults.script("place", fault)
    sent_at = utcnow()
    with pytest.raises(Unavailable) as error:
        broker.place(order_request(quantity=3))
    assert error.value.message == message
    assert len(booked(desk, creds)) == booked_count
    assert len(broker.find_order(order_request(quantity=3), sent_at)) == booked_count


def test_burst_429_is_rate_limited_and_nothing_is_booked(desk, creds, broker):
    desk.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited) as error:
        broker.place(order_request())
    assert (error.value.retry_after, error.value.message) == (
        1.0,
        "ShareKhan is rate limiting this account (HTTP 429); the request was not accepted",
    )
    assert booked(desk, creds) == []


def test_more_than_ten_orders_a_second_are_rate_limited(desk, creds, broker):
    accepted = [broker.place(limit("1490.00")) for _ in range(10)]
    with pytest.raises(RateLimited):
        broker.place(limit("1490.00"))
    assert len(set(accepted)) == 10 and len(booked(desk, creds)) == 10
    desk.adapter(desk.account()).place(limit("1490.00"))  # another client has its own budget


def test_a_token_revoked_mid_session_needs_a_new_login(desk, broker):
    broker.place(limit("1490.00"))
    desk.emulator.faults.script("cancel", "expire_token")
    with pytest.raises(AuthExpired) as error:
        broker.cancel(only_order(broker).order_id)
    assert error.value.message == (
        "ShareKhan session is no longer valid (Invalid or expired access token); log in again"
    )
    with pytest.raises(AuthExpired):
        broker.order_book()


def test_read_faults_are_unavailable(desk, creds):
    broker = desk.adapter(creds, timeout=0.3)
    desk.emulator.faults.script("read", "error_5xx", "timeout_after_accept", "drop_after_accept")
    with pytest.raises(Unavailable) as error:
        broker.order_book()
    assert error.value.message == OMS_DOWN
    with pytest.raises(Unavailable, match=r"^ShareKhan did not answer in 0.3 s$"):
        broker.positions()
    with pytest.raises(Unavailable, match=r"^ShareKhan closed the connection without answering$"):
        broker.holdings()


@pytest.mark.parametrize(
    "status, body, error, message",
    [
        (400, {"message": "Invalid scrip", "error_type": "InputException"}, Rejected, "Invalid scrip"),
        (500, {"message": "Order limit exceeded", "error_type": "OrderException"}, Rejected, "Order limit exceeded"),
        (403, {"message": "Segment not enabled", "error_type": "PermissionException"}, Rejected, "Segment not enabled"),
        (
            503,
            {"message": "OMS down", "error_type": "NetworkException"},
            Unavailable,
            f"ShareKhan answered HTTP 503 (OMS down){PLACE_LOST}",
        ),
        (
            502,
            {"message": "Bad OMS answer", "error_type": "DataException"},
            Unavailable,
            f"ShareKhan answered HTTP 502 (Bad OMS answer){PLACE_LOST}",
        ),
        (
            500,
            {"message": "Oops", "error_type": "GeneralException"},
            Unavailable,
            f"ShareKhan answered HTTP 500 (Oops){PLACE_LOST}",
        ),
        (
            200,
            {"message": "Token expired", "error_type": "TokenException"},
            AuthExpired,
            "ShareKhan session is no longer valid (Token expired); log in again",
        ),
        (401, "", AuthExpired, "ShareKhan refused the session (HTTP 401); log in again"),
        (404, "<html>Not found</html>", Unavailable, f"ShareKhan answered HTTP 404{PLACE_LOST}"),
        (200, "<html>gateway</html>", Unavailable, f"ShareKhan sent an unreadable answer (HTTP 200){PLACE_LOST}"),
        (
            200,
            {"data": {"orderStatus": "In-Process"}, "status": 200},
            Unavailable,
            f"ShareKhan accepted the request but sent no order id{PLACE_LOST}",
        ),
        (200, {"data": {"orderId": "1"}, "status": 500}, Unavailable, f"ShareKhan answered status 500{PLACE_LOST}"),
        (429, "", RateLimited, "ShareKhan is rate limiting this account (HTTP 429); the request was not accepted"),
    ],
)
def test_error_answers_map_to_typed_errors(desk, creds, broker, status, body, error, message):
    desk.emulator.respond_next("place", status, body)
    with pytest.raises(error) as raised:
        broker.place(order_request())
    assert raised.value.message == message
    assert booked(desk, creds) == []


def test_an_empty_answer_after_booking_is_unavailable_but_the_order_exists(desk, creds, broker):
    desk.emulator.respond_next("place", 200, "", after_accept=True)
    with pytest.raises(Unavailable, match="unreadable answer"):
        broker.place(order_request())
    assert len(booked(desk, creds)) == 1


def test_a_null_order_book_is_unreadable_not_empty(desk, broker):
    assert broker.order_book() == []  # ShareKhan's "no_records"
    desk.emulator.respond_next("read", 200, {"data": None, "status": 200})
    with pytest.raises(Unavailable, match="^ShareKhan sent an unreadable list$"):
        broker.order_book()


def test_an_unreachable_broker_sent_nothing(creds):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = ShareKhan(Account(creds["customer_id"], {"api_key": "k"}, None), {"base_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(AuthExpired, match="not logged in"):
        adapter.order_book()  # no session: no call at all
    with pytest.raises(Unavailable, match="^ShareKhan could not be reached; nothing was sent$"):
        adapter.instruments()
    adapter.close()


def test_the_emulator_checks_headers_customer_and_content_type(desk, creds):
    path = f"/skapi/services/reports/{creds['customer_id']}"
    for headers in (
        service_headers(creds),
        service_headers(creds, "forged"),
        service_headers(creds | {"api_key": "unknown"}, creds["access_token"]),
    ):
        answer = desk.get(path, headers)
        assert (answer.status_code, answer.json()["error_type"]) == (403, "TokenException")
    answer = desk.get("/skapi/services/reports/1", service_headers(creds, creds["access_token"]))
    assert (answer.status_code, answer.json()["error_type"]) == (403, "PermissionException")
    answer = desk.http.post(
        desk.url + "/skapi/services/orders",
        data="x=1",
        timeout=5,
        headers=service_headers(creds, creds["access_token"]) | {"Content-type": "text/plain"},
    )
    assert (answer.status_code, answer.json()["message"]) == (400, "Content-type must be application/json")


def test_trades_answer_on_both_documented_paths(desk, creds, broker):
    order_id = broker.place(order_request(quantity=2))
    headers = service_headers(creds, creds["access_token"])
    for prefix in ("orders", "reports"):
        answer = desk.get(f"/skapi/services/{prefix}/NC/{creds['customer_id']}/{order_id}/trades", headers)
        assert [row["tradeQty"] for row in answer.json()["data"]] == [2]


# ---------------------------------------------------------------------------- portfolio, data, margins


def test_positions_after_a_round_trip(desk, broker):
    broker.place(order_request(quantity=10, product=Product.MIS))
    desk.emulator.set_ltp("INFY", "1510.00")
    broker.place(order_request(quantity=4, product=Product.MIS, side=Side.SELL))
    assert broker.positions() == [
        Position(
            "NSE",
            "INFY",
            Product.MIS,
            6,
            Decimal("1500.00"),
            Decimal("1510.00"),
            Decimal("40.00"),
            Decimal("60.00"),
            10,
            4,
        )
    ]


def test_holdings_and_funds(desk, creds, broker):
    desk.emulator.add_holding(creds["customer_id"], "INFY", 10, "1400.25", t1_quantity=2)
    assert broker.holdings() == [Holding("NSE", "INFY", 10, Decimal("1400.25"), "INE009A01021", Decimal("1500.00"), 2)]
    broker.place(limit("1500.00", quantity=10))
    funds = broker.funds()
    assert (funds.available_cash, funds.margin_used, funds.opening_balance, funds.available_margin) == (
        Decimal("1000000.00"),
        Decimal("15000.00"),
        Decimal("1000000.00"),
        Decimal("985000.00"),
    )


def test_instruments_come_from_the_scrip_master(broker):
    rows = {row.tradingsymbol: row for row in broker.instruments()}
    infy = rows["INFY"]
    assert (infy.exchange, infy.exchange_token, infy.tick_size, infy.segment) == ("NSE", 1594, Decimal("0.10"), "NSE")
    assert rows["HDFCBANK"].tick_size == Decimal("0.05") and rows["SBIN"].lot_size == 1


def test_quotes_come_from_the_stream_not_rest(broker):
    with pytest.raises(Unavailable) as error:
        broker.quotes([InstrumentRef("NSE", "INFY", 1594)])
    assert error.value.message == "ShareKhan has no REST quote endpoint; its prices come from the live stream"


def test_margin_estimate_counts_full_value_except_delivery_sells(broker):
    assert broker.margin_required(
        [
            limit("1500.00", quantity=10),
            limit("1500.00", quantity=10, side=Side.SELL),
            order_request(order_type=OrderType.SLM, trigger="1490.00", quantity=2, product=Product.MIS, side=Side.SELL),
        ]
    ) == Decimal("17980.00")
    with pytest.raises(InvalidInput, match="give the INFY order a price"):
        broker.margin_required([order_request()])


def test_no_secret_reaches_the_logs(desk, caplog):
    creds = desk.account(logged_in=False, vendor_key="VENDORSECRET")
    adapter = desk.adapter(creds)
    params = desk.browser_login(adapter, creds)  # the browser's hop: the vendor key stays out of its URL
    caplog.set_level(logging.DEBUG)
    session = adapter.complete_login(params)
    logged_in = desk.adapter(creds | {"access_token": session.access_token})
    logged_in.place(order_request())
    desk.emulator.respond_next("place", 500, {"message": f"echo {session.access_token}", "error_type": "DataException"})
    with pytest.raises(Unavailable):
        logged_in.place(order_request())
    assert "op=place" in caplog.text
    for secret in (
        creds["secret_key"],
        creds["password"],
        session.access_token,
        params["request_token"],
        "VENDORSECRET",
    ):
        assert secret not in caplog.text
