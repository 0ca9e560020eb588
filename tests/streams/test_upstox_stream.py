"""Upstox's market data feed v3: UpstoxStream against the emulator over loopback sockets (the authorize
call, the one-time socket, binary requests, protobuf frames), under the supervisor, and the decoder
against frames built independently (hand-written bytes, the emulator's hand-rolled encoder, and the
SDK's own generated MarketDataFeedV3_pb2)."""

from __future__ import annotations

import json
import logging
import socket
import struct
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

from tests.emulators import upstox_stream_codec as codec
from tests.emulators.common import EmulatorServer
from tests.emulators.stream_common import StreamQuote
from tests.emulators.upstox import UpstoxEmulator
from tests.emulators.upstox_stream import UpstoxStreamHub
from tests.streams.conftest import TICK_INTERVAL, StreamEnv, eventually, read_for, read_until
from tests.streams.test_supervisor import SkewClock, live_supervisor, run_until
from webapp.brokers import broker_class, broker_settings, http, streaming_brokers
from webapp.brokers.base import Account, AuthExpired, BrokerSession, DepthLevel, InstrumentRef, Unavailable
from webapp.brokers.upstox import feed_pb, keys
from webapp.brokers.upstox.stream import (
    STREAM_SETTINGS,
    UpstoxStream,
    frame_ticks,
    open_stream,
    stream_token,
)
from webapp.marketdata.streams import StreamClosed, StreamState
from webapp.marketdata.streams.wsclient import WebSocket
from webapp.timeutil import UTC, utcnow

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"


@pytest.fixture(scope="module")
def upstox_server():
    with EmulatorServer(UpstoxEmulator()) as server:
        yield server
        server.app.stream.shutdown()


def _upstox_stream(env: StreamEnv, **kwargs: Any) -> UpstoxStream:
    options = {"access_token": env.creds["access_token"], "authorize_url": env.ws_url, "connect_timeout": 2.0}
    options.update(kwargs, http_timeout=2.0)
    return UpstoxStream(options.pop("access_token"), **options)


@pytest.fixture
def upstox(upstox_server):
    hub = upstox_server.app.stream
    hub.tick_interval, hub.heartbeat_interval = TICK_INTERVAL, 1.0
    env = StreamEnv(
        upstox_server.app, upstox_server.app.add_account(), upstox_server.url + AUTHORIZE_PATH, _upstox_stream
    )
    yield env
    for stream in env.opened:
        stream.close()
    hub.shutdown()
    hub.tick_interval, hub.heartbeat_interval = TICK_INTERVAL, 1.0
    hub.authorize_faults.clear()


def key_of(env: StreamEnv, symbol: str) -> str:
    return f"NSE_EQ|{env.emulator.instrument(symbol).isin}"


def requests_of(env: StreamEnv) -> list[dict]:
    (conn,) = env.hub.wait_for(1, env.creds["user_id"])
    assert all(isinstance(m, bytes) for m in conn.received)  # Upstox wants requests as binary frames
    return [json.loads(m) for m in conn.received]


def last_for(ticks, key):
    return [quote for t, quote in ticks if t == key][-1]


# ---------------------------------------------------------------- over the socket


def test_full_mode_ticks_carry_exact_prices_ohlc_volume_and_five_levels(upstox):
    infy = key_of(upstox, "INFY")
    upstox.emulator.set_price("INFY", "1512.45")
    stream = upstox.stream(symbols={infy: ("NSE", "INFY")})
    stream.connect()
    stream.subscribe([infy])
    ticks = read_until(stream, lambda ts: any(t == infy for t, _ in ts))
    quote = last_for(ticks, infy)
    expected = upstox.emulator.stream_quote("NSE", isin=upstox.emulator.instrument("INFY").isin)
    assert (quote.exchange, quote.tradingsymbol) == ("NSE", "INFY")
    assert quote.last_price == Decimal("1512.45") and str(quote.last_price) == "1512.45"
    assert (quote.open, quote.high, quote.low, quote.close) == (
        expected.open,
        expected.high,
        expected.low,
        expected.close,
    )
    assert quote.volume == expected.volume > 0
    assert quote.bids == tuple(DepthLevel(p, q) for p, q, _ in expected.bids) and len(quote.bids) == 5
    assert quote.asks == tuple(DepthLevel(p, q) for p, q, _ in expected.asks) and len(quote.asks) == 5
    assert quote.timestamp.tzinfo is UTC and abs((utcnow() - quote.timestamp).total_seconds()) < 60
    (sub,) = requests_of(upstox)
    assert sub["method"] == "sub" and sub["data"] == {"mode": "full", "instrumentKeys": [infy]} and sub["guid"]

    upstox.emulator.set_price("INFY", "1498.05")
    read_until(stream, lambda ts: any(q.last_price == Decimal("1498.05") for _, q in ts))


