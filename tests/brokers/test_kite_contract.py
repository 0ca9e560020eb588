"""Contract tests: the Kite adapter against the Kite emulator over real HTTP, and the emulator
against the official kiteconnect SDK (so the emulator speaks Kite, not just our adapter's dialect)."""

from __future__ import annotations

import gzip
import logging
from datetime import datetime, time, timedelta
from decimal import Decimal
from html import escape
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from kiteconnect import KiteConnect
from kiteconnect.exceptions import TokenException

from tests.brokers.kite_fixtures import SHORT_TIMEOUT, KiteEnv, kite, kite_server, limit, order  # noqa: F401
from webapp.brokers import broker_class
from webapp.brokers.base import (
    AuthExpired,
    BrokerOrderStatus,
    InstrumentRef,
    InvalidInput,
    OrderType,
    Product,
    RateLimited,
    Rejected,
    Side,
    Unavailable,
)
from webapp.brokers.kite import KiteBroker
from webapp.timeutil import IST, UTC, utcnow

PLACED = "the order may or may not be placed"
TICK_INFY = "Tick size for this script is 0.10. Kindly enter price in the multiple of tick size for this script."
CIRCUIT = "Price exceeds circuit limits for the instrument. Place an order within the daily range."
SESSION_GONE = "Kite session expired or invalid (Incorrect `api_key` or `access_token`.); log in to Kite again"
ORDER_FIELDS = {
    "placed_by",
    "order_id",
    "exchange_order_id",
    "parent_order_id",
    "status",
    "status_message",
    "status_message_raw",
    "order_timestamp",
    "exchange_update_timestamp",
    "exchange_timestamp",
    "variety",
    "modified",
    "exchange",
    "tradingsymbol",
    "instrument_token",
    "order_type",
    "transaction_type",
    "validity",
    "validity_ttl",
    "product",
    "quantity",
    "disclosed_quantity",
    "price",
    "trigger_price",
    "average_price",
    "filled_quantity",
    "pending_quantity",
    "cancelled_quantity",
    "market_protection",
    "meta",
    "tag",
    "tags",
    "guid",
}


def fixed_clock(env: KiteEnv) -> datetime:
    """Pin the emulator's IST clock so timestamps can be checked exactly."""
    moment = datetime(2026, 5, 4, 9, 15, 30, tzinfo=IST)
    env.emulator.book.clock = lambda: moment
    return moment


# ---------------------------------------------------------------------------- the adapter's identity


def test_registered_with_kite_wire_facts():
    cls = broker_class("kite")
    assert cls is KiteBroker and cls.label == "Zerodha Kite" and cls.login_kind == "redirect"
    assert [(f.name, f.secret) for f in cls.credential_fields] == [("api_key", False), ("api_secret", True)]
    limits = cls.rate_limits
    assert (limits.orders_per_second, limits.orders_per_minute, limits.orders_per_day, limits.reads_per_second) == (
        10,
        400,
        5000,
        10,
    )
    assert cls.tag_max_length == 20 and cls.session_expiry_ist == time(6, 0)


# ---------------------------------------------------------------------------- placing


def test_market_order_sends_kite_form_and_fills(kite: KiteEnv):
    order_id = kite.broker.place(order(quantity=3, tag="B1C1"))
    [entry] = kite.emulator.ledger.entries()[-1:]
    assert (entry.account, entry.order_id, entry.tag) == (kite.user_id, order_id, "B1C1")
    assert entry.payload == {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": "3",
        "product": "CNC",
        "order_type": "MARKET",
        "validity": "DAY",
        "market_protection": "-1",
        "tag": "B1C1",
    }
    [placed] = kite.broker.order_book()
    assert (placed.order_id, placed.status, placed.raw_status) == (order_id, BrokerOrderStatus.COMPLETE, "COMPLETE")
    assert (placed.filled_quantity, placed.average_price, placed.price) == (3, Decimal("1512.4"), None)
    assert placed.exchange_order_id and placed.tag == "B1C1"


def test_limit_price_round_trips_exactly(kite: KiteEnv):
    kite.emulator.add_instrument("FANOUTTEST", "FANOUT TEST LTD", 99001, "1234.00", "0.05")
    order_id = kite.broker.place(limit("FANOUTTEST", "1234.05", quantity=2))
    assert kite.emulator.ledger.entries()[-1].payload["price"] == "1234.05"
    kite.emulator.fill(order_id)
    [placed] = kite.broker.order_book()
    assert placed.price == Decimal("1234.05") and placed.average_price == Decimal("1234.05")
    assert isinstance(placed.price, Decimal) and kite.broker.trades()[0].price == Decimal("1234.05")


