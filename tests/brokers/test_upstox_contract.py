"""Contract tests: the Upstox adapter against the Upstox emulator over real HTTP (no mocks)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from tests.brokers.upstox_fixtures import (  # noqa: F401
    API_URL_SETTING,
    HANG_SECONDS,
    SHORT_TIMEOUT,
    UpstoxEnv,
    desk_account,
    limit,
    order,
    ref,
    upstox,
    upstox_server,
)
from tests.emulators.common import EmulatorServer, FaultPlan, RateLimiter
from tests.emulators.upstox import UpstoxEmulator
from webapp.brokers import broker_class
from webapp.brokers.base import (
    Account,
    AuthExpired,
    BrokerOrderStatus,
    BrokerSession,
    InvalidInput,
    OrderType,
    Product,
    RateLimited,
    Rejected,
    Side,
    Unavailable,
    Validity,
)
from webapp.brokers.upstox import UpstoxBroker
from webapp.brokers.upstox.mapping import status_of
from webapp.extensions import db
from webapp.models import Client, Instrument, Order
from webapp.timeutil import IST, UTC, utcnow
from webapp.trading import engine, states
from webapp.trading.context import build_context
from webapp.trading.sessions import store_session
from webapp.vault import current_vault

PLACED = "the order may or may not be placed"
CALLBACK = "http://localhost/clients/connect/callback"


def requests_to(env: UpstoxEnv, path: str) -> int:
    return sum(1 for _, p in env.emulator.requests if p == path)


# ------------------------------------------------------------------ declaration


def test_adapter_declares_the_upstox_contract():
    cls = broker_class("upstox")
    assert cls is UpstoxBroker and cls.login_kind == "redirect" and cls.tag_max_length == 10
    assert cls.session_expiry_ist == time(3, 30)
    assert cls.settings["UPSTOX_API_URL"] == "https://api.upstox.com" and API_URL_SETTING in cls.settings
    assert cls.capabilities.quotes and cls.capabilities.historical_candles
    assert cls.rate_limits.orders_per_second == 10 and cls.rate_limits.orders_per_minute == 500
    assert {f.name for f in cls.credential_fields} == {"api_key", "api_secret"}
    assert [f.secret for f in cls.credential_fields] == [False, True]
    options = cls.options_from({"UPSTOX_API_URL": "http://127.0.0.1:9", "UPSTOX_ORDER_URL": ""})
    assert options["base_url"] == "http://127.0.0.1:9"


def test_token_dies_at_0330_ist_after_creation():
    at = datetime(2026, 12, 5, 2, 30, tzinfo=IST)  # made at 02:30: dies at 03:30 the same day
    assert UpstoxBroker.session_expires_at(at) == datetime(2026, 12, 5, 3, 30, tzinfo=IST).astimezone(UTC)
    at = datetime(2026, 12, 5, 9, 0, tzinfo=IST)
    assert UpstoxBroker.session_expires_at(at) == datetime(2026, 12, 6, 3, 30, tzinfo=IST).astimezone(UTC)


def test_order_and_api_hosts_are_separate(upstox):
    """Orders go to the order host (api-hft), reads to the API host; both default to the API URL
    when it is not Upstox's own."""
    assert upstox.broker._wire.order_url == upstox.url
    real = UpstoxBroker(Account("X", {"api_key": "k", "api_secret": "s"}), {"base_url": "https://api.upstox.com"})
    assert real._wire.order_url == "https://api-hft.upstox.com"
    assert real._wire.instruments_url == "https://assets.upstox.com/market-quote/instruments/exchange/NSE.json.gz"
    split = upstox.new_broker(base_url="http://127.0.0.1:9", order_url=upstox.url)
    assert split.place(order(tag="host1"))  # the order host answered
    with pytest.raises(Unavailable, match="could not be reached"):
        split.order_book()  # the API host is dead