def test_market_info_comes_first_and_a_sub_is_answered_by_an_initial_feed(upstox):
    upstox.hub.tick_interval = 30.0  # no live_feed frame during this test: ticks can only be the snapshot
    seen = []
    stream = upstox.stream(on_message=seen.append)
    stream.connect()
    assert read_for(stream, 0.2) == []
    assert seen == [{"type": "market_info", "segmentStatus": stream.market_status}]
    assert stream.market_status["NSE_EQ"] == "NORMAL_OPEN"
    tcs = key_of(upstox, "TCS")
    stream.subscribe([tcs])
    ticks = read_until(stream, bool, within=2.0)
    assert [t for t, _ in ticks] == [tcs] and ticks[0][1].exchange == "NSE"


def test_ltpc_mode_carries_the_price_and_previous_close_only(upstox):
    sbin, tcs = key_of(upstox, "SBIN"), key_of(upstox, "TCS")
    stream = upstox.stream(mode="ltpc")
    stream.connect()
    stream.subscribe([tcs, sbin])
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} == {sbin, tcs})
    quote = last_for(ticks, tcs)
    instrument = upstox.emulator.instrument("TCS")
    assert quote.last_price == instrument.last_price and quote.close == instrument.close
    assert quote.open is None and quote.bids == () and quote.asks == () and quote.volume == 0
    assert requests_of(upstox)[0]["data"] == {"mode": "ltpc", "instrumentKeys": sorted([sbin, tcs])}


def test_unsubscribe_and_change_mode(upstox):
    sbin, tcs = key_of(upstox, "SBIN"), key_of(upstox, "TCS")
    stream = upstox.stream(mode="ltpc")
    stream.connect()
    stream.subscribe([sbin, tcs])
    read_until(stream, lambda ts: {t for t, _ in ts} == {sbin, tcs})
    stream.unsubscribe([tcs])
    stream.change_mode([sbin], "full")
    read_for(stream, 0.2)
    ticks = read_for(stream, 0.4)
    assert {t for t, _ in ticks} == {sbin}
    assert all(len(q.bids) == 5 for _, q in ticks)  # full now
    unsub, change = requests_of(upstox)[1:]
    assert unsub["method"] == "unsub" and unsub["data"] == {"instrumentKeys": [tcs]}
    assert change["method"] == "change_mode" and change["data"] == {"mode": "full", "instrumentKeys": [sbin]}


def test_unknown_and_index_keys_get_no_feed_but_do_not_break_the_others(upstox):
    infy = key_of(upstox, "INFY")
    stream = upstox.stream()
    stream.connect()
    stream.subscribe(["NSE_EQ|INE000000000", "NSE_INDEX|Nifty 50", infy])
    ticks = read_for(stream, 0.3)
    assert ticks and {t for t, _ in ticks} == {infy}


def test_idle_socket_is_pinged_and_the_client_answers(upstox):
    upstox.hub.heartbeat_interval = 0.1
    pings, pongs = upstox.hub.pings, upstox.hub.pongs
    stream = upstox.stream()
    stream.connect()
    assert read_for(stream, 0.6) == []  # pings are control frames, not messages
    assert upstox.hub.pings - pings >= 3
    assert upstox.hub.pongs - pongs >= 2


def test_bad_or_missing_token_is_auth_expired_and_never_logged(upstox, caplog):
    authorized = upstox.hub.authorized
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired, match="UDAPI100050"):
            upstox.stream(access_token="not-a-session").connect()
        requests = len(upstox.emulator.requests)
        with pytest.raises(AuthExpired):
            upstox.stream(access_token="").connect()
        assert len(upstox.emulator.requests) == requests  # no session: nothing is sent
        stream = upstox.stream()
        stream.connect()
        stream.subscribe([key_of(upstox, "INFY")])
        read_until(stream, bool)
    assert upstox.hub.authorized == authorized + 1
    assert upstox.creds["access_token"] not in caplog.text
    assert "code=" not in caplog.text and upstox.creds["access_token"] not in repr(stream)