def test_sl_m_sends_trigger_algo_id_and_chosen_protection(kite: KiteEnv):
    kite.broker.place(
        order(
            order_type=OrderType.SLM,
            trigger="1530.00",
            market_protection=Decimal("2.5"),
            algo_id="NSEALGO42",
            side=Side.BUY,
        )
    )
    payload = kite.emulator.ledger.entries()[-1].payload
    assert (payload["trigger_price"], payload["market_protection"], payload["algo_id"]) == (
        "1530.00",
        "2.5",
        "NSEALGO42",
    )
    assert "price" not in payload
    assert kite.broker.order_book()[0].status is BrokerOrderStatus.TRIGGER_PENDING


def test_market_protection_default_comes_from_options(kite: KiteEnv):
    kite.new_broker(market_protection="3").place(order())
    assert kite.emulator.ledger.entries()[-1].payload["market_protection"] == "3"


@pytest.mark.parametrize(
    "request_, message",
    [
        (order(quantity=0), "Quantity must be a positive whole number"),
        (order(order_type=OrderType.LIMIT), "A LIMIT order needs a price"),
        (order(order_type=OrderType.SL, price="1500.00"), "A SL order needs a trigger price"),
        (order(tag="bad-tag"), "Zerodha Kite order tags are 1 to 20 letters and digits"),
        (order(tag="A" * 21), "Zerodha Kite order tags are 1 to 20 letters and digits"),
        (order(market_protection=Decimal("0")), "Kite market protection must be -1 (automatic) or above 0 up to 100 %"),
        (
            order(order_type=OrderType.SLM, trigger="1530.00", market_protection=Decimal("101")),
            "Kite market protection must be -1 (automatic) or above 0 up to 100 %",
        ),
    ],
)
def test_malformed_orders_refused_before_sending(kite: KiteEnv, request_, message):
    with pytest.raises(InvalidInput) as caught:
        kite.broker.place(request_)
    assert caught.value.message == message
    assert kite.emulator.ledger.count(account=kite.user_id) == 0


@pytest.mark.parametrize(
    "request_, reason",
    [
        (limit(price="1512.45"), TICK_INFY),
        (limit(price="1700.00"), CIRCUIT),
        (limit(price="1300.00"), CIRCUIT),
        (
            order(order_type=OrderType.SL, price="1530.00", trigger="1529.95"),
            "Tick size for this script is 0.10. Kindly enter trigger price in the multiple of tick size for this script.",  # noqa: E501  (Kite's own words)
        ),
    ],
)
def test_kite_pre_trade_refusals_are_rejections_with_kites_reason(kite: KiteEnv, request_, reason):
    with pytest.raises(Rejected) as caught:
        kite.broker.place(request_)
    assert caught.value.reason == reason
    assert kite.emulator.ledger.count(account=kite.user_id) == 0


def test_emulator_refuses_market_orders_without_protection(kite: KiteEnv):
    form = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": "1",
        "product": "CNC",
        "order_type": "MARKET",
    }
    for protection in (None, "0"):
        answer = kite.http().post(
            kite.url + "/orders/regular",
            headers=kite.kite_headers(),
            data={**form, **({"market_protection": protection} if protection else {})},
        )
        assert answer.status_code == 400
        assert answer.json() == {
            "status": "error",
            "error_type": "InputException",
            "data": None,
            "message": "Market orders without market protection are not allowed via API",
        }


def test_rms_rejection_arrives_in_the_order_book(kite: KiteEnv):
    kite.creds = kite.emulator.add_account(cash="10000")
    broker = kite.new_broker()
    order_id = broker.place(order(quantity=10))
    [rejected] = broker.order_book()
    assert (rejected.order_id, rejected.status) == (order_id, BrokerOrderStatus.REJECTED)
    assert rejected.status_message == (
        "Insufficient funds. Required margin is 15124.00 but available margin is "
        "10000.00. Check the orderbook for open orders."
    )


# ---------------------------------------------------------------------------- status words