def test_emulator_cli_prints_its_url_and_creates_accounts_over_http():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.upstox", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = json.loads(proc.stdout.readline())["url"]
        with requests.Session() as http:
            creds = http.post(url + "/_emulator/accounts", json={"cash": "100"}, timeout=5).json()
            assert {"user_id", "client_id", "client_secret", "access_token"} <= set(creds)
            funds = http.get(
                url + "/v2/user/get-funds-and-margin",
                headers={"Authorization": f"Bearer {creds['access_token']}", "Api-Version": "2.0"},
                timeout=5,
            ).json()
        assert funds["data"]["equity"]["available_margin"] == 100.0
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()


def test_desk_account_gives_the_client_code_credentials_and_a_live_session(upstox):
    code, credentials, session = desk_account(upstox.creds)
    assert code == upstox.user_id and set(credentials) == {"api_key", "api_secret"}
    assert session.expires_at > utcnow() + timedelta(hours=7)
    broker = UpstoxBroker(Account(code, credentials, session), UpstoxBroker.options_from({API_URL_SETTING: upstox.url}))
    assert broker.funds().available_cash == Decimal("1000000")


# ------------------------------------------------------------------ login


def browser_code(env: UpstoxEnv, state: str = "st8") -> dict[str, str]:
    """What the trader's browser does: the authorization dialog, approve, back with ?code=&state=."""
    url = env.broker.login_url(CALLBACK, state)
    assert url.startswith(env.url + "/v2/login/authorization/dialog?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query == {
        "client_id": env.creds["client_id"],
        "redirect_uri": CALLBACK,
        "state": state,
        "response_type": "code",
    }
    with requests.Session() as browser:
        assert "Login to Upstox" in browser.get(url, timeout=5).text
        back = browser.post(
            env.url + "/v2/login/authorization/dialog",
            data={**query, "user_id": env.user_id, "password": "pw"},
            allow_redirects=False,
            timeout=5,
        )
    assert back.status_code == 302 and back.headers["Location"].startswith(CALLBACK + "?")
    # what the desk's callback route passes on: the browser's parameters and its own callback URL
    return {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()} | {"redirect_uri": CALLBACK}


def test_login_exchanges_the_code_form_encoded_and_the_session_works(upstox):
    params = browser_code(upstox)
    assert params["state"] == "st8" and params["code"]
    broker = upstox.new_broker(access_token=None)
    session = broker.complete_login(params)
    assert session.access_token != upstox.creds["access_token"] and session.extra["user_id"] == upstox.user_id
    assert session.expires_at == UpstoxBroker.session_expires_at(utcnow())
    assert broker.funds().available_cash == Decimal("1000000")  # the instance goes on with the new token
    with pytest.raises(Rejected, match="UDAPI100057"):  # the code is single use
        upstox.new_broker(access_token=None).complete_login(params)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"api_secret": "wrong"}, Rejected, "UDAPI100016"),
        ({"code": ""}, Rejected, "no authorization code"),
        ({"redirect_uri": "http://elsewhere/cb"}, Rejected, "UDAPI100057"),
        ({"redirect_uri": ""}, InvalidInput, "callback URL"),
    ],
)
def test_login_refusals(upstox, change, error, message):
    params = browser_code(upstox)
    creds = dict(upstox.creds)
    if "api_secret" in change:
        creds["client_secret"] = change["api_secret"]
    if "code" in change:
        params["code"] = change["code"]
    if "redirect_uri" in change:
        params["redirect_uri"] = change["redirect_uri"]
    broker = upstox.new_broker(access_token=None, creds=creds)
    with pytest.raises(error, match=message):
        broker.complete_login(params)


def test_a_login_as_another_upstox_user_is_rejected(upstox):
    params = browser_code(upstox)
    _, credentials, _ = desk_account(upstox.creds)
    broker = UpstoxBroker(Account("SOMEONE", credentials), {"base_url": upstox.url})
    with pytest.raises(Rejected, match="this client is SOMEONE"):
        broker.complete_login(params)


def test_no_session_or_a_past_expiry_is_auth_expired_without_a_call(upstox):
    before = len(upstox.emulator.requests)
    with pytest.raises(AuthExpired, match="not logged in"):
        upstox.new_broker(access_token=None).order_book()
    code, credentials, session = desk_account(upstox.creds)
    stale = BrokerSession(session.access_token, utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthExpired, match="03:30 IST"):
        UpstoxBroker(Account(code, credentials, stale), {"base_url": upstox.url}).funds()
    assert len(upstox.emulator.requests) == before