def test_the_socket_address_is_single_use(upstox):
    answer = http.send(
        "GET",
        upstox.ws_url,
        headers={"Authorization": f"Bearer {upstox.creds['access_token']}", "Accept": "application/json"},
        timeout=2.0,
    )
    data = json.loads(answer.content)["data"]
    uri = data["authorized_redirect_uri"]
    assert answer.status == 200 and data["authorizedRedirectUri"] == uri and "code=" in uri
    refused = upstox.hub.refused
    WebSocket.open(uri, timeout=2.0).close()
    with pytest.raises(AuthExpired):
        WebSocket.open(uri, timeout=2.0)
    assert upstox.hub.refused == refused + 1


def test_expired_session_keeps_the_open_socket_and_is_refused_on_reconnect(upstox):
    stream = upstox.stream()
    stream.connect()
    upstox.emulator.expire_sessions(upstox.creds["user_id"])
    stream.subscribe([key_of(upstox, "INFY")])
    assert read_until(stream, bool)  # the open socket keeps going
    stream.close()
    with pytest.raises(AuthExpired):
        upstox.stream().connect()


def test_unreachable_or_broken_authorize_is_unavailable(upstox):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with pytest.raises(Unavailable):
        upstox.stream(authorize_url=f"http://127.0.0.1:{port}{AUTHORIZE_PATH}").connect()
    with pytest.raises(Unavailable, match="HTTP 404"):
        upstox.stream(authorize_url=upstox.ws_url.replace(AUTHORIZE_PATH, "/v3/feed/nowhere")).connect()
    with pytest.raises(Unavailable, match="no WebSocket address"):  # a 200 that is not the envelope
        upstox.stream(authorize_url=upstox.ws_url.replace(AUTHORIZE_PATH, "/v2/user/profile")).connect()


@pytest.mark.parametrize(("status", "code"), [(429, "UDAPI10005"), (500, "UDAPI100500"), (503, "UDAPI100500")])
def test_a_refused_authorize_that_is_not_the_session_is_unavailable(upstox, status, code):
    upstox.emulator.fail_authorize(status)
    with pytest.raises(Unavailable, match=f"HTTP {status} \\({code}\\)"):
        upstox.stream().connect()
    stream = upstox.stream()
    stream.connect()  # the next call is answered
    stream.subscribe([key_of(upstox, "INFY")])
    assert read_until(stream, bool)


def test_drop_raises_stream_closed_and_close_is_idempotent(upstox):
    stream = upstox.stream()
    stream.connect()
    stream.subscribe([key_of(upstox, "INFY")])
    read_until(stream, bool)
    upstox.emulator.drop_stream()
    with pytest.raises(StreamClosed):
        read_for(stream, 2.0)
    stream.close()
    stream.close()
    with pytest.raises(StreamClosed):
        stream.read(0.1)
    with pytest.raises(StreamClosed):
        stream.subscribe(["NSE_EQ|INE009A01021"])


def test_open_stream_uses_the_configured_url_and_the_session(upstox):
    assert STREAM_SETTINGS == {"UPSTOX_STREAM_URL": ""}  # empty: the authorize path on UPSTOX_API_URL
    account = Account(client_code=upstox.creds["user_id"], session=BrokerSession(upstox.creds["access_token"]))
    stream = open_stream(account, {"UPSTOX_STREAM_URL": upstox.ws_url, "BROKER_TIMEOUT_SECONDS": 2})
    upstox.opened.append(stream)
    stream.connect()
    stream.subscribe([key_of(upstox, "RELIANCE")])
    assert {t for t, _ in read_until(stream, bool)} == {key_of(upstox, "RELIANCE")}
    no_session = open_stream(Account(client_code="X"), {"UPSTOX_STREAM_URL": upstox.ws_url})
    with pytest.raises(AuthExpired):
        no_session.connect()


def test_the_registered_adapter_streams_through_this_module(upstox):
    adapter = broker_class("upstox")
    assert adapter.capabilities.streaming and "upstox" in streaming_brokers()
    assert broker_settings()["UPSTOX_STREAM_URL"] == STREAM_SETTINGS["UPSTOX_STREAM_URL"]
    ref = InstrumentRef("NSE", "INFY", 1594, 408065, upstox.emulator.instrument("INFY").isin)
    assert adapter.stream_token(ref) == key_of(upstox, "INFY")
    account = Account(client_code=upstox.creds["user_id"], session=BrokerSession(upstox.creds["access_token"]))
    stream = adapter.open_stream(account, {"UPSTOX_STREAM_URL": upstox.ws_url})
    upstox.opened.append(stream)
    stream.connect()
    stream.subscribe([adapter.stream_token(ref)])
    assert {t for t, _ in read_until(stream, bool)} == {key_of(upstox, "INFY")}


