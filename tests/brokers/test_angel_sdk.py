"""Angel One's official SDK (smartapi-python, `from SmartApi import SmartConnect`) against the emulator.

Every call the desk relies on goes through the SDK over loopback HTTP and is answered in the shape the
SDK parses; orders are counted at the emulator's ledger. The SDK writes a log folder in the working
directory when constructed, so each test runs in its own temporary directory.
"""

from __future__ import annotations

import logging.handlers
from datetime import datetime, timedelta
from decimal import Decimal

import pyotp
import pytest
import SmartApi

from tests.brokers.angel_fixtures import AngelDesk, start_desk
from webapp.timeutil import IST

# SmartConnect() sets ssl.OP_NO_TLSv1/1_1 on a context it never uses for these loopback calls.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")


def close_sdk_logfile() -> None:
    """SmartConnect() points logzero at a new log file and drops the old handler without closing it."""
    import logzero

    for handler in list(logzero.logger.handlers):
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            logzero.logger.removeHandler(handler)
            handler.close()


def smart_connect(api_key: str, root: str):
    close_sdk_logfile()
    return SmartApi.SmartConnect(api_key=api_key, root=root)


@pytest.fixture(scope="module")
def module_desk():
    desk = start_desk(read_rate=1000)
    yield desk
    desk.close()