# ------------------------------------------------------------------ orders


def test_market_order_fills_and_shows_everywhere(upstox):
    broker = upstox.broker
    order_id = broker.place(order("INFY", quantity=2, tag="mkt1"))
    [entry] = upstox.emulator.ledger.entries()[-1:]
    assert entry.order_id == order_id and entry.tag == "mkt1"
    assert entry.payload["instrument_token"] == "NSE_EQ|INE009A01021" and entry.payload["product"] == "D"
    assert entry.payload["slice"] is False and entry.payload["is_amo"] is False
    assert requests_to(upstox, "/v3/order/place") >= 1
    [row] = [o for o in broker.order_book() if o.order_id == order_id]
    assert row.status is BrokerOrderStatus.COMPLETE and row.filled_quantity == 2 and row.tag == "mkt1"
    assert row.average_price == Decimal("1548.2") and row.product is Product.CNC and row.raw_status == "complete"
    assert row.placed_at is not None and row.placed_at.tzinfo is not None
    [trade] = [t for t in broker.trades() if t.order_id == order_id]
    assert trade.quantity == 2 and trade.price == Decimal("1548.2") and trade.side is Side.BUY
    [position] = broker.positions()
    assert (position.tradingsymbol, position.quantity, position.average_price) == ("INFY", 2, Decimal("1548.2"))
    funds = broker.funds()
    assert funds.available_margin == Decimal("1000000") - Decimal("3096.4")


@pytest.mark.parametrize(
    ("product", "wire"), [(Product.CNC, "D"), (Product.MIS, "I"), (Product.MTF, "MTF"), (Product.NRML, "D")]
)
def test_products_map_to_upstox_words(upstox, product, wire):
    order_id = upstox.broker.place(order("SBIN", product=product))
    assert upstox.emulator.order(order_id)["product"] == wire
    back = {"D": Product.CNC, "I": Product.MIS, "MTF": Product.MTF}[wire]
    assert [o.product for o in upstox.broker.order_book()] == [back]


def test_limit_rests_open_then_fills_when_the_price_comes(upstox):
    broker = upstox.broker
    order_id = broker.place(limit("INFY", "1500.00", tag="lim1"))
    assert broker.orders_by_tag("lim1")[0].status is BrokerOrderStatus.OPEN
    upstox.emulator.set_price("INFY", "1499.50")
    [row] = broker.orders_by_tag("lim1")
    assert row.order_id == order_id and row.status is BrokerOrderStatus.COMPLETE
    assert row.average_price == Decimal("1499.5")


def test_stop_loss_is_trigger_pending_until_the_trigger(upstox):
    broker = upstox.broker
    order_id = broker.place(order("INFY", order_type=OrderType.SLM, trigger="1600.00", tag="slm1"))
    assert upstox.emulator.order(order_id)["status"] == "trigger pending"
    assert broker.orders_by_tag("slm1")[0].status is BrokerOrderStatus.TRIGGER_PENDING
    upstox.emulator.set_price("INFY", "1601")
    assert broker.orders_by_tag("slm1")[0].status is BrokerOrderStatus.COMPLETE


def test_modify_and_cancel_on_v3(upstox):
    broker = upstox.broker
    order_id = broker.place(limit("INFY", "1400.00", quantity=3, tag="mod1"))
    assert broker.modify(order_id, price=Decimal("1410.05"), quantity=4) == order_id
    row = upstox.emulator.order(order_id)
    assert (row["price"], row["quantity"], row["order_type"], row["validity"]) == (1410.05, 4, "LIMIT", "DAY")
    assert requests_to(upstox, "/v3/order/modify") >= 1
    assert broker.cancel(order_id) == order_id
    assert broker.orders_by_tag("mod1")[0].status is BrokerOrderStatus.CANCELLED
    with pytest.raises(Rejected, match="UDAPI100040"):
        broker.cancel(order_id)
    with pytest.raises(Rejected, match="UDAPI100010"):
        broker.cancel("999999")


def test_ioc_unmatched_is_cancelled(upstox):
    order_id = upstox.broker.place(limit("INFY", "1000.00", validity=Validity.IOC))
    assert upstox.emulator.order(order_id)["status"] == "cancelled"