def test_unknown_mode_is_refused():
    with pytest.raises(Exception, match="mode"):
        UpstoxStream("t", mode="snapshot")
    with pytest.raises(Exception, match="mode"):
        UpstoxStream("t").change_mode(["NSE_EQ|X"], "quote")


def test_the_sdks_streamer_reads_the_emulators_feed(upstox, monkeypatch):
    """upstox-python-sdk's own MarketDataStreamerV3 against the emulator: its authorize call, its
    binary requests, its decoding. Its feeder hard-codes wss://api.upstox.com/… and follows a redirect
    there; the test hands it the emulator's one-time address instead (reference §1.9)."""
    import upstox_client
    from upstox_client.feeder import market_data_feeder_v3 as feeder_module

    token, infy = upstox.creds["access_token"], key_of(upstox, "INFY")
    upstox.emulator.set_price("INFY", "1512.45")
    config = upstox_client.Configuration()
    config.access_token = token
    config.host = config.order_host = upstox.ws_url.removesuffix(AUTHORIZE_PATH)
    api = upstox_client.ApiClient(config)
    uri = upstox_client.WebsocketApi(api).get_market_data_feed_authorize_v3().data.authorized_redirect_uri
    real_app, asked = feeder_module.websocket.WebSocketApp, []

    def at_the_emulator(url, **kwargs):
        asked.append((url, kwargs["header"]["Authorization"]))
        return real_app(uri, **kwargs)

    monkeypatch.setattr(feeder_module.websocket, "WebSocketApp", at_the_emulator)
    streamer = upstox_client.MarketDataStreamerV3(api, [infy], "full")
    streamer.auto_reconnect(False)
    messages: list[dict] = []
    streamer.on("message", messages.append)
    streamer.connect()
    try:
        eventually(lambda: any(infy in m.get("feeds", {}) for m in messages), within=3.0)
        (conn,) = upstox.hub.wait_for(1, upstox.creds["user_id"])
    finally:
        streamer.disconnect()
    assert asked == [("wss://api.upstox.com/v3/feed/market-data-feed", f"Bearer {token}")]
    assert (
        messages[0]["type"] == "market_info" and messages[0]["marketInfo"]["segmentStatus"]["NSE_EQ"] == "NORMAL_OPEN"
    )
    feed = next(m for m in messages if infy in m.get("feeds", {}))["feeds"][infy]
    assert feed["requestMode"] == "full_d5"
    market = feed["fullFeed"]["marketFF"]
    assert market["ltpc"]["ltp"] == 1512.45 and len(market["marketLevel"]["bidAskQuote"]) == 5
    (sub,) = [json.loads(m) for m in conn.received]  # one binary request
    assert (sub["method"], sub["data"]) == ("sub", {"instrumentKeys": [infy], "mode": "full"})
    eventually(lambda: not upstox.hub.connections())


# ---------------------------------------------------------------- under the supervisor

# The supervisor keeps string tokens as they are (Upstox's instrument keys, "NSE|2885").


def test_drop_reconnects_with_backoff_and_resubscribes(upstox):
    infy = key_of(upstox, "INFY")
    clock = SkewClock()
    sup = live_supervisor(upstox, clock)
    sup.subscribe({infy})
    run_until(sup, bool)
    upstox.emulator.drop_stream()
    upstox.emulator.set_price("INFY", "1501.10")
    ticks = run_until(sup, lambda ts: any(q.last_price == Decimal("1501.10") for _, q in ts))
    assert {t for t, _ in ticks} == {infy}
    stats = sup.stats()
    assert (stats.connects, stats.reconnects, stats.drops, stats.state) == (2, 1, 1, StreamState.CONNECTED)
    assert upstox.hub.accepted >= 2 and len(upstox.opened) == 2
    (conn,) = upstox.hub.wait_for(1, upstox.creds["user_id"])
    assert [json.loads(m)["data"]["instrumentKeys"] for m in conn.received] == [[infy]]  # resubscribed
    assert len(clock.sleeps) >= 1 and all(0 <= s <= 1.0 for s in clock.sleeps)
    sup.close()


