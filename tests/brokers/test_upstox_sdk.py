"""The official upstox-python-sdk (2.30.0) against the Upstox emulator: the emulator speaks Upstox, not
just our adapter's dialect. The SDK deserializes every answer into its models and re-validates
enum values (order_type, validity, transaction_type, the envelope status), so a wrong word fails
here (reference/brokers-upstox-dhan.md §1.5, §1.9)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import upstox_client
from upstox_client.rest import ApiException

from tests.brokers.upstox_fixtures import UpstoxEnv, upstox, upstox_server  # noqa: F401

INFY = "NSE_EQ|INE009A01021"
SBIN = "NSE_EQ|INE062A01020"
CALLBACK = "http://localhost/clients/connect/callback"


@pytest.fixture
def sdk(upstox: UpstoxEnv) -> Iterator[upstox_client.ApiClient]:
    cfg = upstox_client.Configuration()
    cfg.access_token = upstox.creds["access_token"]
    cfg.host = cfg.order_host = upstox.url  # both, or orders leak to the real order host
    client = upstox_client.ApiClient(cfg)
    yield client
    client.rest_client.pool_manager.clear()


def place(sdk, key: str = INFY, **fields):
    body = upstox_client.PlaceOrderV3Request(
        quantity=fields.pop("quantity", 1),
        product=fields.pop("product", "D"),
        validity="DAY",
        price=fields.pop("price", 0),
        tag=fields.pop("tag", None),
        instrument_token=key,
        order_type=fields.pop("order_type", "MARKET"),
        transaction_type=fields.pop("transaction_type", "BUY"),
        disclosed_quantity=0,
        trigger_price=0,
        is_amo=False,
        slice=False,
        **fields,
    )
    return upstox_client.OrderApiV3(sdk).place_order(body)


def test_sdk_login_token_exchange(upstox):
    cfg = upstox_client.Configuration()
    cfg.host = cfg.order_host = upstox.url
    client = upstox_client.ApiClient(cfg)
    url = upstox.broker.login_url(CALLBACK, "s1")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    with requests.Session() as browser:
        back = browser.post(
            upstox.url + "/v2/login/authorization/dialog",
            data={**query, "user_id": upstox.user_id},
            allow_redirects=False,
        )
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]
    token = upstox_client.LoginApi(client).token(
        "2.0",
        code=code,
        client_id=upstox.creds["client_id"],
        client_secret=upstox.creds["client_secret"],
        redirect_uri=CALLBACK,
        grant_type="authorization_code",
    )
    assert token.user_id == upstox.user_id and token.broker == "UPSTOX" and len(token.access_token) > 20
    client.rest_client.pool_manager.clear()


def test_sdk_v3_place_modify_cancel_and_the_books(upstox, sdk):
    placed = place(sdk, tag="sdk1", quantity=2)
    assert placed.status == "success" and len(placed.data.order_ids) == 1
    order_id = placed.data.order_ids[0]
    assert upstox.emulator.ledger.count(upstox.user_id, "sdk1") == 1
    resting = place(sdk, order_type="LIMIT", price=1000.0, tag="sdk2").data.order_ids[0]
    orders = upstox_client.OrderApiV3(sdk)
    modified = orders.modify_order(
        upstox_client.ModifyOrderRequest(
            quantity=3, validity="DAY", price=1001.5, order_id=resting, order_type="LIMIT", trigger_price=0
        )
    )
    assert modified.data.order_id == resting and upstox.emulator.order(resting)["price"] == 1001.5
    assert orders.cancel_order(resting).data.order_id == resting  # the SDK sends a {} body on DELETE
    v2 = upstox_client.OrderApi(sdk)
    book = v2.get_order_book("2.0").data
    assert {o.order_id: o.status for o in book} == {order_id: "complete", resting: "cancelled"}
    history = v2.get_order_details("2.0", tag="sdk1").data  # the SDK's names are swapped: this is /history
    assert {h.order_id for h in history} == {order_id} and history[-1].status == "complete"
    assert [h.status for h in history][:3] == ["put order req received", "validation pending", "open pending"]
    assert v2.get_order_details("2.0", order_id=order_id, tag="sdk2").data == []  # both must match
    details = v2.get_order_status(order_id=order_id).data
    assert details.filled_quantity == 2 and details.transaction_type == "BUY"
    trades = v2.get_trade_history("2.0").data
    assert [(t.order_id, t.quantity) for t in trades] == [(order_id, 2)]
    portfolio = upstox_client.PortfolioApi(sdk)
    [position] = portfolio.get_positions("2.0").data
    assert position.instrument_token == INFY and position.quantity == 2
    assert portfolio.get_holdings("2.0").data == []
    funds = upstox_client.UserApi(sdk).get_user_fund_margin("2.0", segment="SEC").data
    assert funds["equity"].available_margin < 1000000


def test_sdk_v2_place_and_cancel(upstox, sdk):
    body = upstox_client.PlaceOrderRequest(
        quantity=1,
        product="I",
        validity="DAY",
        price=1.0,
        tag="v2tag",
        instrument_token=SBIN,
        order_type="LIMIT",
        transaction_type="BUY",
        disclosed_quantity=0,
        trigger_price=0,
        is_amo=False,
    )
    orders = upstox_client.OrderApi(sdk)
    order_id = orders.place_order(body, "2.0").data.order_id
    assert orders.cancel_order(order_id, "2.0").data.order_id == order_id


def test_sdk_errors_carry_upstox_codes(upstox, sdk):
    with pytest.raises(ApiException) as refused:
        upstox_client.OrderApiV3(sdk).cancel_order("999")
    body = json.loads(refused.value.body)
    assert refused.value.status == 400 and body["errors"][0]["errorCode"] == "UDAPI100010"
    upstox.emulator.faults.script("read", "burst_429")
    with pytest.raises(ApiException) as limited:
        upstox_client.UserApi(sdk).get_user_fund_margin("2.0")
    assert limited.value.status == 429 and b"UDAPI10005" in limited.value.body
    sdk.configuration.access_token = "wrong"
    with pytest.raises(ApiException) as bad:
        upstox_client.PortfolioApi(sdk).get_positions("2.0")
    assert bad.value.status == 401 and b"UDAPI100050" in bad.value.body


def test_sdk_quotes_v2_symbol_and_v3_instrument_key(upstox, sdk):
    v2 = upstox_client.MarketQuoteApi(sdk)
    full = v2.get_full_market_quote(f"{INFY},{SBIN}", "2.0").data
    assert set(full) == {"NSE_EQ:INFY", "NSE_EQ:SBIN"} and full["NSE_EQ:INFY"].instrument_token == INFY
    assert full["NSE_EQ:INFY"].depth.buy[0].price < full["NSE_EQ:INFY"].last_price
    assert v2.ltp(INFY, "2.0").data["NSE_EQ:INFY"].last_price == 1548.2
    v3 = upstox_client.MarketQuoteV3Api(sdk)
    assert v3.get_ltp(instrument_key=SBIN).data["NSE_EQ:SBIN"].last_price == 951.15
    assert v3.get_full_market_quote_v3(instrument_key=INFY).data["NSE_EQ:INFY"].prev_close_price == 1548.2


def test_sdk_v3_candles(upstox, sdk):
    history = upstox_client.HistoryV3Api(sdk)
    to = date(2026, 11, 27)
    candles = history.get_historical_candle_data1(
        INFY, "minutes", 30, to.isoformat(), (to - timedelta(days=2)).isoformat()
    ).data.candles
    assert len(candles) == 3 * 13 and candles[0][0] > candles[-1][0]  # newest first, as Upstox sends
    days = history.get_historical_candle_data(INFY, "days", 1, to.isoformat()).data.candles
    assert days and all(c[0].endswith("+05:30") for c in days)
    with pytest.raises(ApiException) as refused:
        history.get_historical_candle_data(INFY, "minutes", 301, to.isoformat())
    assert b"UDAPI1147" in refused.value.body


def test_sdk_margin_calculator(upstox, sdk):
    request = upstox_client.MarginRequest(
        instruments=[
            upstox_client.Instrument(instrument_key=INFY, quantity=2, product="D", transaction_type="BUY", price=0),
            upstox_client.Instrument(instrument_key=SBIN, quantity=10, product="I", transaction_type="BUY", price=950),
        ]
    )
    data = upstox_client.ChargeApi(sdk).post_margin(request).data
    assert data.final_margin == pytest.approx(3096.4 + 1900) and len(data.margins) == 2