def test_insufficient_funds_is_a_broker_side_rejection(upstox_server):
    emulator, server = upstox_server
    env = UpstoxEnv(emulator, server.url, emulator.add_account(cash="100"))
    try:
        order_id = env.broker.place(order("INFY", tag="poor1"))
        [row] = env.broker.orders_by_tag("poor1")
        assert row.order_id == order_id and row.status is BrokerOrderStatus.REJECTED
        assert row.status_message.startswith("You need to add Rs. ")
    finally:
        env.close()


def test_selling_delivery_needs_holdings(upstox_server):
    emulator, server = upstox_server
    env = UpstoxEnv(
        emulator,
        server.url,
        emulator.add_account(holdings=[{"tradingsymbol": "TCS", "quantity": 5, "average_price": "3000.25"}]),
    )
    try:
        [holding] = env.broker.holdings()
        assert (holding.tradingsymbol, holding.quantity, holding.isin) == ("TCS", 5, "INE467B01029")
        assert holding.average_price == Decimal("3000.25")
        env.broker.place(order("TCS", side=Side.SELL, quantity=6, tag="over"))
        assert env.broker.orders_by_tag("over")[0].status is BrokerOrderStatus.REJECTED
        env.broker.place(order("TCS", side=Side.SELL, quantity=2, tag="ok"))
        assert env.broker.orders_by_tag("ok")[0].status is BrokerOrderStatus.COMPLETE
        assert env.broker.holdings()[0].quantity == 3
    finally:
        env.close()


def test_market_protection_rides_on_v3_market_orders(upstox):
    upstox.broker.place(order("INFY", market_protection=Decimal("2.5")))
    assert upstox.emulator.ledger.entries()[-1].payload["market_protection"] == 2.5
    upstox.broker.place(order("INFY"))  # none asked: Upstox's automatic protection
    assert upstox.emulator.ledger.entries()[-1].payload["market_protection"] == -1
    upstox.broker.place(order("INFY", order_type=OrderType.SLM, trigger="1400.00"))
    assert upstox.emulator.ledger.entries()[-1].payload["market_protection"] == -1
    upstox.broker.place(limit("INFY", "1500.00", market_protection=Decimal("2.5")))
    assert "market_protection" not in upstox.emulator.ledger.entries()[-1].payload
    with pytest.raises(InvalidInput, match="0 to 25"):
        upstox.broker.place(order("INFY", market_protection=Decimal("30")))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exchange": "MCX"}, "not MCX"),
        ({"tag": "has space"}, "order tags are 1 to 10"),
        ({"tag": "elevenchars"}, "order tags are 1 to 10"),
        ({"quantity": 0}, "positive whole number"),
    ],
)
def test_malformed_orders_are_invalid_input_and_never_sent(upstox, change, message):
    base = order("INFY")
    request = base.__class__(**{**base.__dict__, **change})
    before = len(upstox.emulator.requests)
    with pytest.raises(InvalidInput, match=message):
        upstox.broker.place(request)
    assert len(upstox.emulator.requests) == before and upstox.emulator.ledger.count(upstox.user_id) == 0


@pytest.mark.parametrize(
    ("word", "filled", "expected"),
    [
        ("put order req received", 0, BrokerOrderStatus.PENDING),
        ("validation pending", 0, BrokerOrderStatus.PENDING),
        ("open pending", 0, BrokerOrderStatus.PENDING),
        ("after market order req received", 0, BrokerOrderStatus.PENDING),
        ("open", 0, BrokerOrderStatus.OPEN),
        ("open", 3, BrokerOrderStatus.PARTIAL),
        ("modify pending", 0, BrokerOrderStatus.OPEN),
        ("not modified", 0, BrokerOrderStatus.OPEN),
        ("cancel pending", 2, BrokerOrderStatus.PARTIAL),
        ("not cancelled", 0, BrokerOrderStatus.OPEN),
        ("trigger pending", 0, BrokerOrderStatus.TRIGGER_PENDING),
        ("complete", 5, BrokerOrderStatus.COMPLETE),
        ("rejected", 0, BrokerOrderStatus.REJECTED),
        ("cancelled", 0, BrokerOrderStatus.CANCELLED),
        ("cancelled after market order", 0, BrokerOrderStatus.CANCELLED),
    ],
)
def test_upstox_status_words_map_to_the_port(word, filled, expected):
    assert status_of(word, filled) is expected