def test_silent_socket_trips_the_watchdog_and_reconnects(upstox):
    clock = SkewClock()
    sup = live_supervisor(upstox, clock)
    sup.subscribe({key_of(upstox, "TCS")})
    run_until(sup, bool)
    accepted = upstox.hub.accepted
    upstox.emulator.silence_stream(10.0)
    run_until(sup, lambda _: sup.stats().watchdog_trips == 1)
    run_until(sup, bool)  # ticks again, from a new socket
    stats = sup.stats()
    assert (stats.watchdog_trips, stats.reconnects, stats.drops) == (1, 1, 0)
    assert upstox.hub.accepted == accepted + 1
    sup.close()


def test_session_expired_during_a_drop_surfaces_auth_expired(upstox):
    clock = SkewClock()
    sup = live_supervisor(upstox, clock)
    sup.subscribe({key_of(upstox, "SBIN")})
    run_until(sup, bool)
    authorize_calls = sum(1 for _, path in upstox.emulator.requests if path == AUTHORIZE_PATH)
    upstox.emulator.expire_sessions(upstox.creds["user_id"])
    upstox.emulator.drop_stream()
    with pytest.raises(AuthExpired):
        run_until(sup, lambda _: False)
    assert sup.state is StreamState.AUTH_FAILED
    for _ in range(3):
        with pytest.raises(AuthExpired):
            sup.run_once(0.1)
    # one refused authorize call, no retry loop
    assert sum(1 for _, path in upstox.emulator.requests if path == AUTHORIZE_PATH) == authorize_calls + 1
    sup.close()


# ---------------------------------------------------------------- instrument keys


def test_stream_token_is_upstoxs_instrument_key():
    assert stream_token(InstrumentRef("NSE", "RELIANCE", 2885, 738561, "INE002A01018")) == "NSE_EQ|INE002A01018"
    assert stream_token(InstrumentRef("BSE", "RELIANCE", 500325, None, "ine002a01018 ")) == "BSE_EQ|INE002A01018"
    assert stream_token(InstrumentRef("NSE", "NIFTY 50", 1001, 256265, None)) == "NSE_INDEX|Nifty 50"
    assert stream_token(InstrumentRef("NSE", "NIFTY BANK", 1016, 260105, "")) == "NSE_INDEX|Nifty Bank"
    assert stream_token(InstrumentRef("NSE", "SOMETHING", 1, 2, None)) == "NSE|1"  # resolved at subscribe
    assert stream_token(InstrumentRef("BSE", "SOMETHING", 500325, None, " ")) == "BSE|500325"
    assert stream_token(InstrumentRef("NFO", "NIFTY24DECFUT", 35001, 3, "INE000000000")) is None


# ---------------------------------------------------------------- the decoder on independent frames

RELIANCE = "NSE_EQ|INE002A01018"
# FeedResponse{type: live_feed, feeds: {RELIANCE: Feed{ltpc: LTPC{ltp: 1510.4, ltq: 5, cp: 1498.85}}},
# currentTs: 1733392800123}, byte by byte (protobuf wire format: varint keys, little-endian doubles)
HAND_BUILT = (
    b"\x08\x01"  # field 1 (type), varint: 1 = live_feed
    + b"\x12\x2d"  # field 2 (feeds), length 45: one map entry
    + b"\x0a\x13"
    + RELIANCE.encode()  # entry field 1 (key), length 19
    + b"\x12\x16"  # entry field 2 (value: Feed), length 22
    + b"\x0a\x14"  # Feed field 1 (ltpc), length 20
    + b"\x09"
    + struct.pack("<d", 1510.4)  # LTPC field 1 (ltp), fixed64 double, little-endian
    + b"\x18\x05"  # LTPC field 3 (ltq), varint 5
    + b"\x21"
    + struct.pack("<d", 1498.85)  # LTPC field 4 (cp)
    + b"\x18\xfb\xb2\x8c\xb2\xb9\x32"  # field 3 (currentTs), varint 1733392800123: 7 bits a byte, low first
)


def test_hand_built_ltpc_frame():
    assert len(HAND_BUILT) == 2 + 2 + 45 + 7
    response = feed_pb.parse(HAND_BUILT)
    ((key, quote),) = frame_ticks(response, utcnow())
    assert key == RELIANCE and (quote.exchange, quote.tradingsymbol) == ("NSE", "")
    assert str(quote.last_price) == "1510.40" and quote.close == Decimal("1498.85")
    assert quote.timestamp == datetime(2024, 12, 5, 10, 0, 0, 123000, tzinfo=UTC)
    theirs = sdk.FeedResponse.FromString(HAND_BUILT)  # the SDK reads it the same
    assert (theirs.feeds[RELIANCE].ltpc.ltp, theirs.feeds[RELIANCE].ltpc.ltq, theirs.currentTs) == (
        1510.4,
        5,
        1733392800123,
    )


