"""ShareKhan's JSON stream: ShareKhanStream against the emulator over loopback sockets, and the feed
parser on hand-written messages."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal

import pytest

from tests.streams.conftest import eventually, read_for, read_until
from webapp.brokers.base import AuthExpired, DepthLevel
from webapp.brokers.sharekhan.stream import ShareKhanStream, feed_quote
from webapp.marketdata.streams import StreamClosed
from webapp.timeutil import UTC, utcnow

INFY, SBIN, TCS = 1594, 3045, 11536


def scrip(env, code: int):
    return env.emulator.scrips[("NC", code)]


def client_messages(env) -> list[dict]:
    (conn,) = env.hub.wait_for(1, env.creds["customer_id"])
    return [json.loads(m) for m in conn.received if m != "ping"]


def test_connect_opens_modules_and_acks_then_feed_has_exact_prices(sharekhan):
    sharekhan.emulator.set_ltp("INFY", "1512.45")
    stream = sharekhan.stream(symbols={INFY: ("NSE", "INFY")})
    stream.connect()
    stream.subscribe({INFY})
    ticks = read_until(stream, lambda ts: any(t == INFY for t, _ in ts))
    quote = ticks[-1][1]
    infy = scrip(sharekhan, INFY)
    assert (quote.exchange, quote.tradingsymbol) == ("NSE", "INFY")
    assert quote.last_price == Decimal("1512.45") and str(quote.last_price) == "1512.45"
    assert (quote.close, quote.open) == (infy.close, infy.close)
    assert (quote.lower_circuit, quote.upper_circuit) == (infy.lower, infy.upper)
    assert quote.bids == (DepthLevel(Decimal("1512.35"), 100),)
    assert quote.asks == (DepthLevel(Decimal("1512.55"), 120),)
    assert quote.volume == 250000 and quote.timestamp.tzinfo is UTC
    assert client_messages(sharekhan)[:3] == [
        {"action": "subscribe", "key": ["feed", "ack"], "value": [""]},
        {"action": "ack", "key": [""], "value": [sharekhan.creds["customer_id"]]},
        {"action": "feed", "key": ["full"], "value": [f"NC{INFY}"]},
    ]

    sharekhan.emulator.set_ltp("INFY", "1498.05")
    read_until(stream, lambda ts: any(q.last_price == Decimal("1498.05") for _, q in ts))


def test_ltp_mode_and_unsubscribe(sharekhan):
    stream = sharekhan.stream(mode="ltp")
    stream.connect()
    stream.subscribe([SBIN, TCS])
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} == {SBIN, TCS})
    assert all(q.open is None and q.bids == () for _, q in ticks)
    assert dict(ticks)[TCS].last_price == scrip(sharekhan, TCS).ltp
    stream.unsubscribe([TCS])
    read_for(stream, 0.2)
    assert {t for t, _ in read_for(stream, 0.4)} == {SBIN}
    assert client_messages(sharekhan)[-1] == {"action": "unsubscribe", "key": ["feed"], "value": [f"NC{TCS}"]}


def test_ping_is_sent_and_pong_counted(sharekhan):
    stream = sharekhan.stream(ping_seconds=0.1)
    stream.connect()
    assert read_for(stream, 0.5) == []
    (conn,) = sharekhan.hub.wait_for(1, sharekhan.creds["customer_id"])
    assert conn.received.count("ping") >= 2
    assert stream.pongs >= 2


def test_acks_go_to_on_message_not_ticks(sharekhan):
    messages = []
    stream = sharekhan.stream(on_message=messages.append)
    stream.connect()
    (conn,) = sharekhan.hub.wait_for(1, sharekhan.creds["customer_id"])
    eventually(lambda: f"ack:{sharekhan.creds['customer_id']}" in conn.modules)  # our ack request was read
    ack = {
        "SharekhanOrderID": "254700001",
        "AckState": "NewOrderConfirmation",
        "OrderPrice": "1512.40",
        "ExchangeCode": "NC",
    }
    sharekhan.emulator.push_ack(sharekhan.creds["customer_id"], ack)
    assert read_for(stream, 0.4) == []
    acks = [m for m in messages if m.get("message") == "ack"]
    assert acks and acks[0]["data"] == ack
    assert {m["message"] for m in messages} >= {"connect", "subscribe", "ack"}


def test_bad_token_or_key_is_auth_expired_and_never_logged(sharekhan, caplog):
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired):
            sharekhan.stream(access_token="not-a-session").connect()
        with pytest.raises(AuthExpired):
            sharekhan.stream(api_key="another-app").connect()
        sharekhan.stream().connect()
    assert sharekhan.creds["access_token"] not in caplog.text


def test_drop_raises_stream_closed(sharekhan):
    stream = sharekhan.stream()
    stream.connect()
    stream.subscribe([INFY])
    read_until(stream, bool)
    sharekhan.emulator.drop_stream()
    with pytest.raises(StreamClosed):
        read_for(stream, 2.0)


# ---------------------------------------------------------------- the parser on hand-written messages


def test_feed_numbers_are_exact_decimals():
    message = (
        '{"status":100,"message":"feed","data":{"exchangeCode":"NC","scripCode":2885,"ltp":2105.650,'
        '"ltq":10,"ltt":"03/02/2021 11:29:59","open":2090.1,"high":"2110.00","low":2088.35,"close":2095,'
        '"bidPrice":2105.6,"bidQty":25,"offPrice":2105.7,"offQty":0,"qty":1234567,'
        '"upperCkt":2304.5,"lowerCkt":1885.5}}'
    )
    stream = ShareKhanStream("key", "token")
    ((token, quote),) = stream._handle(message)
    assert token == 2885
    assert str(quote.last_price) == "2105.650" and str(quote.open) == "2090.1"  # the literal, not a float
    assert quote.high == Decimal("2110.00") and quote.close == Decimal("2095")
    assert quote.bids == (DepthLevel(Decimal("2105.6"), 25),) and quote.asks == ()  # no quantity, no level
    assert quote.volume == 1234567 and quote.upper_circuit == Decimal("2304.5")
    assert quote.timestamp == datetime(2021, 2, 3, 5, 59, 59, tzinfo=UTC)  # 11:29:59 IST, day first


def test_acks_with_message_feed_are_routed_by_shape():
    seen = []
    stream = ShareKhanStream("key", "token", on_message=seen.append)
    ack = {
        "status": 100,
        "message": "feed",
        "data": {"SharekhanOrderID": "1", "AckState": "TradeConfirmation", "scripCode": 2885, "ltp": 1},
    }
    assert stream._handle(json.dumps(ack)) == []
    assert seen == [ack]
    assert stream._handle("pong") == [] and stream._handle("heartbeat") == [] and stream.pongs == 2


def test_malformed_feed_is_skipped():
    received = utcnow()
    assert feed_quote({"scripCode": "x", "ltp": 1}, received) is None
    assert feed_quote({"scripCode": 22, "ltp": "NaN"}, received) is None
    assert feed_quote({"scripCode": 22}, received) is None
    token, quote = feed_quote({"scripCode": "22", "ltp": "10.5", "ltt": "not a time"}, received)
    assert token == 22 and quote.timestamp == received and quote.exchange == ""
    assert ShareKhanStream("key", "token")._handle("{not json") == []


def test_unknown_mode_is_refused():
    with pytest.raises(Exception, match="mode"):
        ShareKhanStream("k", "t", mode="snapshot")
