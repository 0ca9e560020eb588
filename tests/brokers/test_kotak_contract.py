"""Contract tests: the Kotak Neo adapter against its emulator, over real loopback HTTP."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

import pytest

from tests.brokers.kotak_fixtures import (
    INFY,
    SBIN,
    TCS,
    KotakDesk,
    desk_account,
    login_params,
    order_request,
    session_of,
    start_desk,
)
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
from webapp.brokers.kotak.adapter import KotakBroker
from webapp.brokers.kotak.wire import trusted_base_url
from webapp.timeutil import IST, utcnow

MAYBE_PLACED = "the order may or may not be placed"


@pytest.fixture(scope="module")
def module_desk():
    # One server for the module; the 10 requests/s limit is relaxed here and has its own test.
    desk = start_desk(rate=10_000)
    yield desk
    desk.close()


@pytest.fixture
def desk(module_desk: KotakDesk):
    module_desk.reset(hang_seconds=2.0)
    yield module_desk
    module_desk.reset()


@pytest.fixture
def creds(desk: KotakDesk):
    return desk.account(cash="1000000", holdings={"TCS": [5, "3000.00"]})


@pytest.fixture
def broker(desk: KotakDesk, creds):
    return desk.broker(creds)


def book_order(broker, order_id):
    return next(o for o in broker.order_book() if o.order_id == order_id)


def resting_limit(broker, *, quantity=10, price="1500.00", **kw):
    return broker.place(order_request(order_type=OrderType.LIMIT, quantity=quantity, price=price, **kw))


# --------------------------------------------------------------------------- declaration


def test_adapter_declares_kotak_neo():
    assert KotakBroker.name == "kotak" and KotakBroker.label == "Kotak Neo"
    assert KotakBroker.login_kind == "form"
    assert [(f.name, f.secret) for f in KotakBroker.credential_fields] == [
        ("consumer_key", True),
        ("mobile_number", True),
    ]
    assert [(f.name, f.secret) for f in KotakBroker.login_fields] == [("totp", True), ("mpin", True)]
    assert (KotakBroker.rate_limits.orders_per_second, KotakBroker.rate_limits.reads_per_second) == (10, 10)
    assert KotakBroker.tag_max_length == 10
    assert KotakBroker.session_expiry_ist == time(6, 0)
    assert KotakBroker.settings["KOTAK_API_URL"] == "https://mis.kotaksecurities.com"
    assert KotakBroker.capabilities.quotes and KotakBroker.capabilities.streaming
    assert not KotakBroker.capabilities.historical_candles
    options = KotakBroker.options_from({"KOTAK_API_URL": "http://127.0.0.1:9", "BROKER_TIMEOUT_SECONDS": 3})
    assert options["base_url"] == "http://127.0.0.1:9" and options["timeout"] == 3


def test_desk_account_gives_a_live_session(desk, creds):
    client_code, credentials, session = desk_account(creds)
    assert client_code == creds["ucc"]
    assert credentials == {"consumer_key": creds["consumer_key"], "mobile_number": creds["mobile_number"]}
    assert timedelta(hours=7) < session.expires_at - utcnow() <= timedelta(hours=8)
    assert session.extra["base_url"] == desk.url
    assert desk.broker(creds, session=session).order_book() == []


# --------------------------------------------------------------------------- login


def test_login_runs_both_steps_and_keeps_the_base_url(desk, creds):
    broker = desk.broker(creds, logged_in=False)
    session = broker.complete_login(login_params(creds))
    login_headers = desk.emulator.last_headers("/login/1.0/tradeApiLogin")
    assert login_headers["Authorization"] == creds["consumer_key"]  # plain, no Bearer
    assert login_headers["Neo-Fin-Key"] == "neotradeapi"
    body = desk.emulator.last_body("/login/1.0/tradeApiLogin")
    assert body["mobileNumber"] == creds["mobile_number"] and body["ucc"] == creds["ucc"]
    assert len(body["totp"]) == 6
    assert desk.emulator.last_body("/login/1.0/tradeApiValidate") == {"mpin": creds["mpin"]}
    validate_headers = desk.emulator.last_headers("/login/1.0/tradeApiValidate")
    assert validate_headers["Sid"] and validate_headers["Auth"]
    assert session.access_token in desk.emulator.sessions
    assert session.extra["sid"] == desk.emulator.sessions[session.access_token]["sid"]
    assert session.extra["base_url"] == desk.url
    expiry = session.expires_at.astimezone(IST)
    assert (expiry.hour, expiry.minute) == (6, 0)
    assert broker.order_book() == []  # the adapter goes on with the fresh session


def test_a_wrong_totp_is_refused(desk, creds):
    with pytest.raises(Rejected, match="Invalid TOTP"):
        desk.broker(creds, logged_in=False).complete_login(login_params(creds, totp="000000"))


@pytest.mark.parametrize("params", [{"totp": "12345"}, {"mpin": "12ab"}, {"mpin": ""}])
def test_malformed_login_fields_never_reach_the_broker(desk, creds, params):
    with pytest.raises(InvalidInput):
        desk.broker(creds, logged_in=False).complete_login(login_params(creds, **params))
    assert not any(path.startswith("/login/") for path, _, _ in desk.emulator.calls)


def test_a_wrong_mpin_is_rejected_by_the_broker(desk, creds):
    wrong = f"{(int(creds['mpin']) + 1) % 10**6:06d}"
    with pytest.raises(Rejected, match="Invalid MPIN"):
        desk.broker(creds, logged_in=False).complete_login(login_params(creds, mpin=wrong))


def test_login_needs_the_stored_credentials(desk, creds):
    broker = desk.broker({**creds, "consumer_key": ""}, logged_in=False)
    with pytest.raises(InvalidInput, match="access token"):
        broker.complete_login(login_params(creds))
    assert not any(path.startswith("/login/") for path, _, _ in desk.emulator.calls)


def test_a_base_url_on_an_untrusted_host_refuses_the_login(desk, creds):
    desk.emulator.base_url_answer = "https://evil.example.com"
    broker = desk.broker(creds, logged_in=False)
    with pytest.raises(Rejected, match="does not trust"):
        broker.complete_login(login_params(creds))
    with pytest.raises(AuthExpired):  # no session was kept: nothing is sent anywhere
        broker.order_book()


def test_a_kotak_https_base_url_is_kept(desk, creds):
    desk.emulator.base_url_answer = "https://cis.kotaksecurities.com/"
    session = desk.broker(creds, logged_in=False).complete_login(login_params(creds))
    assert session.extra["base_url"] == "https://cis.kotaksecurities.com"


def test_a_stored_session_with_an_untrusted_base_url_is_no_session(desk, creds):
    session = session_of(creds)
    forged = BrokerSession(session.access_token, session.expires_at, {**session.extra, "base_url": "http://10.0.0.1"})
    broker = desk.broker(creds, session=forged)
    before = len(desk.emulator.calls)
    with pytest.raises(AuthExpired, match="base URL"):
        broker.order_book()
    assert len(desk.emulator.calls) == before


def test_a_session_without_a_base_url_uses_the_login_host(desk, creds):
    session = session_of(creds)
    bare = BrokerSession(session.access_token, session.expires_at, {"sid": session.extra["sid"]})
    assert desk.broker(creds, session=bare).order_book() == []
    desk.emulator.base_url_answer = ""
    fresh = desk.broker(creds, logged_in=False).complete_login(login_params(creds))
    assert fresh.extra["base_url"] == desk.url


@pytest.mark.parametrize(
    "url, trusted",
    [
        ("https://mis.kotaksecurities.com", True),
        ("https://e21.kotaksecurities.com/", True),
        ("https://neo-gw.kotaksecurities.com/xyz", True),
        ("http://e21.kotaksecurities.com", False),  # not https
        ("https://kotaksecurities.com.evil.example", False),
        ("https://evilkotaksecurities.com", False),
        ("https://user:pw@e21.kotaksecurities.com", False),
        ("https://e21.kotaksecurities.com/?x=1", False),
        ("http://127.0.0.1:8000", True),  # the login host itself
        ("http://127.0.0.1:8001", False),
        ("", False),
    ],
)
def test_trusted_base_url(url, trusted):
    answer = trusted_base_url(url, "http://127.0.0.1:8000", ("kotaksecurities.com",))
    assert (answer is not None) is trusted


def test_an_expired_session_is_refused_before_any_request(desk, creds):
    broker = desk.broker(creds, session=session_of(creds, hours=-1))
    before = len(desk.emulator.calls)
    with pytest.raises(AuthExpired):
        broker.place(order_request(tag="T1"))
    assert len(desk.emulator.calls) == before and desk.emulator.ledger.count() == 0


# --------------------------------------------------------------------------- orders


def test_place_market_sends_jdata_and_fills(desk, creds, broker):
    order_id = broker.place(order_request(quantity=2, tag="TAGM1"))
    headers = desk.emulator.last_headers("/quick/order/rule/ms/place")
    assert headers["Auth"] == creds["session_token"] and headers["Sid"] == creds["sid"]
    assert headers["Neo-Fin-Key"] == "neotradeapi"
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    body = desk.emulator.last_body("/quick/order/rule/ms/place")
    assert body == {
        "am": "NO",
        "dq": "0",
        "es": "nse_cm",
        "mp": "0",
        "pc": "CNC",
        "pf": "N",
        "pr": "0",
        "pt": "MKT",
        "qt": "2",
        "rt": "DAY",
        "tp": "0",
        "ts": "INFY-EQ",
        "tt": "B",
        "ig": "TAGM1",
    }
    order = book_order(broker, order_id)
    assert order.status is BrokerOrderStatus.COMPLETE and order.filled_quantity == 2
    assert (order.exchange, order.tradingsymbol, order.side, order.product) == ("NSE", "INFY", Side.BUY, Product.CNC)
    assert order.tag == "TAGM1" and order.average_price == Decimal("1548.20")
    [trade] = broker.trades()
    assert (trade.order_id, trade.quantity, trade.price) == (order_id, 2, Decimal("1548.20"))
    [position] = broker.positions()
    assert (position.tradingsymbol, position.quantity, position.average_price) == ("INFY", 2, Decimal("1548.2000"))
    funds = broker.funds()
    assert funds.margin_used == Decimal("3096.40") and funds.available_cash == Decimal("1000000.00")
    assert funds.available_margin == Decimal("996903.60")
    assert desk.emulator.ledger.count(creds["ucc"], "TAGM1") == 1


def test_limit_rests_until_marketable_then_fills(desk, broker):
    order_id = resting_limit(broker, quantity=3, price="1500.00", product=Product.MIS, tag="LIM1")
    assert desk.emulator.last_body("/quick/order/rule/ms/place")["pr"] == "1500.00"
    order = book_order(broker, order_id)
    assert order.status is BrokerOrderStatus.OPEN and order.price == Decimal("1500.00")
    desk.emulator.fill(order_id, qty=1, price="1500.00")
    assert book_order(broker, order_id).status is BrokerOrderStatus.PARTIAL
    desk.emulator.set_ltp("INFY", "1499.90")
    order = book_order(broker, order_id)
    assert order.status is BrokerOrderStatus.COMPLETE and order.filled_quantity == 3


def test_stop_loss_market_goes_out_as_sl_m_and_waits_for_its_trigger(desk, broker):
    order_id = broker.place(
        order_request(SBIN, side=Side.SELL, product=Product.MIS, order_type=OrderType.SLM, trigger="900.00")
    )
    body = desk.emulator.last_body("/quick/order/rule/ms/place")
    assert (body["pt"], body["pr"], body["tp"], body["tt"], body["pc"]) == ("SL-M", "0", "900.00", "S", "MIS")
    assert "ig" not in body
    order = book_order(broker, order_id)
    assert order.status is BrokerOrderStatus.TRIGGER_PENDING and order.order_type is OrderType.SLM
    assert order.trigger_price == Decimal("900.00")


def test_modify_restates_the_order_from_the_book(desk, broker):
    order_id = resting_limit(broker, quantity=5, price="1500.00", tag="MOD1")
    assert broker.modify(order_id, quantity=7, price=Decimal("1501.00")) == order_id
    body = desk.emulator.last_body("/quick/order/vr/modify")
    assert body["no"] == order_id and body["tk"] == "1594" and body["ts"] == "INFY-EQ"
    assert (body["es"], body["tt"], body["pc"], body["pt"], body["vd"]) == ("nse_cm", "B", "CNC", "L", "DAY")
    assert (body["qt"], body["pr"], body["tp"]) == ("7", "1501.00", "0")
    order = book_order(broker, order_id)
    assert (order.quantity, order.price, order.status) == (7, Decimal("1501.00"), BrokerOrderStatus.OPEN)


def test_modify_to_market_fills(desk, broker):
    order_id = resting_limit(broker, quantity=2, price="1500.00")
    broker.modify(order_id, order_type=OrderType.MARKET, validity=Validity.DAY)
    assert book_order(broker, order_id).status is BrokerOrderStatus.COMPLETE


def test_cancel_then_cancel_again_is_rejected(desk, broker):
    order_id = resting_limit(broker)
    assert broker.cancel(order_id) == order_id
    assert desk.emulator.last_body("/quick/order/cancel") == {"on": order_id, "am": "NO"}
    assert book_order(broker, order_id).status is BrokerOrderStatus.CANCELLED
    with pytest.raises(Rejected, match="already cancelled"):
        broker.cancel(order_id)
    with pytest.raises(Rejected, match="no order"):
        broker.modify("999", quantity=1)


def test_too_little_cash_is_a_broker_rejection_and_nothing_is_booked(desk):
    creds = desk.account(cash="100")
    broker = desk.broker(creds)
    with pytest.raises(Rejected, match="RMS:Margin Exceeds"):
        broker.place(order_request(quantity=1, tag="POOR1"))
    assert desk.emulator.ledger.count(creds["ucc"]) == 0


def test_selling_delivery_needs_holdings(desk, broker):
    assert broker.place(order_request(TCS, side=Side.SELL, quantity=5, tag="SELL1"))
    with pytest.raises(Rejected, match="Insufficient holdings"):
        broker.place(order_request(TCS, side=Side.SELL, quantity=1, tag="SELL2"))


def test_a_malformed_tag_never_reaches_the_broker(desk, broker):
    with pytest.raises(InvalidInput, match="1 to 10 letters and digits"):
        broker.place(order_request(tag="TOO-LONG-TAG"))
    assert desk.emulator.ledger.count() == 0


def test_status_words_map_to_the_port(desk, broker):
    order_id = resting_limit(broker)
    for word, status in (
        ("open pending", BrokerOrderStatus.PENDING),
        ("put order req received", BrokerOrderStatus.PENDING),
        ("trigger pending", BrokerOrderStatus.TRIGGER_PENDING),
        ("complete", BrokerOrderStatus.COMPLETE),
        ("something new", BrokerOrderStatus.PENDING),
    ):
        desk.emulator.set_status(order_id, word)
        assert book_order(broker, order_id).status is status, word
    desk.emulator.set_status(order_id, "rejected", "RMS:Blocked")
    order = book_order(broker, order_id)
    assert order.status is BrokerOrderStatus.REJECTED and order.status_message == "RMS:Blocked"
    assert order.raw_status == "rejected"


# --------------------------------------------------------------------------- idempotency and faults


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_a_lost_answer_after_accept_is_unavailable_and_found_by_its_tag(desk, creds, fault):
    broker = desk.broker(creds, timeout=0.8)
    desk.emulator.faults.script("place", fault)
    request = order_request(quantity=1, tag="LOST1")
    placed_after = utcnow() - timedelta(seconds=5)
    with pytest.raises(Unavailable) as caught:
        broker.place(request)
    assert caught.value.message.endswith(MAYBE_PLACED)
    [found] = broker.find_order(request, placed_after)
    assert found.tag == "LOST1" and found.status is BrokerOrderStatus.COMPLETE
    assert [o.order_id for o in broker.orders_by_tag("LOST1")] == [found.order_id]
    # The engine resolves the child from what it found and does not place again.
    assert desk.emulator.ledger.count(creds["ucc"], "LOST1") == 1


def test_without_the_tag_echo_a_lost_order_is_still_found_by_what_it_is(desk, creds):
    """Kotak's docs do not promise `GuiOrdId`; should the book not echo the tag, the order the lost
    answer stood for is still found (instrument, side, quantity, time), so it is not placed again."""
    broker = desk.broker(creds, timeout=0.8)
    broker.place(order_request(quantity=2, tag="OTHER1"))  # another quantity: not a candidate
    desk.emulator.book.echo_tag = False
    desk.emulator.faults.script("place", "drop_after_accept")
    request = order_request(quantity=1, tag="LOST2")
    placed_after = utcnow() - timedelta(seconds=5)
    with pytest.raises(Unavailable):
        broker.place(request)
    [found] = broker.find_order(request, placed_after)
    assert found.tag is None and found.quantity == 1
    assert desk.emulator.ledger.count(creds["ucc"], "LOST2") == 1
    assert broker.find_order(order_request(quantity=3, tag="NEVER1"), placed_after) == []


def test_a_5xx_before_accept_is_unavailable_and_provably_absent(desk, creds, broker):
    desk.emulator.faults.script("place", "error_5xx")
    request = order_request(tag="FIVE1")
    with pytest.raises(Unavailable, match="HTTP 503"):
        broker.place(request)
    assert broker.find_order(request, utcnow() - timedelta(minutes=1)) == []
    assert desk.emulator.ledger.count(creds["ucc"]) == 0


@pytest.mark.parametrize(
    "kind, fault, outcome",
    [
        ("modify", "timeout_after_accept", "the change may or may not have been applied"),
        ("cancel", "drop_after_accept", "the order may or may not be cancelled"),
        ("cancel", "error_5xx_after_accept", "the order may or may not be cancelled"),
    ],
)
def test_a_lost_modify_or_cancel_answer_is_unavailable_and_the_book_tells(desk, creds, kind, fault, outcome):
    broker = desk.broker(creds, timeout=0.8)
    order_id = resting_limit(broker, quantity=4)
    desk.emulator.faults.script(kind, fault)
    with pytest.raises(Unavailable, match=outcome):
        if kind == "modify":
            broker.modify(order_id, quantity=6)
        else:
            broker.cancel(order_id)
    order = book_order(broker, order_id)
    assert order.quantity == 6 if kind == "modify" else order.status is BrokerOrderStatus.CANCELLED


def test_a_place_answered_with_a_list_is_unavailable(desk, broker):
    desk.emulator.override_next("place", 200, [{"nOrdNo": "1"}])
    with pytest.raises(Unavailable, match=MAYBE_PLACED):
        broker.place(order_request(tag="LIST1"))


def test_an_internal_error_on_place_is_unavailable_not_rejected(desk, broker):
    desk.emulator.override_next("place", 200, {"stat": "Not_Ok", "emsg": "Internal Error", "stCode": 1005})
    with pytest.raises(Unavailable, match=MAYBE_PLACED):
        broker.place(order_request(tag="INT1"))


def test_ok_without_an_order_number_is_unavailable(desk, broker):
    desk.emulator.override_next("place", 200, {"stat": "Ok", "stCode": 200})
    with pytest.raises(Unavailable, match=MAYBE_PLACED):
        broker.place(order_request(tag="NOID1"))


def test_an_unreadable_answer_is_unavailable(desk, broker):
    desk.emulator.override_next("read", 200, "<html>gateway</html>")
    with pytest.raises(Unavailable, match="unreadable"):
        broker.order_book()


def test_429_is_rate_limited_with_retry_after(desk, broker):
    desk.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited) as caught:
        broker.place(order_request(tag="RATE1"))
    assert caught.value.retry_after == 1.0
    assert desk.emulator.ledger.count() == 0


@pytest.fixture(scope="module")
def strict_desk():
    desk = start_desk()  # Kotak's own 10 requests/s per account
    yield desk
    desk.close()


def test_the_ten_per_second_limit_answers_429(strict_desk):
    broker = strict_desk.broker(strict_desk.account(), pace=False)
    with pytest.raises(RateLimited):
        for _ in range(11):
            broker.order_book()


def test_the_adapter_paces_an_account_under_the_limit(strict_desk):
    creds = strict_desk.account()
    broker, other = strict_desk.broker(creds), strict_desk.broker(creds)  # two adapters, one account
    for _ in range(6):
        assert broker.order_book() == [] and other.order_book() == []


def test_a_session_expired_mid_day_is_auth_expired(desk, creds, broker):
    desk.emulator.faults.script("place", "expire_token")
    with pytest.raises(AuthExpired, match="log in again"):
        broker.place(order_request(tag="EXP1"))
    with pytest.raises(AuthExpired):
        broker.order_book()
    assert desk.emulator.ledger.count() == 0


def test_expired_sessions_need_a_new_login(desk, creds, broker):
    desk.emulator.expire_sessions(creds["ucc"])
    with pytest.raises(AuthExpired):
        broker.funds()
    fresh = desk.login(creds)
    assert fresh.funds().available_cash == Decimal("1000000.00")


def test_empty_books_are_empty(desk, broker):
    assert broker.order_book() == [] and broker.trades() == [] and broker.positions() == []


# --------------------------------------------------------------------------- portfolio and market data


def test_holdings(broker):
    [holding] = broker.holdings()
    assert (holding.exchange, holding.tradingsymbol, holding.quantity) == ("NSE", "TCS", 5)
    assert holding.average_price == Decimal("3000.00") and holding.last_price == Decimal("3102.50")


def test_quotes_use_the_consumer_key_only(desk, creds, broker):
    quotes = broker.quotes([InstrumentRef("NSE", "INFY", 1594), InstrumentRef("NSE", "TCS", 11536)])
    assert quotes["NSE:INFY"].last_price == Decimal("1548.20") and quotes["NSE:TCS"].last_price == Decimal("3102.50")
    assert quotes["NSE:INFY"].bids[0].price == Decimal("1548.10") and len(quotes["NSE:TCS"].asks) == 5
    path, headers, body = desk.emulator.calls[-1]
    assert path.endswith("/neosymbol/nse_cm|1594,nse_cm|11536/all")
    assert headers["Authorization"] == creds["consumer_key"]
    assert "Auth" not in headers and "Sid" not in headers


def test_an_unknown_instrument_in_quotes_is_rejected(broker):
    with pytest.raises(Rejected, match="Invalid instrument"):
        broker.quotes([InstrumentRef("NSE", "NOPE", 99999999)])


def test_margin_required_adds_kotak_order_margins(desk, broker):
    total = broker.margin_required(
        [
            order_request(INFY, quantity=10),
            order_request(SBIN, quantity=10, product=Product.MIS, order_type=OrderType.LIMIT, price="900.00"),
        ]
    )
    assert total == Decimal("15482") + Decimal("1800")
    body = desk.emulator.last_body("/quick/user/check-margin")
    assert body == {
        "brkName": "KOTAK",
        "brnchId": "ONLINE",
        "exSeg": "nse_cm",
        "prc": "900.00",
        "prcTp": "L",
        "prod": "MIS",
        "qty": "10",
        "tok": "3045",
        "trnsTp": "B",
    }


def test_instruments_come_from_the_listed_scrip_master(desk, broker):
    rows = {r.tradingsymbol: r for r in broker.instruments()}
    infy = rows["INFY"]
    assert (infy.exchange, infy.exchange_token, infy.tick_size, infy.lot_size) == ("NSE", 1594, Decimal("0.1"), 1)
    assert infy.segment == "nse_cm" and infy.instrument_type == "EQ"
    assert len(rows) > 50


def test_a_scrip_master_on_an_untrusted_host_is_not_fetched(desk, broker):
    desk.emulator.override_next(
        "read", 200, {"data": {"filesPaths": ["https://files.example.com/x/nse_cm-v1.csv"], "baseFolder": ""}}
    )
    with pytest.raises(Unavailable, match="does not trust"):
        broker.instruments()