def test_prices_are_little_endian_doubles():
    swapped = HAND_BUILT.replace(struct.pack("<d", 1510.4), struct.pack(">d", 1510.4))
    assert swapped != HAND_BUILT
    assert all(q.last_price != Decimal("1510.40") for _, q in frame_ticks(feed_pb.parse(swapped), utcnow()))


def test_doubles_become_decimals_through_their_repr_rounded_to_the_paisa():
    assert feed_pb.price(0.1 + 0.2) == Decimal("0.30")  # 0.30000000000000004
    assert str(feed_pb.price(2105.65)) == "2105.65" and str(feed_pb.price(1510.4)) == "1510.40"
    assert feed_pb.price(1512.4500000000003) == Decimal("1512.45")
    assert feed_pb.price(0.0) is None and feed_pb.price(float("nan")) is None and feed_pb.price(float("inf")) is None
    response = sdk.FeedResponse(type=1)
    response.feeds["NCD_FO|1234"].ltpc.ltp = 83.2475  # currency derivatives quote to four places
    ((_, quote),) = frame_ticks(feed_pb.parse(response.SerializeToString()), utcnow())
    assert str(quote.last_price) == "83.2475" and quote.exchange == "CDS"


def sample_quote() -> StreamQuote:
    bids = tuple((Decimal("1512.40") - Decimal("0.05") * n, 100 * (n + 1), n + 1) for n in range(5))
    asks = tuple((Decimal("1512.50") + Decimal("0.05") * n, 90 * (n + 1), n + 1) for n in range(5))
    return StreamQuote(
        last_price=Decimal("1512.45"),
        open=Decimal("1500.00"),
        high=Decimal("1520.35"),
        low=Decimal("1497.10"),
        close=Decimal("1498.85"),
        volume=1_234_567,
        last_quantity=7,
        bids=bids,
        asks=asks,
    )


def test_the_sdk_parses_the_emulators_frames_as_the_desk_does():
    stamp = 1733392800123
    quote = sample_quote()
    frame = codec.feed_response(
        "live_feed",
        {
            RELIANCE: UpstoxStreamHub.feed("full", quote, stamp),
            "NSE_EQ|INE467B01029": UpstoxStreamHub.feed("ltpc", quote, stamp),
        },
        stamp,
    )
    theirs, ours = sdk.FeedResponse.FromString(frame), feed_pb.parse(frame)
    assert json_format.MessageToDict(theirs) == json_format.MessageToDict(ours)
    market = theirs.feeds[RELIANCE].fullFeed.marketFF
    assert market.ltpc.ltp == 1512.45 and market.vtt == 1_234_567 and len(market.marketLevel.bidAskQuote) == 5
    assert (market.marketLevel.bidAskQuote[4].bidP, market.marketLevel.bidAskQuote[4].askQ) == (1512.2, 450)
    assert [bar.interval for bar in market.marketOHLC.ohlc] == ["I1", "1d"]
    assert theirs.feeds[RELIANCE].requestMode == sdk.full_d5 and theirs.type == sdk.live_feed
    assert theirs.SerializeToString(deterministic=True) == frame  # byte for byte what the runtime writes
    ticks = dict(frame_ticks(ours, utcnow()))
    full = ticks[RELIANCE]
    assert (full.last_price, full.open, full.high, full.low, full.close) == (
        quote.last_price,
        quote.open,
        quote.high,
        quote.low,
        quote.close,
    )
    assert full.bids == tuple(DepthLevel(p, q) for p, q, _ in quote.bids)
    assert full.asks == tuple(DepthLevel(p, q) for p, q, _ in quote.asks)
    assert full.volume == quote.volume
    assert ticks["NSE_EQ|INE467B01029"].bids == () and ticks["NSE_EQ|INE467B01029"].last_price == quote.last_price

    info = codec.market_info({"NSE_EQ": "NORMAL_OPEN", "NSE_FO": "PRE_OPEN_END"}, stamp)
    parsed = sdk.FeedResponse.FromString(info)
    assert parsed.type == sdk.market_info and dict(parsed.marketInfo.segmentStatus) == {
        "NSE_EQ": sdk.NORMAL_OPEN,
        "NSE_FO": sdk.PRE_OPEN_END,
    }
    assert frame_ticks(feed_pb.parse(info), utcnow()) == []