def test_an_unknown_status_word_makes_the_book_unreadable_not_wrong(upstox):
    body = {"status": "success", "data": [{**_row(), "status": "teleported"}]}
    upstox.emulator.script_response("order_book", 200, json.dumps(body))
    with pytest.raises(Unavailable, match="cannot read"):
        upstox.broker.order_book()


def _row() -> dict:
    return {
        "order_id": "1",
        "status": "open",
        "transaction_type": "BUY",
        "product": "D",
        "order_type": "LIMIT",
        "quantity": 1,
        "filled_quantity": 0,
        "instrument_token": "NSE_EQ|INE009A01021",
        "trading_symbol": "INFY",
        "price": 1.0,
    }


# ------------------------------------------------------------------ idempotency: lost answers


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_a_lost_place_answer_is_unavailable_and_the_tag_finds_the_one_order(upstox, fault):
    broker = upstox.new_broker(timeout=SHORT_TIMEOUT)
    upstox.emulator.faults.script("place", fault)
    request = order("INFY", tag="lost1")
    with pytest.raises(Unavailable, match=PLACED if fault != "error_5xx_after_accept" else "HTTP 503|HTTP 500"):
        broker.place(request)
    found = broker.find_order(request, utcnow() - timedelta(minutes=1))
    assert len(found) == 1 and found[0].tag == "lost1" and found[0].status is BrokerOrderStatus.COMPLETE
    assert upstox.emulator.ledger.count(upstox.user_id, "lost1") == 1  # found, not placed twice


def test_a_5xx_before_accept_is_unavailable_and_the_tag_proves_absence(upstox):
    upstox.emulator.faults.script("place", "error_5xx")
    request = order("INFY", tag="never1")
    with pytest.raises(Unavailable):
        upstox.broker.place(request)
    assert upstox.broker.find_order(request, utcnow()) == []
    assert upstox.emulator.ledger.count(upstox.user_id) == 0


def test_an_unknown_tag_reads_as_none_even_when_upstox_says_not_found(upstox):
    body = {"status": "error", "errors": [{"errorCode": "UDAPI100010", "message": "Order not found"}]}
    upstox.emulator.script_response("order_history", 400, json.dumps(body))
    assert upstox.broker.orders_by_tag("ghost") == []


def test_a_failed_tag_lookup_is_an_error_not_absence(upstox):
    upstox.emulator.faults.script("order_history", "error_5xx")
    with pytest.raises(Unavailable):
        upstox.broker.orders_by_tag("any")


def test_success_without_a_single_order_id_is_unavailable(upstox):
    upstox.emulator.script_response("place", 200, json.dumps({"status": "success", "data": {"order_ids": []}}))
    with pytest.raises(Unavailable, match="no single order id"):
        upstox.broker.place(order("INFY"))


def test_burst_429_is_rate_limited_and_nothing_booked(upstox):
    upstox.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited, match="UDAPI10005"):
        upstox.broker.place(order("INFY", tag="r1"))
    assert upstox.emulator.ledger.count(upstox.user_id) == 0


def test_the_order_limit_answers_429_udapi10005(upstox):
    emulator = upstox.emulator
    saved = emulator.limiter
    emulator.limiter = RateLimiter({"orders": [(2, 60.0)]})
    try:
        upstox.broker.place(order("INFY"))
        upstox.broker.place(order("INFY"))
        with pytest.raises(RateLimited):
            upstox.broker.place(order("INFY"))
        assert upstox.broker.funds()  # reads are another class
    finally:
        emulator.limiter = saved
    assert emulator.ledger.count(upstox.user_id) == 2


def test_token_expiry_mid_session_is_auth_expired_from_then_on(upstox):
    upstox.emulator.faults.script("read", "expire_token")
    with pytest.raises(AuthExpired, match="UDAPI100050"):
        upstox.broker.funds()
    with pytest.raises(AuthExpired):
        upstox.broker.order_book()