@pytest.fixture
def desk(module_desk: AngelDesk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SmartConnect() makes logs/<date>/app.log in the working directory
    module_desk.reset()
    yield module_desk
    close_sdk_logfile()
    module_desk.reset()


@pytest.fixture
def creds(desk):
    return desk.account(cash="500000", holdings=[{"tradingsymbol": "SBIN", "quantity": 7, "average_price": "800"}])


@pytest.fixture
def sdk(desk, creds):
    """A SmartConnect logged in through generateSession (loginByPassword, then getProfile)."""
    client = smart_connect(creds["api_key"], desk.url)
    answer = client.generateSession(creds["client_code"], creds["mpin"], pyotp.TOTP(creds["totp_secret"]).now())
    assert answer["status"] is True and answer["data"]["clientcode"] == creds["client_code"]
    return client


def place_params(**overrides):
    return {
        "variety": "NORMAL",
        "tradingsymbol": "INFY-EQ",
        "symboltoken": "1594",
        "transactiontype": "BUY",
        "exchange": "NSE",
        "ordertype": "MARKET",
        "producttype": "DELIVERY",
        "duration": "DAY",
        "price": "0",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": "2",
        "ordertag": "SDK1",
        **overrides,
    }


def test_generate_session_sets_the_three_tokens(desk, creds, sdk):
    assert sdk.access_token in desk.emulator.sessions
    assert desk.emulator.feed_tokens[sdk.getfeedToken()] == creds["client_code"]
    assert desk.emulator.refresh_tokens[sdk.refresh_token] == creds["client_code"]
    assert sdk.userId == creds["client_code"]


def test_a_wrong_mpin_comes_back_as_the_failure_envelope(desk, creds):
    client = smart_connect(creds["api_key"], desk.url)
    answer = client.generateSession(creds["client_code"], "0000x", pyotp.TOTP(creds["totp_secret"]).now())
    assert answer == {"status": False, "message": "Invalid clientcode or MPIN", "errorcode": "AB1007", "data": None}
    assert client.access_token is None


def test_generate_token_renews_the_jwt(desk, sdk):
    old = sdk.access_token
    answer = sdk.generateToken(sdk.refresh_token)
    assert answer["status"] is True and sdk.access_token != old and sdk.access_token in desk.emulator.sessions


def test_place_modify_cancel_and_the_books(desk, creds, sdk):
    order_id = sdk.placeOrder(place_params())
    assert order_id and desk.emulator.ledger.count(creds["client_code"], "SDK1") == 1
    full = sdk.placeOrderFullResponse(
        place_params(ordertype="LIMIT", price="1400", ordertag="SDK2", transactiontype="BUY")
    )
    limit_id = full["data"]["orderid"]
    assert full["data"]["uniqueorderid"] and full["data"]["script"] == "INFY-EQ"
    modified = sdk.modifyOrder(
        {
            "variety": "NORMAL",
            "orderid": limit_id,
            "ordertype": "LIMIT",
            "producttype": "DELIVERY",
            "duration": "DAY",
            "price": "1401",
            "quantity": "3",
            "tradingsymbol": "INFY-EQ",
            "symboltoken": "1594",
            "exchange": "NSE",
        }
    )
    assert modified["status"] is True and modified["data"]["orderid"] == limit_id
    cancelled = sdk.cancelOrder(limit_id, "NORMAL")
    assert cancelled["status"] is True

    book = {row["orderid"]: row for row in sdk.orderBook()["data"]}
    assert book[order_id]["status"] == "complete" and book[order_id]["ordertag"] == "SDK1"
    assert (book[limit_id]["status"], book[limit_id]["quantity"], book[limit_id]["price"]) == ("cancelled", "3", 1401)
    [trade] = sdk.tradeBook()["data"]
    assert (trade["orderid"], trade["fillsize"]) == (order_id, "2")
    [position] = sdk.position()["data"]
    assert (position["tradingsymbol"], position["netqty"]) == ("INFY-EQ", "2")
    [holding] = sdk.holding()["data"]
    assert (holding["tradingsymbol"], holding["quantity"]) == ("SBIN-EQ", 7)
    rms = sdk.rmsLimit()["data"]
    assert Decimal(rms["net"]) == Decimal("500000") - Decimal("1548.20") * 2
    assert desk.emulator.ledger.count(creds["client_code"]) == 2


def test_a_refused_place_returns_none_and_books_nothing(desk, sdk):
    assert sdk.placeOrder(place_params(ordertag="X" * 21)) is None
    assert desk.emulator.ledger.count() == 0


def test_market_data_ltp_quote_candles_and_margin(desk, sdk):
    desk.emulator.set_price("INFY", "1555.55")
    ltp = sdk.ltpData("NSE", "INFY-EQ", "1594")["data"]
    assert (ltp["ltp"], ltp["close"]) == (1555.55, 1548.2)
    quote = sdk.getMarketData("FULL", {"NSE": ["1594", "3045"]})["data"]
    assert [q["symbolToken"] for q in quote["fetched"]] == ["1594", "3045"] and quote["unfetched"] == []
    assert len(quote["fetched"][0]["depth"]["buy"]) == 5
    day = datetime(2026, 12, 4, tzinfo=IST)
    candles = sdk.getCandleData(
        {
            "exchange": "NSE",
            "symboltoken": "1594",
            "interval": "FIFTEEN_MINUTE",
            "fromdate": f"{day:%Y-%m-%d} 09:15",
            "todate": f"{day + timedelta(hours=16):%Y-%m-%d} 15:29",
        }
    )["data"]
    assert len(candles) == 25 and candles[0][0] == "2026-12-04T09:15:00+05:30"
    margin = sdk.getMarginApi(
        {
            "positions": [
                {
                    "exchange": "NSE",
                    "qty": 10,
                    "price": 0,
                    "productType": "INTRADAY",
                    "token": "1594",
                    "tradeType": "BUY",
                    "orderType": "MARKET",
                }
            ]
        }
    )["data"]
    assert Decimal(str(margin["totalMarginRequired"])) == Decimal("3111.10")


def test_an_expired_session_is_the_gateways_invalid_token(desk, creds, sdk):
    desk.emulator.expire_sessions(creds["client_code"])
    answer = sdk.orderBook()
    assert answer == {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}


def test_logout(desk, creds, sdk):
    assert sdk.terminateSession(creds["client_code"])["status"] is True
    assert sdk.access_token not in desk.emulator.sessions