def test_frames_encoded_by_the_sdk_decode_with_ours():
    response = sdk.FeedResponse(type=sdk.live_feed, currentTs=1733392800123)
    market = response.feeds[RELIANCE].fullFeed.marketFF
    market.ltpc.ltp, market.ltpc.cp, market.ltpc.ltt, market.ltpc.ltq = 1510.4, 1498.85, 1733392799000, 3
    for n, (bid, ask) in enumerate([(1510.35, 1510.45), (1510.3, 0.0)]):
        market.marketLevel.bidAskQuote.add(bidQ=10 * (n + 1), bidP=bid, askQ=7 if ask else 0, askP=ask)
    market.marketOHLC.ohlc.add(interval="I30", open=1.0, high=2.0, low=0.5, close=1.5)
    market.marketOHLC.ohlc.add(interval="1d", open=1490.0, high=1515.55, low=1488.2, close=1510.4, vol=42)
    market.vtt = 987654
    index = response.feeds["NSE_INDEX|Nifty 50"].fullFeed.indexFF
    index.ltpc.ltp, index.ltpc.cp = 26186.45, 26100.2
    index.marketOHLC.ohlc.add(interval="1d", open=26120.0, high=26200.05, low=26090.1, close=26186.45)
    response.feeds["BSE_EQ|INE009A01021"].ltpc.ltp = 1548.2
    response.feeds["NSE_EQ|INE000000000"].ltpc.cp = 10.0  # no last price yet (pre-open): no tick
    symbols = {RELIANCE: ("NSE", "RELIANCE")}
    ticks = dict(frame_ticks(feed_pb.parse(response.SerializeToString()), utcnow(), symbols))
    assert set(ticks) == {RELIANCE, "NSE_INDEX|Nifty 50", "BSE_EQ|INE009A01021"}
    reliance = ticks[RELIANCE]
    assert (reliance.exchange, reliance.tradingsymbol, reliance.last_price) == ("NSE", "RELIANCE", Decimal("1510.40"))
    assert (reliance.open, reliance.high, reliance.low) == (Decimal("1490.00"), Decimal("1515.55"), Decimal("1488.20"))
    assert reliance.close == Decimal("1498.85") and reliance.volume == 987654
    assert reliance.bids == (DepthLevel(Decimal("1510.35"), 10), DepthLevel(Decimal("1510.30"), 20))
    assert reliance.asks == (DepthLevel(Decimal("1510.45"), 7),)  # an empty ask level is no level
    assert reliance.timestamp == datetime(2024, 12, 5, 10, 0, 0, 123000, tzinfo=UTC)
    nifty = ticks["NSE_INDEX|Nifty 50"]
    assert (nifty.exchange, nifty.last_price, nifty.close, nifty.high) == (
        "NSE",
        Decimal("26186.45"),
        Decimal("26100.20"),
        Decimal("26200.05"),
    )
    assert nifty.bids == () and nifty.volume == 0
    assert ticks["BSE_EQ|INE009A01021"].exchange == "BSE"


def test_text_garbage_and_market_info_frames_yield_no_ticks():
    stream = UpstoxStream("token")
    assert stream._handle("not protobuf") == []
    assert stream._handle(b"\xff\xff\xff") == []
    assert stream._handle(codec.market_info({"NSE_EQ": "NORMAL_CLOSE"})) == []
    assert stream.market_status == {"NSE_EQ": "NORMAL_CLOSE"}
    ((key, _),) = stream._handle(HAND_BUILT)
    assert key == RELIANCE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_the_decoder_never_raises_on_garbage(data):
    for key, quote in UpstoxStream("token")._handle(data):
        assert isinstance(key, str) and quote.last_price > 0


# ---------------------------------------------------------------- instruments without an ISIN