def test_modify_timeout_is_unavailable_but_applied(upstox):
    broker = upstox.new_broker(timeout=SHORT_TIMEOUT)
    order_id = broker.place(limit("INFY", "1400.00"))
    upstox.emulator.faults.script("modify", "timeout_after_accept")
    with pytest.raises(Unavailable, match="may or may not have been applied"):
        broker.modify(order_id, price=Decimal("1401"))
    assert upstox.emulator.order(order_id)["price"] == 1401.0


def test_unreadable_answers_are_unavailable(upstox):
    upstox.emulator.script_response("order_book", 502, "<html>bad gateway</html>", "text/html")
    with pytest.raises(Unavailable, match="HTTP 502"):
        upstox.broker.order_book()
    upstox.emulator.script_response("order_book", 200, "not json", "text/plain")
    with pytest.raises(Unavailable, match="unreadable"):
        upstox.broker.order_book()


# ------------------------------------------------------------------ market data, margins, instruments


def test_quotes_are_keyed_by_the_desk_key_from_the_instrument_key_inside(upstox):
    upstox.emulator.set_price("SBIN", "955.35")
    quotes = upstox.broker.quotes([ref("INFY"), ref("SBIN")])
    assert set(quotes) == {"NSE:INFY", "NSE:SBIN"}
    sbin = quotes["NSE:SBIN"]
    assert sbin.last_price == Decimal("955.35") and sbin.close == Decimal("951.15")
    assert sbin.bids[0].price < sbin.last_price < sbin.asks[0].price and sbin.timestamp.tzinfo is not None
    assert sbin.lower_circuit < sbin.close < sbin.upper_circuit


def test_quotes_leave_an_instrument_upstox_does_not_list_unanswered(upstox):
    upstox.broker.quotes([ref("INFY").__class__("NSE", "WIPRO", 3787)])  # the instrument file is fetched
    bare = ref("INFY").__class__("NSE", "NOSUCH", 999999)  # no ISIN, and not in Upstox's file
    before = requests_to(upstox, "/v2/market-quote/quotes")
    assert upstox.broker.quotes([bare]) == {}
    assert requests_to(upstox, "/v2/market-quote/quotes") == before  # nothing to ask
    assert set(upstox.broker.quotes([bare, ref("SBIN")])) == {"NSE:SBIN"}


def test_the_emulator_takes_the_deprecated_symbol_parameter_too(upstox):
    headers = {"Authorization": f"Bearer {upstox.creds['access_token']}", "Api-Version": "2.0"}
    with requests.Session() as http:
        data = http.get(
            upstox.url + "/v2/market-quote/quotes", params={"symbol": "NSE_EQ|INE009A01021"}, headers=headers
        ).json()
    assert data["data"]["NSE_EQ:INFY"]["instrument_token"] == "NSE_EQ|INE009A01021"


def test_margin_required_asks_the_calculator(upstox):
    need = upstox.broker.margin_required(
        [order("INFY", quantity=2), limit("SBIN", "950.00", quantity=10, product=Product.MIS)]
    )
    assert need == Decimal("3096.4") + Decimal("1900")
    assert upstox.broker.margin_required([]) == 0


def test_historical_candles_split_the_range_and_come_back_oldest_first(upstox):
    end = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    start = end - timedelta(days=45)
    bars = upstox.broker.historical_candles(ref("INFY"), 15, start, end)
    assert requests_to_prefix(upstox, "/v3/historical-candle/NSE_EQ|INE009A01021/minutes/15/") == 2
    assert bars == sorted(bars, key=lambda b: b.start) and len({b.start for b in bars}) == len(bars)
    assert start <= bars[0].start and bars[-1].start <= end
    assert bars[0].start.astimezone(IST).time() == time(9, 15) and isinstance(bars[0].open, Decimal)
    days = upstox.broker.historical_candles(ref("INFY"), 1440, start, end)
    assert all(b.start.astimezone(IST).time() == time(0, 0) for b in days)
    with pytest.raises(InvalidInput, match="1 to 300 minutes"):
        upstox.broker.historical_candles(ref("INFY"), 301, start, end)