@pytest.mark.parametrize(
    "word, filled, expected",
    [
        ("PUT ORDER REQ RECEIVED", 0, BrokerOrderStatus.PENDING),
        ("VALIDATION PENDING", 0, BrokerOrderStatus.PENDING),
        ("OPEN PENDING", 0, BrokerOrderStatus.PENDING),
        ("MODIFY VALIDATION PENDING", 0, BrokerOrderStatus.PENDING),
        ("MODIFY PENDING", 0, BrokerOrderStatus.PENDING),
        ("CANCEL PENDING", 0, BrokerOrderStatus.PENDING),
        ("AMO REQ RECEIVED", 0, BrokerOrderStatus.PENDING),
        ("MODIFIED", 0, BrokerOrderStatus.OPEN),
        ("MODIFIED", 3, BrokerOrderStatus.PARTIAL),
        ("OPEN", 0, BrokerOrderStatus.OPEN),
        ("OPEN", 3, BrokerOrderStatus.PARTIAL),
        ("TRIGGER PENDING", 0, BrokerOrderStatus.TRIGGER_PENDING),
        ("COMPLETE", 0, BrokerOrderStatus.COMPLETE),
        ("CANCELLED", 3, BrokerOrderStatus.CANCELLED),
        ("REJECTED", 0, BrokerOrderStatus.REJECTED),
    ],
)
def test_every_status_word_maps(kite: KiteEnv, word, filled, expected):
    order_id = kite.broker.place(limit(quantity=10))
    if filled:
        kite.emulator.fill(order_id, filled)
    kite.emulator.set_status(order_id, word)
    [seen] = kite.broker.order_book()
    assert (seen.status, seen.raw_status, seen.filled_quantity, seen.quantity) == (expected, word, filled, 10)


def test_rejection_reason_reaches_the_trader(kite: KiteEnv):
    order_id = kite.broker.place(limit())
    kite.emulator.set_status(order_id, "REJECTED", "RMS:Blocked for trading in this scrip")
    assert kite.broker.order_book()[0].status_message == "RMS:Blocked for trading in this scrip"


# ---------------------------------------------------------------------------- modify, cancel, history


def test_modify_changes_the_order_and_walks_kites_words(kite: KiteEnv):
    order_id = kite.broker.place(limit(quantity=5))
    assert kite.broker.modify(order_id, price=Decimal("1505.30"), quantity=7) == order_id
    [seen] = kite.broker.order_book()
    assert (seen.price, seen.quantity, seen.status) == (Decimal("1505.30"), 7, BrokerOrderStatus.OPEN)
    history = kite.http().get(f"{kite.url}/orders/{order_id}", headers=kite.kite_headers()).json()["data"]
    assert [h["status"] for h in history] == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "OPEN",
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "MODIFIED",
        "OPEN",
    ]


def test_modify_to_market_carries_protection_and_fills(kite: KiteEnv):
    order_id = kite.broker.place(limit(quantity=2))
    kite.broker.modify(order_id, order_type=OrderType.MARKET)
    assert kite.emulator.order(order_id)["market_protection"] == Decimal("-1")
    assert kite.broker.order_book()[0].status is BrokerOrderStatus.COMPLETE


def test_modify_and_cancel_of_a_finished_order_are_rejected(kite: KiteEnv):
    order_id = kite.broker.place(order())
    with pytest.raises(Rejected, match=r"^Order cannot be modified as it is complete\.$"):
        kite.broker.modify(order_id, quantity=2)
    with pytest.raises(Rejected, match=r"^Order cannot be cancelled as it is complete\.$"):
        kite.broker.cancel(order_id)


def test_partial_fill_then_cancel(kite: KiteEnv):
    order_id = kite.broker.place(limit(quantity=10))
    kite.emulator.fill(order_id, 4)
    assert kite.broker.cancel(order_id) == order_id
    [seen] = kite.broker.order_book()
    assert (seen.status, seen.filled_quantity, seen.pending_quantity) == (BrokerOrderStatus.CANCELLED, 4, 6)


def test_unknown_order_id_is_rejected(kite: KiteEnv):
    with pytest.raises(Rejected, match="^Couldn't find that `order_id`.$"):
        kite.broker.cancel("999999999999999")


def test_orders_by_tag_matches_tag_and_tags(kite: KiteEnv):
    wanted = kite.broker.place(limit(tag="T1"))
    kite.broker.place(limit(tag="T2"))
    other = kite.broker.place(limit())
    with kite.emulator.lock:  # an order edited elsewhere keeps our tag only in `tags`
        kite.emulator.accounts[kite.user_id].orders[other].update(tag="KITEWEB", tags=["KITEWEB", "T1"])
    assert sorted(o.order_id for o in kite.broker.orders_by_tag("T1")) == sorted([wanted, other])
    assert kite.broker.orders_by_tag("NOPE") == []