def test_an_instrument_without_an_isin_streams_under_its_exchange_token(upstox):
    """Kite's master has no ISIN: the token is "NSE|<exchange token>", the stream asks Upstox's
    instrument file for the key at subscribe and yields the ticks under the token it was given."""
    keys.forget()
    wipro = upstox.emulator.instrument("WIPRO")
    token = stream_token(InstrumentRef("NSE", "WIPRO", wipro.exchange_token, 969473, None))
    assert token == "NSE|3787"
    upstox.emulator.set_price("WIPRO", "251.35")
    infy = key_of(upstox, "INFY")
    stream = upstox.stream()
    stream.connect()
    stream.subscribe([token, infy, "NSE|999999"])  # the last one Upstox does not list: left out
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} >= {token, infy})
    assert {t for t, _ in ticks} == {token, infy}
    assert last_for(ticks, token).last_price == Decimal("251.35") and last_for(ticks, token).exchange == "NSE"
    (sub,) = requests_of(upstox)
    assert sub["data"] == {"mode": "full", "instrumentKeys": sorted([wipro.key, infy])}
    stream.unsubscribe([token])
    eventually(lambda: len(requests_of(upstox)) == 2)
    assert requests_of(upstox)[1]["method"] == "unsub"
    assert requests_of(upstox)[1]["data"] == {"instrumentKeys": [wipro.key]}
    keys.forget()


def test_the_instrument_file_failing_at_subscribe_is_unavailable(upstox):
    keys.forget()
    upstox.emulator.script_response("instruments", 503, b"")
    stream = upstox.stream()
    stream.connect()
    with pytest.raises(Unavailable, match="instrument file"):
        stream.subscribe(["NSE|3787"])
    stream.subscribe(["NSE|3787"])  # nothing was cached: the next subscribe fetches it
    assert {t for t, _ in read_until(stream, bool)} == {"NSE|3787"}
    keys.forget()


def test_only_the_api_url_set_reaches_the_emulator_for_the_feed_and_the_file(upstox):
    keys.forget()
    api_url = upstox.ws_url.removesuffix(AUTHORIZE_PATH)
    adapter = broker_class("upstox")
    account = Account(client_code=upstox.creds["user_id"], session=BrokerSession(upstox.creds["access_token"]))
    stream = adapter.open_stream(account, {"UPSTOX_API_URL": api_url, "UPSTOX_STREAM_URL": ""})
    upstox.opened.append(stream)
    assert stream.authorize_url == upstox.ws_url
    token = adapter.stream_token(InstrumentRef("NSE", "TITAN", 3506, 897537, None))
    stream.connect()
    stream.subscribe([token])
    assert {t for t, _ in read_until(stream, bool)} == {"NSE|3506"}
    real = open_stream(account, {})
    assert real.authorize_url == "https://api.upstox.com/v3/feed/market-data-feed/authorize"
    keys.forget()


def test_the_feed_streams_an_instrument_from_kites_master_into_the_quote_store(app, factory, upstox_server):
    """The feed's StreamSource on a connected Upstox client: an instrument without an ISIN is
    subscribed as NSE|<exchange token>, and its ticks land in the quote store. Only UPSTOX_API_URL
    is set."""
    import time

    from tests.brokers.upstox_fixtures import desk_account
    from webapp.extensions import db, get_redis
    from webapp.marketdata.store import read_quote
    from webapp.marketfeed.feed import Feed, note_interest
    from webapp.marketfeed.sources import StreamSource
    from webapp.models import Client
    from webapp.trading.sessions import store_session
    from webapp.vault import current_vault

    keys.forget()
    emulator = upstox_server.app
    emulator.stream.tick_interval = TICK_INTERVAL
    instrument = factory.instrument("WIPRO", 3787, price="245.37", tick="0.01")
    code, credentials, session = desk_account(emulator.add_account())
    client = factory.client("Upstox streamer", broker="upstox", code=code, credentials=credentials)
    with app.app_context():
        store_session(db.session.get(Client, client.id), session, current_vault())
        db.session.commit()
    app.config.update(UPSTOX_API_URL=upstox_server.url, UPSTOX_STREAM_URL="", FEED_SOURCE="upstox")
    source = StreamSource(app, "upstox")
    assert source.to_stream[instrument.instrument_token] == "NSE|3787"
    feed = Feed(app, source, on_quotes=source.after)
    with app.app_context():
        note_interest(get_redis(), instrument.instrument_token)
    emulator.set_price("WIPRO", "249.95")
    try:
        quote = None
        deadline = time.monotonic() + 10
        while quote is None or quote.last_price != Decimal("249.95"):
            assert time.monotonic() < deadline, f"no tick at the emulator's price; last {quote}"
            feed.step()
            with app.app_context():
                quote = read_quote(get_redis(), instrument)
        assert [c.account for c in emulator.stream.connections()] == [code]
    finally:
        source.supervisor.close()
        emulator.stream.shutdown()
        keys.forget()