def requests_to_prefix(env: UpstoxEnv, prefix: str) -> int:
    return sum(1 for _, p in env.emulator.requests if p.startswith(prefix))


def test_instruments_come_from_the_json_gz_file_with_ticks_in_paise(upstox):
    rows = {row.tradingsymbol: row for row in upstox.broker.instruments()}
    assert rows["INFY"].exchange_token == 1594 and rows["INFY"].tick_size == Decimal("0.1")
    assert rows["INFY"].segment == "NSE_EQ" and rows["INFY"].lot_size == 1
    with requests.Session() as http:
        raw = http.get(upstox.url + "/market-quote/instruments/exchange/NSE.json.gz").content
    records = json.loads(gzip.decompress(raw))
    assert {"instrument_key", "trading_symbol", "isin", "exchange_token", "tick_size"} <= set(records[0])


def test_a_second_emulator_on_its_own_server_is_independent():
    emulator = UpstoxEmulator()
    with EmulatorServer(emulator) as server:
        env = UpstoxEnv(emulator, server.url, emulator.add_account())
        try:
            assert env.broker.order_book() == []
        finally:
            env.close()


def test_modify_keeps_what_it_is_not_told_to_change(upstox):
    broker = upstox.broker
    order_id = broker.place(limit("INFY", "1400.00", quantity=3))
    broker.modify(order_id, quantity=5)
    row = upstox.emulator.order(order_id)
    assert (row["price"], row["quantity"], row["validity"], row["order_type"]) == (1400.0, 5, "DAY", "LIMIT")
    broker.modify(order_id, order_type=OrderType.SL, price=Decimal("1450"), trigger_price=Decimal("1449"))
    row = upstox.emulator.order(order_id)
    assert (row["order_type"], row["price"], row["trigger_price"]) == ("SL", 1450.0, 1449.0)


def test_order_details_name_cash_orders_with_the_series_but_the_desk_sees_the_symbol(upstox):
    order_id = upstox.broker.place(order("SBIN"))
    with requests.Session() as http:
        raw = http.get(
            upstox.url + "/v2/order/details",
            params={"order_id": order_id},
            headers={"Authorization": f"Bearer {upstox.creds['access_token']}"},
        ).json()["data"]
    assert raw["trading_symbol"] == "SBIN-EQ"
    assert upstox.broker.order(order_id).tradingsymbol == "SBIN"


def test_a_partial_fill_is_partial_with_the_filled_quantity(upstox):
    broker = upstox.broker
    order_id = broker.place(limit("INFY", "1400.00", quantity=10, tag="part1"))
    upstox.emulator.fill(order_id, 4, "1399.95")
    [row] = broker.orders_by_tag("part1")
    assert row.status is BrokerOrderStatus.PARTIAL and row.filled_quantity == 4 and row.pending_quantity == 6
    assert row.average_price == Decimal("1399.95") and row.raw_status == "open"
    [trade] = [t for t in broker.trades() if t.order_id == order_id]
    assert trade.quantity == 4 and trade.price == Decimal("1399.95")
    broker.cancel(order_id)
    [row] = broker.orders_by_tag("part1")
    assert row.status is BrokerOrderStatus.CANCELLED and row.filled_quantity == 4