def test_order_json_has_exactly_kites_fields_and_ist_times(kite: KiteEnv):
    fixed_clock(kite)
    kite.broker.place(limit(tag="F1"))
    [raw] = kite.http().get(kite.url + "/orders", headers=kite.kite_headers()).json()["data"]
    assert set(raw) == ORDER_FIELDS and raw["order_timestamp"] == "2026-05-04 09:15:30"
    [seen] = kite.broker.order_book()
    assert seen.placed_at == seen.updated_at == datetime(2026, 5, 4, 3, 45, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------- portfolio and funds


def test_trades_carry_fill_time_in_utc(kite: KiteEnv):
    fixed_clock(kite)
    order_id = kite.broker.place(order(quantity=2, product=Product.MIS))
    [trade] = kite.broker.trades()
    assert (trade.order_id, trade.side, trade.product, trade.quantity, trade.price) == (
        order_id,
        Side.BUY,
        Product.MIS,
        2,
        Decimal("1512.4"),
    )
    assert trade.filled_at == datetime(2026, 5, 4, 3, 45, 30, tzinfo=UTC)


def test_positions_net_with_realised_and_unrealised(kite: KiteEnv):
    kite.broker.place(order(quantity=10))
    sell = kite.broker.place(limit(price="1520.00", quantity=4, side=Side.SELL))
    kite.emulator.fill(sell)
    kite.emulator.set_price("INFY", "1515.00")
    [position] = kite.broker.positions()
    assert (position.tradingsymbol, position.product, position.quantity) == ("INFY", Product.CNC, 6)
    assert (position.buy_quantity, position.sell_quantity, position.average_price) == (10, 4, Decimal("1512.4"))
    assert (position.realised_pnl, position.unrealised_pnl, position.last_price) == (
        Decimal("30.4"),
        Decimal("15.6"),
        Decimal("1515.00"),
    )


def test_holdings(kite: KiteEnv):
    kite.creds = kite.emulator.add_account(
        holdings=[{"tradingsymbol": "TCS", "quantity": 12, "average_price": "3100.55", "t1_quantity": 3}]
    )
    [holding] = kite.new_broker().holdings()
    assert (holding.tradingsymbol, holding.quantity, holding.t1_quantity, holding.isin) == (
        "TCS",
        12,
        3,
        "INE467B01029",
    )
    assert (holding.average_price, holding.last_price) == (Decimal("3100.55"), Decimal("3215.50"))


def test_funds_follow_fills_and_open_orders(kite: KiteEnv):
    kite.creds = kite.emulator.add_account(cash="1000000", collateral="50000")
    broker = kite.new_broker()
    broker.place(order(quantity=10))  # 10 x 1512.40 delivery
    broker.place(limit("HDFCBANK", "970.00", quantity=5))  # blocks 4850.00 while open
    funds = broker.funds()
    assert (funds.available_cash, funds.collateral, funds.opening_balance) == (
        Decimal("1000000"),
        Decimal("50000"),
        Decimal("1000000"),
    )
    assert funds.margin_used == Decimal("19974.00") and funds.available_margin == Decimal("1030026.00")


# ---------------------------------------------------------------------------- market data


def test_quotes_keyed_by_exchange_symbol_with_depth_and_circuits(kite: KiteEnv):
    fixed_clock(kite)
    quotes = kite.broker.quotes([InstrumentRef("NSE", "INFY", 1594, 408065), InstrumentRef("NSE", "NOSUCH", 1)])
    assert list(quotes) == ["NSE:INFY"]
    quote = quotes["NSE:INFY"]
    assert (quote.last_price, quote.lower_circuit, quote.upper_circuit) == (
        Decimal("1512.4"),
        Decimal("1361.2"),
        Decimal("1663.6"),
    )
    assert len(quote.bids) == len(quote.asks) == 5
    assert (quote.bids[0].price, quote.bids[0].quantity, quote.asks[0].price) == (
        Decimal("1512.3"),
        100,
        Decimal("1512.5"),
    )
    assert quote.timestamp == datetime(2026, 5, 4, 3, 45, 30, tzinfo=UTC) and quote.volume == 1_250_000


def test_quote_endpoint_limit_is_one_per_second(kite: KiteEnv):
    kite.broker.quotes([InstrumentRef("NSE", "SBIN", 3045)])
    with pytest.raises(RateLimited):
        kite.broker.quotes([InstrumentRef("NSE", "SBIN", 3045)])


def test_margin_required_sums_kites_totals(kite: KiteEnv):
    total = kite.broker.margin_required(
        [
            limit("HDFCBANK", "978.35", quantity=10),  # delivery: 9783.50
            order("SBIN", quantity=5, product=Product.MIS),  # intraday at 5x: 812.45
        ]
    )
    assert total == Decimal("10595.95")
    assert kite.broker.margin_required([]) == Decimal("0")


def test_instruments_from_the_csv_dump(kite: KiteEnv):
    rows = {row.tradingsymbol: row for row in kite.broker.instruments()}
    infy = rows["INFY"]
    assert (infy.exchange, infy.exchange_token, infy.instrument_token, infy.name) == ("NSE", 1594, 408065, "INFOSYS")
    assert (infy.tick_size, infy.lot_size, infy.instrument_type, infy.segment) == (Decimal("0.10"), 1, "EQ", "NSE")
    assert rows["ITC"].tick_size == Decimal("0.05") and {"RELIANCE", "TCS", "HDFCBANK", "SBIN"} <= set(rows)


def test_instruments_gzip_body_and_bad_header(kite: KiteEnv):
    csv_text = (
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,segment,exchange\r\n408065,1594,INFY,INFOSYS,0.0,,0.0,0.1,1,EQ,NSE,NSE\r\n"
    )
    kite.emulator.script_response("read", 200, gzip.compress(csv_text.encode()), "text/csv")
    assert [r.tradingsymbol for r in kite.broker.instruments()] == ["INFY"]
    kite.emulator.script_response("read", 200, "token,symbol\r\n1,INFY\r\n", "text/csv")
    with pytest.raises(Unavailable, match="unexpected header"):
        kite.broker.instruments()


# ---------------------------------------------------------------------------- login


def test_login_url_carries_state_in_redirect_params(kite: KiteEnv):
    url = kite.broker.login_url("https://desk.example/clients/7/kite/callback", "s7x")
    assert url == f"{kite.url}/connect/login?api_key={kite.creds['api_key']}&v=3&redirect_params=state%3Ds7x"
    default = KiteBroker(kite.broker.account)
    kite._opened.append(default)
    assert default.login_url("ignored", "abc").startswith("https://kite.zerodha.com/connect/login?api_key=")


def test_redirect_login_with_totp_then_session(kite: KiteEnv):
    secret = pyotp.random_base32()
    kite.creds = kite.emulator.add_account(totp_secret=secret, redirect_url="https://desk.example/kite/cb")
    broker = kite.new_broker(access_token=None)
    url = broker.login_url("unused", "st4te")
    assert 'name="totp"' in kite.http().get(url).text
    answer = kite.browser_login(url, totp=pyotp.TOTP(secret).now())
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://desk.example/kite/cb"
    assert {k: params[k] for k in ("action", "type", "status", "state")} == {
        "action": "login",
        "type": "login",
        "status": "success",
        "state": "st4te",
    }
    before = utcnow()
    session = broker.complete_login(params)
    assert session.extra["user_id"] == kite.user_id
    assert session.expires_at.astimezone(IST).time() == time(6, 0)
    assert timedelta(0) < session.expires_at - before <= timedelta(days=1)
    assert broker.order_book() == []  # the adapter now carries the new token
    assert kite.new_broker(access_token=session.access_token).funds().available_cash == Decimal("1000000")


@pytest.mark.parametrize(
    "right_password, right_totp, error",
    [
        (False, True, "Invalid `user_id` or `password`."),
        (True, False, "Invalid TOTP."),
    ],
)
def test_login_page_shows_errors_and_does_not_redirect(kite: KiteEnv, right_password, right_totp, error):
    secret = pyotp.random_base32()
    kite.creds = kite.emulator.add_account(totp_secret=secret)
    url = kite.new_broker(access_token=None).login_url("unused", "s")
    valid = pyotp.TOTP(secret).now()
    answer = kite.browser_login(
        url,
        password=None if right_password else "wrong",
        totp=valid if right_totp else f"{(int(valid) + 500_000) % 1_000_000:06d}",
    )
    assert answer.status_code == 200 and escape(error) in answer.text
    assert "Location" not in answer.headers


def test_request_token_is_single_use(kite: KiteEnv):
    broker = kite.new_broker(access_token=None)
    params = dict(parse_qs(urlsplit(kite.browser_login(broker.login_url("u", "s")).headers["Location"]).query))
    params = {k: v[0] for k, v in params.items()}
    broker.complete_login(params)
    with pytest.raises(AuthExpired) as caught:
        kite.new_broker(access_token=None).complete_login(params)
    assert caught.value.message == (
        "Kite session expired or invalid (Token is invalid or has expired.); log in to Kite again"
    )


def test_wrong_api_secret_is_invalid_input(kite: KiteEnv):
    broker = kite.new_broker(access_token=None, api_secret="not-the-secret")
    location = kite.browser_login(broker.login_url("u", "s")).headers["Location"]
    with pytest.raises(InvalidInput) as caught:
        broker.complete_login({k: v[0] for k, v in parse_qs(urlsplit(location).query).items()})
    assert caught.value.message == "Kite refused the request: Invalid `checksum`."


def test_login_as_another_kite_user_is_refused(kite: KiteEnv):
    broker = kite.new_broker(access_token=None, client_code="AB1234")
    location = kite.browser_login(broker.login_url("u", "s")).headers["Location"]
    with pytest.raises(Rejected, match=f"^Kite logged in user {kite.user_id}, but this client is AB1234; "):
        broker.complete_login({k: v[0] for k, v in parse_qs(urlsplit(location).query).items()})


def test_redirect_url_can_change_and_failed_status_is_refused(kite: KiteEnv):
    kite.emulator.set_redirect_url(kite.creds["api_key"], "https://new.example/cb?x=1")
    broker = kite.new_broker(access_token=None)
    location = kite.browser_login(broker.login_url("u", "s")).headers["Location"]
    assert location.startswith("https://new.example/cb?x=1&action=login&")
    with pytest.raises(Rejected, match="^Kite login did not complete; log in to Kite again$"):
        broker.complete_login({"status": "error", "request_token": "x"})


def test_no_session_means_auth_expired_without_a_call(kite: KiteEnv):
    seen = len(kite.emulator.requests)
    with pytest.raises(AuthExpired, match="^Not logged in to Kite; log in to Kite again$"):
        kite.new_broker(access_token=None).order_book()
    assert len(kite.emulator.requests) == seen


# ---------------------------------------------------------------------------- headers and auth


def test_emulator_checks_version_header_and_token(kite: KiteEnv):
    http = kite.http()
    no_version = http.get(kite.url + "/orders", headers={"Authorization": kite.kite_headers()["Authorization"]})
    assert no_version.status_code == 400 and no_version.json()["error_type"] == "InputException"
    for headers in (
        {"X-Kite-Version": "3"},
        kite.kite_headers(token="stale"),
        {**kite.kite_headers(), "Authorization": f"token other:{kite.creds['access_token']}"},
    ):
        answer = http.get(kite.url + "/orders", headers=headers)
        assert answer.status_code == 403
        assert answer.json() == {
            "status": "error",
            "message": "Incorrect `api_key` or `access_token`.",
            "error_type": "TokenException",
            "data": None,
        }


def test_expired_session_is_auth_expired(kite: KiteEnv):
    kite.emulator.expire_sessions(kite.user_id)
    with pytest.raises(AuthExpired) as caught:
        kite.broker.positions()
    assert caught.value.message == SESSION_GONE


# ---------------------------------------------------------------------------- faults and error mapping


def test_timeout_after_accept_is_unavailable_and_the_order_is_found_by_tag(kite: KiteEnv):
    broker = kite.new_broker(timeout=SHORT_TIMEOUT)
    kite.emulator.faults.script("place", "timeout_after_accept")
    with pytest.raises(Unavailable) as caught:
        broker.place(limit(tag="TMO1"))
    assert caught.value.message == f"Kite did not answer in 0.3 s; {PLACED}"
    assert kite.emulator.ledger.count(account=kite.user_id, tag="TMO1") == 1
    [found] = broker.orders_by_tag("TMO1")
    assert found.order_id == kite.emulator.ledger.entries()[-1].order_id


def test_dropped_answer_is_unavailable_and_the_order_exists(kite: KiteEnv):
    kite.emulator.faults.script("place", "drop_after_accept")
    with pytest.raises(Unavailable) as caught:
        kite.broker.place(limit(tag="DRP1"))
    assert caught.value.message == f"Kite closed the connection without an answer; {PLACED}"
    assert [o.tag for o in kite.broker.orders_by_tag("DRP1")] == ["DRP1"]


@pytest.mark.parametrize("fault, booked", [("error_5xx", 0), ("error_5xx_after_accept", 1)])
def test_5xx_is_unavailable_whether_or_not_booked(kite: KiteEnv, fault, booked):
    kite.emulator.faults.script("place", fault)
    with pytest.raises(Unavailable) as caught:
        kite.broker.place(limit(tag="E5XX"))
    assert caught.value.message == (
        f"Kite is unavailable (NetworkException: Couldn't connect to the OMS. Please try again.); {PLACED}"
    )
    assert kite.emulator.ledger.count(account=kite.user_id, tag="E5XX") == booked


def test_burst_429_is_rate_limited_and_nothing_is_booked(kite: KiteEnv):
    kite.emulator.faults.script("place", "burst_429")
    with pytest.raises(RateLimited) as caught:
        kite.broker.place(limit(tag="R429"))
    assert caught.value.message == (
        "Kite rate limit reached (HTTP 429 Too many requests); not accepted, retry after a pause"
    )
    assert caught.value.retry_after is None and kite.emulator.ledger.count(account=kite.user_id) == 0
    kite.emulator.script_response(
        "place",
        429,
        '{"status":"error","message":"Too many requests","error_type":"NetworkException","data":null}',
        headers={"Retry-After": "2"},
    )
    with pytest.raises(RateLimited) as caught:
        kite.broker.place(limit())
    assert caught.value.retry_after == 2.0


def test_expire_token_fault_revokes_the_session(kite: KiteEnv):
    kite.emulator.faults.script("place", "expire_token")
    with pytest.raises(AuthExpired, match="log in to Kite again$"):
        kite.broker.place(limit())
    with pytest.raises(AuthExpired):
        kite.broker.order_book()


def test_eleventh_order_in_a_second_is_rate_limited(kite: KiteEnv):
    for n in range(10):
        kite.broker.place(limit(tag=f"RL{n}"))
    with pytest.raises(RateLimited):
        kite.broker.place(limit(tag="RL10"))
    assert kite.emulator.ledger.count(account=kite.user_id) == 10


@pytest.mark.parametrize(
    "kind, call, outcome",
    [
        ("read", lambda broker, order_id: broker.order_book(), "nothing was changed; try again"),
        (
            "modify",
            lambda broker, order_id: broker.modify(order_id, price=Decimal("1500.10")),
            "the change may or may not be applied",
        ),
        ("cancel", lambda broker, order_id: broker.cancel(order_id), "the order may or may not be cancelled"),
    ],
)
def test_faults_on_reads_modify_and_cancel(kite: KiteEnv, kind, call, outcome):
    order_ids = [kite.broker.place(limit()) for _ in range(3)]  # a fresh open order for each fault
    broker = kite.new_broker(timeout=SHORT_TIMEOUT)
    kite.emulator.faults.script(kind, "timeout_after_accept", "drop_after_accept", "error_5xx")
    with pytest.raises(Unavailable, match=f"^Kite did not answer in 0.3 s; {outcome}$"):
        call(broker, order_ids[0])
    with pytest.raises(Unavailable, match=f"^Kite closed the connection without an answer; {outcome}$"):
        call(broker, order_ids[1])
    with pytest.raises(Unavailable, match=rf"^Kite is unavailable \(NetworkException: .*\); {outcome}$"):
        call(broker, order_ids[2])


@pytest.mark.parametrize(
    "status, error_type, error",
    [
        (403, "TokenException", AuthExpired),
        (400, "InputException", Rejected),
        (400, "OrderException", Rejected),
        (400, "MarginException", Rejected),
        (400, "HoldingException", Rejected),
        (403, "UserException", Rejected),
        (403, "PermissionException", Rejected),
        (503, "NetworkException", Unavailable),
        (502, "DataException", Unavailable),
        (500, "GeneralException", Unavailable),
        (500, "OrderException", Unavailable),  # any 5xx on a place is ambiguous
        (429, "NetworkException", RateLimited),
    ],
)
def test_every_error_type_on_place(kite: KiteEnv, status, error_type, error):
    kite.emulator.script_error("place", status, error_type, "Kite says no")
    with pytest.raises(error) as caught:
        kite.broker.place(limit())
    if error is Rejected:
        assert caught.value.reason == "Kite says no"
    if error is Unavailable:
        assert caught.value.message == f"Kite is unavailable ({error_type}: Kite says no); {PLACED}"


def test_input_exception_on_a_read_is_invalid_input(kite: KiteEnv):
    kite.emulator.script_error("read", 400, "InputException", "Invalid segment.")
    with pytest.raises(InvalidInput, match=r"^Kite refused the request: Invalid segment\.$"):
        kite.broker.funds()


@pytest.mark.parametrize(
    "status, body, content_type, message",
    [
        (200, "<html>oops</html>", "text/html", f"Kite sent an unreadable answer (HTTP 200); {PLACED}"),
        (200, "", "application/json", f"Kite sent an unreadable answer (HTTP 200); {PLACED}"),
        (200, '{"status":"success"', "application/json", f"Kite sent an unreadable answer (HTTP 200); {PLACED}"),
        (200, '{"status":"success","data":{}}', "application/json", f"Kite answered without an order id; {PLACED}"),
        (200, '{"status":"success","data":null}', "application/json", f"Kite answered without an order id; {PLACED}"),
        (502, "<html>Bad gateway</html>", "text/html", f"Kite answered HTTP 502 without details; {PLACED}"),
    ],
)
def test_malformed_place_answers_are_unavailable(kite: KiteEnv, status, body, content_type, message):
    kite.emulator.script_response("place", status, body, content_type)
    with pytest.raises(Unavailable) as caught:
        kite.broker.place(limit())
    assert caught.value.message == message


def test_malformed_order_book_is_unavailable(kite: KiteEnv):
    kite.emulator.script_response("read", 200, '{"status":"success","data":[{"order_id":"1","status":"OPEN"}]}')
    with pytest.raises(Unavailable, match="^Kite sent an unreadable orders answer; nothing was changed; try again$"):
        kite.broker.order_book()
    kite.emulator.script_response("read", 200, '{"status":"success","data":{"net":"nope"}}')
    with pytest.raises(Unavailable, match="^Kite sent an unreadable positions answer"):
        kite.broker.positions()


def test_logs_never_carry_secrets(kite: KiteEnv, caplog):
    caplog.set_level(logging.DEBUG, logger="webapp.brokers.kite")
    broker = kite.new_broker(access_token=None)
    location = kite.browser_login(broker.login_url("u", "s")).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    session = broker.complete_login(params)
    kite.emulator.script_error(
        "read", 500, "GeneralException", f"echo {session.access_token} {kite.creds['api_secret']} access_token=abc123"
    )
    with pytest.raises(Unavailable):
        broker.order_book()
    assert "op=orders" in caplog.text and "***" in caplog.text
    for secret in (session.access_token, kite.creds["api_secret"], params["request_token"], "abc123"):
        assert secret not in caplog.text


# ---------------------------------------------------------------------------- the official SDK


def test_official_kiteconnect_sdk_speaks_to_the_emulator(kite: KiteEnv):
    location = kite.browser_login(kite.new_broker(access_token=None).login_url("u", "s")).headers["Location"]
    request_token = parse_qs(urlsplit(location).query)["request_token"][0]
    sdk = KiteConnect(kite.creds["api_key"], root=kite.url, disable_ssl=True)
    kite._opened.append(sdk.reqsession)
    session = sdk.generate_session(request_token, api_secret=kite.creds["api_secret"])
    assert session["user_id"] == kite.user_id and session["login_time"].year >= 2026
    order_id = sdk.place_order(
        variety=sdk.VARIETY_REGULAR,
        exchange="NSE",
        tradingsymbol="SBIN",
        transaction_type="BUY",
        quantity=4,
        product=sdk.PRODUCT_MIS,
        order_type="MARKET",
        market_protection=sdk.MARKET_PROTECTION_AUTO,
        tag="SDK1",
    )
    [placed] = sdk.orders()
    assert (placed["order_id"], placed["status"], placed["tag"]) == (order_id, "COMPLETE", "SDK1")
    assert isinstance(placed["order_timestamp"], datetime)
    assert sdk.positions()["net"][0]["quantity"] == 4
    assert sdk.margins()["equity"]["utilised"]["debits"] == pytest.approx(649.96)
    assert sdk.quote(["NSE:SBIN"])["NSE:SBIN"]["depth"]["sell"][0]["price"] == pytest.approx(812.5)
    kite.emulator.expire_sessions(kite.user_id)
    with pytest.raises(TokenException) as caught:
        sdk.orders()
    assert caught.value.code == 403
