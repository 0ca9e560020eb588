"""The official DhanHQ SDK (dhanhq 2.3.0) driven against the Dhan emulator over loopback HTTP: the
emulator must answer what the broker's own client sends and reads (reference §2.9: DhanContext,
base_url on get_dhan_http()). The SDK answers {status, remarks, data} instead of raising."""

from __future__ import annotations

import dhanhq as dhanhq_module
import pyotp
import pytest

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.dhan import DhanEmulator

DhanContext, DhanLogin, dhanhq = dhanhq_module.DhanContext, dhanhq_module.DhanLogin, dhanhq_module.dhanhq


@pytest.fixture(scope="module")
def server():
    with EmulatorServer(DhanEmulator(quotes_per_second=1000)) as server:
        yield server


@pytest.fixture
def emu(server) -> DhanEmulator:
    server.app.reset(FaultPlan(hang_seconds=0.5))
    return server.app


@pytest.fixture
def creds(emu) -> dict:
    return emu.add_account(cash="300000", holdings={"ITC": 15})


def sdk(server, creds: dict, token: str | None = None):
    context = DhanContext(creds["client_id"], token or creds["access_token"])
    context.get_dhan_http().base_url = server.url + "/v2"
    return dhanhq(context)


def test_orders_through_the_sdk(emu, server, creds):
    dhan = sdk(server, creds)
    placed = dhan.place_order(
        security_id="1594",
        exchange_segment=dhan.NSE,
        transaction_type=dhan.BUY,
        quantity=2,
        order_type=dhan.LIMIT,
        product_type=dhan.INTRA,
        price=1500.0,
        tag="SdkTag0001",
    )
    assert placed["status"] == "success", placed
    order_id = placed["data"]["orderId"]
    assert placed["data"]["orderStatus"] == "TRANSIT"
    assert emu.ledger.count(creds["client_id"], "SdkTag0001") == 1
    by_tag = dhan.get_order_by_correlationID("SdkTag0001")
    assert by_tag["data"]["orderId"] == order_id and by_tag["data"]["orderStatus"] == "PENDING"
    modified = dhan.modify_order(order_id, dhan.LIMIT, "", 3, 1549.0, 0, 0, dhan.DAY)
    assert modified["status"] == "success" and modified["data"]["orderId"] == order_id
    one = dhan.get_order_by_id(order_id)["data"]
    assert one["orderStatus"] == "TRADED" and one["filledQty"] == 3 and one["correlationId"] == "SdkTag0001"
    second = dhan.place_order("3045", dhan.NSE, dhan.SELL, 1, dhan.SL, dhan.CNC, 900.0, trigger_price=901.0)
    cancelled = dhan.cancel_order(second["data"]["orderId"])
    assert cancelled["data"]["orderStatus"] == "CANCELLED"
    book = dhan.get_order_list()
    assert book["status"] == "success" and [o["orderStatus"] for o in book["data"]] == ["TRADED", "CANCELLED"]


def test_refusals_come_back_as_failure_remarks(emu, server, creds):
    dhan = sdk(server, creds)
    bad = dhan.place_order("1594", dhan.NSE, dhan.BUY, 1, dhan.LIMIT, dhan.CNC, 1500.03)
    assert bad["status"] == "failure" and bad["remarks"]["error_code"] == "DH-905"
    assert bad["remarks"]["error_type"] and "tick" in bad["remarks"]["error_message"]
    missing = dhan.get_order_by_correlationID("NoSuchTag1")
    assert missing["status"] == "failure" and missing["remarks"]["error_code"] == "DH-906"
    expired = sdk(server, creds, token="eyJforged")
    answer = expired.get_fund_limits()
    assert answer["status"] == "failure" and answer["remarks"]["error_code"] == "DH-901"
    emu.faults.script("place", "burst_429")
    limited = dhan.place_order("1594", dhan.NSE, dhan.BUY, 1, dhan.MARKET, dhan.CNC, 0)
    assert limited["remarks"]["error_code"] == "DH-904" and emu.ledger.count() == 0


def test_portfolio_and_funds_through_the_sdk(emu, server, creds):
    dhan = sdk(server, creds)
    dhan.place_order("1660", dhan.NSE, dhan.BUY, 10, dhan.MARKET, dhan.CNC, 0)
    [trade] = dhan.get_trade_book()["data"]
    assert trade["tradedQuantity"] == 10 and trade["securityId"] == "1660" and trade["exchangeTradeId"]
    [position] = dhan.get_positions()["data"]
    assert position["netQty"] == 10 and position["positionType"] == "LONG" and position["productType"] == "CNC"
    [holding] = dhan.get_holdings()["data"]
    assert holding["tradingSymbol"] == "ITC" and holding["totalQty"] == 15 and holding["isin"]
    funds = dhan.get_fund_limits()["data"]
    assert "availabelBalance" in funds and funds["availabelBalance"] == 300000 - 4053.5
    margin = dhan.margin_calculator("1594", dhan.NSE, dhan.BUY, 4, dhan.CNC, 1500.0)["data"]
    assert margin["totalMargin"] == 6000 and "insufficientBalance" in margin


def test_market_data_through_the_sdk(emu, server, creds):
    dhan = sdk(server, creds)
    emu.set_price("TCS", "3110.00")
    quote = dhan.quote_data({"NSE_EQ": [11536, 1594]})
    assert quote["status"] == "success"
    entry = quote["data"]["data"]["NSE_EQ"]["11536"]
    assert entry["last_price"] == 3110 and len(entry["depth"]["buy"]) == 5 and "ohlc" in entry
    ltp = dhan.ticker_data({"NSE_EQ": [1594]})
    assert ltp["data"]["data"]["NSE_EQ"]["1594"] == {"last_price": 1548.2}
    bars = dhan.intraday_minute_data("1594", dhan.NSE, "EQUITY", "2026-11-30", "2026-12-01", interval=15)["data"]
    assert len(bars["open"]) == len(bars["timestamp"]) == 25  # Monday: 09:15 to 15:15, a date-only toDate is midnight
    daily = dhan.historical_daily_data("1594", dhan.NSE, "EQUITY", "2026-11-30", "2026-12-05")["data"]
    assert len(daily["close"]) == 5  # toDate is exclusive; a week's five sessions
    too_long = dhan.intraday_minute_data("1594", dhan.NSE, "EQUITY", "2026-01-01", "2026-06-01", interval=5)
    assert too_long["status"] == "failure" and too_long["remarks"]["error_code"] == "DH-905"


def test_pin_and_totp_token_through_the_sdk(emu, server, creds):
    login = DhanLogin(creds["client_id"])
    login.AUTH_BASE_URL = server.url
    answer = login.generate_token(creds["pin"], pyotp.TOTP(creds["totp_secret"]).now())
    assert answer["dhanClientId"] == creds["client_id"] and answer["accessToken"] != creds["access_token"]
    assert answer["expiryTime"]
    dhan = sdk(server, creds, token=answer["accessToken"])
    assert dhan.get_order_list() == {"status": "success", "remarks": "", "data": []}
    with pytest.raises(Exception, match="Failed to generate token"):
        login.generate_token("999999" if creds["pin"] != "999999" else "888888", "000000")