# ------------------------------------------------------------------ through the desk


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_the_engine_resolves_a_lost_answer_by_tag_and_never_sends_twice(app, factory, upstox_server, fault):
    """A batch of three Upstox clients through the order engine; the first place's answer is lost.
    Setting UPSTOX_API_URL is all the desk needs: orders go to the same host."""
    emulator, server = upstox_server
    emulator.faults = FaultPlan(hang_seconds=HANG_SECONDS)
    app.config.update({API_URL_SETTING: server.url, "BROKER_TIMEOUT_SECONDS": SHORT_TIMEOUT})
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    with app.app_context():
        db.session.get(Instrument, instrument.id).isin = "INE009A01021"
        db.session.commit()
    trader = factory.user("tara", role="trader")
    clients = []
    for n in range(3):
        code, credentials, session = desk_account(emulator.add_account())
        client = factory.client(f"Upstox{n}", broker="upstox", code=code, credentials=credentials)
        with app.app_context():
            store_session(db.session.get(Client, client.id), session, current_vault())
            db.session.commit()
        clients.append(client)
    batch = factory.batch(trader, clients, instrument, quantity=1)
    history_reads = requests_to_prefix_of(emulator, "/v2/order/history")
    emulator.faults.script("place", fault, "ok", "ok")
    with app.app_context():
        engine.send_batch(batch.id, build_context(app))
        rows = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()
        assert {row.status for row in rows} <= {states.PLACED, states.OPEN, states.COMPLETE}
        assert all(row.attempts == 1 for row in rows) and all(row.broker_order_id for row in rows)
    codes = {c.client_code for c in clients}
    booked = Counter((e.account, e.tag) for e in emulator.ledger.entries() if e.account in codes)
    assert len(booked) == 3 and set(booked.values()) == {1}
    assert requests_to_prefix_of(emulator, "/v2/order/history") > history_reads  # found by its tag


def requests_to_prefix_of(emulator: UpstoxEmulator, prefix: str) -> int:
    return sum(1 for _, p in emulator.requests if p.startswith(prefix))


def test_the_stream_hooks_delegate_to_the_stream_module(upstox):
    assert UpstoxBroker.stream_token(ref("INFY")) == "NSE_EQ|INE009A01021"
    assert UpstoxBroker.stream_token(ref("INFY").__class__("NSE", "WIPRO", 3787)) == "NSE|3787"
    assert UpstoxBroker.capabilities.streaming and "UPSTOX_STREAM_URL" in UpstoxBroker.settings
    stream = UpstoxBroker.open_stream(Account("X", {}, BrokerSession("tok")), {"UPSTOX_STREAM_URL": upstox.url})
    assert type(stream).__module__ == "webapp.brokers.upstox.stream"


def test_the_admin_endpoint_expires_one_accounts_sessions(upstox):
    other = upstox.new_broker(creds=upstox.emulator.add_account())
    with requests.Session() as http:
        http.post(upstox.url + "/_emulator/expire", json={"account": upstox.user_id}, timeout=5)
    with pytest.raises(AuthExpired, match="UDAPI100050"):
        upstox.broker.positions()
    assert other.positions() == []


def test_logs_are_key_value_and_never_carry_secrets(upstox, caplog):
    caplog.set_level("DEBUG")
    params = browser_code(upstox)
    broker = upstox.new_broker(access_token=None)
    session = broker.complete_login(params)
    upstox.emulator.script_response("place", 400, json.dumps({"status": "error", "errors": [{"errorCode": "X1"}]}))
    with pytest.raises(Rejected):
        broker.place(order("INFY", tag="log1"))
    broker.place(order("INFY", tag="log2"))
    text = caplog.text
    assert "broker=upstox op=login" in text and "broker=upstox op=place" in text
    for secret in (session.access_token, upstox.creds["client_secret"], params["code"], upstox.creds["access_token"]):
        assert secret not in text


def test_every_url_setting_pointed_at_the_emulator_works_too(upstox):
    """As tests/emulators/desks.py configures a desk: each *_URL setting set to the emulator's URL."""
    settings = {key: upstox.url for key in UpstoxBroker.settings if key.endswith("_URL")}
    options = UpstoxBroker.options_from(settings)
    code, credentials, session = desk_account(upstox.creds)
    broker = UpstoxBroker(Account(code, credentials, session), options)
    assert broker.place(order("INFY", tag="allurl"))
    assert {row.tradingsymbol for row in broker.instruments()} >= {"INFY", "SBIN"}
    assert upstox.emulator.ledger.count(upstox.user_id, "allurl") == 1


def test_history_rows_that_do_not_carry_the_tag_are_cant_tell_not_absent(upstox):
    """A wrong 'absent' would send a second order: rows that answer a tag query without the tag are
    an unclear answer."""
    body = {"status": "success", "data": [{**_row(), "tag": None}]}
    upstox.emulator.script_response("order_history", 200, json.dumps(body))
    with pytest.raises(Unavailable, match="do not carry the tag"):
        upstox.broker.orders_by_tag("mine1")
