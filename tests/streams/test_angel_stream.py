"""Angel One's SmartWebSocket v2 stream: AngelStream against the emulated stream over loopback
sockets (alone and under the StreamSupervisor), the packet parser on hand-built bytes, and the SDK's
own decoder (smartapi-python's SmartWebSocketV2) reading the same bytes as a second opinion."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emulators import angel_stream_codec as codec
from tests.emulators.angel import AngelEmulator
from tests.emulators.common import EmulatorServer
from tests.emulators.stream_common import StreamQuote
from tests.streams.conftest import StreamEnv, _env, eventually, read_for, read_until
from webapp.brokers import broker_class, broker_options
from webapp.brokers.angel.packets import parse_packet, to_quote
from webapp.brokers.angel.stream import STREAM_SETTINGS, AngelStream, open_stream, stream_token
from webapp.brokers.base import Account, AuthExpired, BrokerSession, DepthLevel, InstrumentRef, Unavailable
from webapp.marketdata.streams import StreamClosed, StreamState, StreamSupervisor
from webapp.timeutil import UTC, utcnow

INFY, SBIN, TCS, RELIANCE_BSE = "NSE|1594", "NSE|3045", "NSE|11536", "BSE|500325"


def make_stream(env: StreamEnv, **kwargs: Any) -> AngelStream:
    options = {
        "client_code": env.creds["client_code"],
        "api_key": env.creds["api_key"],
        "jwt": env.creds["jwt_token"],
        "feed_token": env.creds["feed_token"],
        "ws_url": env.ws_url,
        "connect_timeout": 2.0,
        **kwargs,
    }
    positional = [options.pop(k) for k in ("client_code", "api_key", "jwt", "feed_token")]
    return AngelStream(*positional, **options)


@pytest.fixture(scope="module")
def angel_server():
    emulator = AngelEmulator()
    emulator.book.add_instrument("BSE", "RELIANCE", 500325, Decimal("1510.40"), tick=Decimal("0.05"))
    with EmulatorServer(emulator) as server:
        yield server
        server.app.stream.shutdown()


@pytest.fixture
def angel(angel_server):
    yield from _env(angel_server, angel_server.app.add_account(), "/smart-stream", make_stream)


def expected(env: StreamEnv, token: str) -> StreamQuote:
    exchange, _, scrip = token.partition("|")
    with env.emulator.lock:
        return env.emulator.stream_quote(exchange, token=int(scrip))


def client_requests(env: StreamEnv) -> list[dict]:
    (conn,) = env.hub.wait_for(1, env.creds["client_code"])
    return [json.loads(m) for m in conn.received if m != "ping"]


def last_for(ticks, token):
    return [quote for t, quote in ticks if t == token][-1]


# ---------------------------------------------------------------- over the socket


def test_snapquote_ticks_carry_exact_prices_and_five_levels_of_depth(angel):
    angel.emulator.set_price("INFY", "1512.45")
    stream = angel.stream(symbols={INFY: ("NSE", "INFY")})
    stream.connect()
    stream.subscribe({INFY})
    quote = last_for(read_until(stream, lambda ts: any(t == INFY for t, _ in ts)), INFY)
    want = expected(angel, INFY)
    assert (quote.exchange, quote.tradingsymbol) == ("NSE", "INFY")
    assert quote.last_price == Decimal("1512.45") and str(quote.last_price) == "1512.45"
    assert (quote.open, quote.high, quote.low, quote.close) == (want.open, want.high, want.low, want.close)
    assert quote.volume == want.volume
    assert quote.bids == tuple(DepthLevel(p, q, o) for p, q, o in want.bids)
    assert quote.asks == tuple(DepthLevel(p, q, o) for p, q, o in want.asks)
    assert len(quote.bids) == len(quote.asks) == 5 and quote.bids[0].price < quote.last_price < quote.asks[0].price
    assert quote.timestamp.tzinfo is UTC and abs((utcnow() - quote.timestamp).total_seconds()) < 60
    assert quote.upper_circuit is None and quote.lower_circuit is None  # the emulator sends 0: none

    handshake = angel.hub.handshakes[-1]
    assert handshake["Authorization"] == f"Bearer {angel.creds['jwt_token']}"
    assert (handshake["X-Api-Key"], handshake["X-Client-Code"], handshake["X-Feed-Token"]) == (
        angel.creds["api_key"],
        angel.creds["client_code"],
        angel.creds["feed_token"],
    )
    assert client_requests(angel) == [
        {
            "correlationID": "fanout0001",
            "action": 1,
            "params": {"mode": 3, "tokenList": [{"exchangeType": 1, "tokens": ["1594"]}]},
        }
    ]
    angel.emulator.set_price("INFY", "1498.05")
    read_until(stream, lambda ts: any(q.last_price == Decimal("1498.05") for _, q in ts))


def test_tokens_are_grouped_by_exchange_type_and_ticks_keyed_back(angel):
    stream = angel.stream(mode="quote")
    stream.connect()
    stream.subscribe([SBIN, RELIANCE_BSE, INFY])
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} == {SBIN, RELIANCE_BSE, INFY})
    assert last_for(ticks, RELIANCE_BSE).exchange == "BSE" and last_for(ticks, SBIN).exchange == "NSE"
    quote = last_for(ticks, SBIN)
    assert quote.open == expected(angel, SBIN).open and quote.bids == () and quote.asks == ()
    assert client_requests(angel)[0]["params"] == {
        "mode": 2,
        "tokenList": [{"exchangeType": 1, "tokens": ["1594", "3045"]}, {"exchangeType": 3, "tokens": ["500325"]}],
    }


def test_ltp_mode_and_unsubscribe(angel):
    stream = angel.stream(mode="ltp")
    stream.connect()
    stream.subscribe([SBIN, TCS])
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} == {SBIN, TCS})
    assert all(q.open is None and q.bids == () and q.volume == 0 for _, q in ticks)
    assert last_for(ticks, TCS).last_price == expected(angel, TCS).last_price
    stream.unsubscribe([TCS])
    read_for(stream, 0.2)
    assert {t for t, _ in read_for(stream, 0.3)} == {SBIN}
    assert client_requests(angel)[-1] == {
        "correlationID": "fanout0002",
        "action": 0,
        "params": {"mode": 1, "tokenList": [{"exchangeType": 1, "tokens": ["11536"]}]},
    }


def test_tokens_the_stream_cannot_carry_are_not_sent(angel, caplog):
    stream = angel.stream()
    stream.connect()
    with caplog.at_level(logging.WARNING):
        stream.subscribe(["NFO|35001", 1594, "NSE|abc"])
    assert "bad_token" in caplog.text
    assert read_for(stream, 0.2) == []
    assert client_requests(angel) == []


def test_ping_is_sent_and_pong_counted(angel):
    stream = angel.stream(ping_seconds=0.1)
    stream.connect()
    assert read_for(stream, 0.5) == []
    (conn,) = angel.hub.wait_for(1, angel.creds["client_code"])
    assert conn.received.count("ping") >= 2
    assert stream.pongs >= 2


def test_error_frames_are_logged_and_passed_on(angel, caplog):
    messages: list[dict] = []
    stream = angel.stream(on_message=messages.append)
    stream.connect()
    with caplog.at_level(logging.WARNING):
        stream._open_ws().send_text('{"action":1,"params":{"mode":9}}')  # not a valid request
        stream.subscribe([f"NSE|{n}" for n in range(1, 1002)])  # over the 1000-token limit
        eventually(lambda: len(angel.hub.errors) >= 2)
        read_for(stream, 0.2)
    assert [m["errorCode"] for m in messages] == ["E1001", "E1002"]
    (conn,) = angel.hub.wait_for(1, angel.creds["client_code"])
    assert conn.subscriptions == {}  # nothing of the refused request was taken
    assert messages[1]["correlationID"] == "fanout0001"
    assert "E1002" in caplog.text and "over_limit" in caplog.text


def test_refused_session_is_auth_expired_and_never_logged(angel, caplog):
    refused_before = angel.hub.refused
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired):
            angel.stream(feed_token="not-a-feed-token").connect()
        with pytest.raises(AuthExpired):
            angel.stream(client_code="Z999999").connect()
        with pytest.raises(AuthExpired):
            angel.stream(api_key="").connect()  # refused by the broker: a header is missing
        for jwt, feed in (("", angel.creds["feed_token"]), (angel.creds["jwt_token"], "bad\r\nheader")):
            with pytest.raises(AuthExpired):  # never sent: no session to present
                angel.stream(jwt=jwt, feed_token=feed).connect()
        angel.stream(jwt=f"Bearer {angel.creds['jwt_token']}").connect()  # the SDK's login gives it prefixed
    angel.hub.wait_for(1, angel.creds["client_code"])  # the server lists it a moment after the 101
    assert (
        angel.hub.refused == refused_before + 3
        and angel.hub.handshakes[-1]["Authorization"] == f"Bearer {angel.creds['jwt_token']}"
    )
    for secret in (angel.creds["feed_token"], angel.creds["jwt_token"]):
        assert secret not in caplog.text and secret not in repr(angel.opened[-1])


def test_expired_session_is_refused_on_reconnect(angel):
    stream = angel.stream()
    stream.connect()
    angel.emulator.expire_sessions(angel.creds["client_code"])
    stream.subscribe([INFY])
    assert read_until(stream, bool)  # the open socket keeps going
    stream.close()
    with pytest.raises(AuthExpired):
        angel.stream().connect()


def test_unreachable_stream_is_unavailable(angel):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with pytest.raises(Unavailable):
        angel.stream(ws_url=f"ws://127.0.0.1:{port}/smart-stream").connect()


def test_drop_raises_stream_closed_and_close_is_idempotent(angel):
    stream = angel.stream()
    stream.connect()
    stream.subscribe([INFY])
    read_until(stream, bool)
    angel.emulator.drop_stream()
    with pytest.raises(StreamClosed):
        read_for(stream, 2.0)
    stream.close()
    stream.close()
    with pytest.raises(StreamClosed):
        stream.read(0.1)
    with pytest.raises(StreamClosed):
        stream.subscribe([INFY])


def test_unknown_mode_is_refused():
    with pytest.raises(Exception, match="mode"):
        AngelStream("c", "k", "j", "f", mode="depth20")


# ---------------------------------------------------------------- the contract the adapter delegates to


def test_stream_token_keys_cash_instruments_by_exchange_and_scrip_code():
    assert stream_token(InstrumentRef("NSE", "RELIANCE", 2885)) == "NSE|2885"
    assert stream_token(InstrumentRef("BSE", "RELIANCE", 500325, isin="INE002A01018")) == "BSE|500325"
    assert stream_token(InstrumentRef("NFO", "NIFTY26DECFUT", 35001)) is None
    assert stream_token(InstrumentRef("NSE", "NOTOKEN", 0)) is None
    assert stream_token(InstrumentRef("NSE", "NIFTY 50", 1001)) == "NSE|99926000"  # by name, not the row's token
    assert stream_token(InstrumentRef("NSE", "NIFTY BANK", 1016)) == "NSE|99926009"
    assert stream_token(InstrumentRef("NSE", "NIFTY IT", 1020)) is None
    assert STREAM_SETTINGS == {"ANGEL_STREAM_URL": "wss://smartapisocket.angelone.in/smart-stream"}


def test_open_stream_uses_the_sessions_jwt_and_feed_token(angel):
    creds = angel.creds
    account = Account(
        creds["client_code"],
        {"api_key": creds["api_key"]},
        BrokerSession(creds["jwt_token"], extra={"feed_token": creds["feed_token"]}),
    )
    stream = open_stream(account, {"ANGEL_STREAM_URL": angel.ws_url})
    angel.opened.append(stream)
    stream.connect()
    stream.subscribe([INFY])
    assert read_until(stream, bool)
    assert open_stream(account, {}).ws_url == STREAM_SETTINGS["ANGEL_STREAM_URL"]


def test_the_registered_adapter_logs_in_and_streams_with_its_session(angel, angel_server):
    from tests.brokers.angel_fixtures import login_params

    cls = broker_class("angel")
    config = {"ANGEL_API_URL": angel_server.url, "ANGEL_STREAM_URL": angel.ws_url, "BROKER_TIMEOUT_SECONDS": 3}
    creds = angel.creds
    adapter = cls(Account(creds["client_code"], {"api_key": creds["api_key"]}), broker_options("angel", config))
    session = adapter.complete_login(login_params(creds))  # a fresh jwt and feed token from the REST login
    assert session.extra["feed_token"] != creds["feed_token"]
    account = Account(creds["client_code"], {"api_key": creds["api_key"]}, session)
    token = cls.stream_token(InstrumentRef("NSE", "TCS", 11536))
    stream = cls.open_stream(account, config)
    angel.opened.append(stream)
    stream.connect()
    stream.subscribe([token])
    quote = last_for(read_until(stream, lambda ts: any(t == token for t, _ in ts)), token)
    assert quote.last_price == expected(angel, token).last_price
    assert angel.hub.handshakes[-1]["X-Feed-Token"] == session.extra["feed_token"]


# ---------------------------------------------------------------- under the supervisor


class SkewClock:
    """Real monotonic time, plus whatever the supervisor 'slept': backoff costs no wall time."""

    def __init__(self) -> None:
        self.skew, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.skew += seconds


def supervisor(env: StreamEnv, clock: SkewClock) -> StreamSupervisor:
    return StreamSupervisor(
        lambda: env.stream(), name="angel", seed=3, sleep=clock.sleep, clock=clock, watchdog_seconds=0.3
    )


def run_until(sup: StreamSupervisor, done, within: float = 4.0) -> list:
    deadline = time.monotonic() + within
    ticks: list = []
    while time.monotonic() < deadline:
        ticks.extend(sup.run_once(0.1))
        if done(ticks):
            return ticks
    raise AssertionError(f"not done within {within}s: {sup.stats()}")


def test_drop_reconnects_and_resubscribes(angel):
    clock = SkewClock()
    sup = supervisor(angel, clock)
    sup.subscribe({INFY, RELIANCE_BSE})
    run_until(sup, lambda ts: {t for t, _ in ts} == {INFY, RELIANCE_BSE})
    angel.emulator.drop_stream()
    angel.emulator.set_price("INFY", "1501.10")
    ticks = run_until(sup, lambda ts: any(q.last_price == Decimal("1501.10") for _, q in ts))
    ticks += run_until(sup, lambda ts: RELIANCE_BSE in {t for t, _ in ts})
    assert {t for t, _ in ticks} == {INFY, RELIANCE_BSE}
    stats = sup.stats()
    assert (stats.connects, stats.reconnects, stats.drops, stats.state) == (2, 1, 1, StreamState.CONNECTED)
    assert angel.hub.accepted >= 2 and len(angel.opened) == 2
    (conn,) = angel.hub.wait_for(1, angel.creds["client_code"])
    resubscribed = [json.loads(m) for m in conn.received if m != "ping"]
    assert resubscribed[0]["action"] == 1 and resubscribed[0]["params"]["tokenList"] == [
        {"exchangeType": 1, "tokens": ["1594"]},
        {"exchangeType": 3, "tokens": ["500325"]},
    ]
    sup.close()


def test_silent_socket_trips_the_watchdog_and_reconnects(angel):
    clock = SkewClock()
    sup = supervisor(angel, clock)
    sup.subscribe({TCS})
    run_until(sup, bool)
    angel.emulator.silence_stream(10.0)
    run_until(sup, lambda _: sup.stats().watchdog_trips == 1)
    run_until(sup, bool)  # ticks again, from a new socket
    stats = sup.stats()
    assert (stats.watchdog_trips, stats.reconnects, stats.drops) == (1, 1, 0)
    assert angel.hub.accepted >= 2
    sup.close()


def test_session_expired_during_a_drop_surfaces_auth_expired(angel):
    clock = SkewClock()
    sup = supervisor(angel, clock)
    sup.subscribe({SBIN})
    run_until(sup, bool)
    refused_before = angel.hub.refused
    angel.emulator.expire_sessions(angel.creds["client_code"])
    angel.emulator.drop_stream()
    with pytest.raises(AuthExpired):
        run_until(sup, lambda _: False)
    assert sup.state is StreamState.AUTH_FAILED
    with pytest.raises(AuthExpired):
        sup.run_once(0.1)
    assert angel.hub.refused == refused_before + 1  # one refusal, no retry loop
    sup.close()


# ---------------------------------------------------------------- the SDK decodes the same bytes


def test_the_sdk_decodes_the_same_bytes_to_the_same_numbers(angel, tmp_path, monkeypatch):
    import logzero  # the SDK's own logger (a dev dependency: smartapi-python imports it undeclared)
    from SmartApi import smartWebSocketV2 as sdk_module

    monkeypatch.chdir(tmp_path)  # the SDK writes logs/<date>/app.log under the working directory
    seen: list[tuple[bytes, dict]] = []
    opened = threading.Event()

    class RecordingSDK(sdk_module.SmartWebSocketV2):
        def _on_data(self, wsapp, data, data_type, continue_flag):
            if data_type == 2:
                seen.append((bytes(data), self._parse_binary_data(data)))

        def on_open(self, wsapp):
            opened.set()
            self.subscribe("sdk0000001", 3, [{"exchangeType": 1, "tokens": ["1594"]}])

    creds = angel.creds
    auth = (f"Bearer {creds['jwt_token']}", creds["api_key"], creds["client_code"], creds["feed_token"])
    # no retries: websocket-client calls the SDK's one-argument _on_close with three, and the SDK's
    # error handler would reconnect after our close
    sdk = RecordingSDK(*auth, max_retry_attempt=0, retry_delay=0)
    sdk.ROOT_URI = angel.ws_url  # a class attribute in the SDK; the instance's wins
    thread = threading.Thread(target=sdk.connect, daemon=True)
    thread.start()
    try:
        eventually(lambda: len(seen) >= 2, within=5.0)
    finally:
        # the server hangs up first: websocket-client's own close, from another thread, leaves
        # run_forever waiting in select on the closed socket
        angel.emulator.drop_stream()
        thread.join(5.0)
        sdk.close_connection()
        for handler in list(logzero.logger.handlers):  # the SDK opened logzero's global log file in tmp_path
            if isinstance(handler, logging.FileHandler):
                logzero.logger.removeHandler(handler)
                handler.close()
    assert not thread.is_alive()
    raw, sdk_tick = seen[-1]
    packet = parse_packet(raw)
    quote = to_quote(packet, utcnow())
    assert packet.stream_token == INFY and sdk_tick["token"] == "1594" and sdk_tick["exchange_type"] == 1
    assert sdk_tick["subscription_mode"] == 3 and packet.sequence == sdk_tick["sequence_number"]
    assert quote.last_price == Decimal(sdk_tick["last_traded_price"]) / 100
    for ours, theirs in (
        (quote.open, "open_price_of_the_day"),
        (quote.high, "high_price_of_the_day"),
        (quote.low, "low_price_of_the_day"),
        (quote.close, "closed_price"),
    ):
        assert ours == Decimal(sdk_tick[theirs]) / 100
    assert quote.volume == sdk_tick["volume_trade_for_the_day"]
    assert quote.timestamp == datetime.fromtimestamp(sdk_tick["exchange_timestamp"] / 1000, UTC).replace(
        microsecond=(sdk_tick["exchange_timestamp"] % 1000) * 1000
    )
    # the SDK labels flag-1 entries best_5_buy_data (it swaps its own lists back): our bids
    assert [(lvl.price, lvl.quantity, lvl.orders) for lvl in quote.bids] == [
        (Decimal(e["price"]) / 100, e["quantity"], e["no of orders"]) for e in sdk_tick["best_5_buy_data"]
    ]
    assert [(lvl.price, lvl.quantity, lvl.orders) for lvl in quote.asks] == [
        (Decimal(e["price"]) / 100, e["quantity"], e["no of orders"]) for e in sdk_tick["best_5_sell_data"]
    ]
    assert quote.bids[0].price < quote.last_price < quote.asks[0].price
    assert quote.last_price == expected(angel, INFY).last_price
    assert opened.is_set() and angel.hub.handshakes[-1]["X-Feed-Token"] == creds["feed_token"]


# ---------------------------------------------------------------- the parser on hand-built bytes


def hand_built_snapquote() -> bytes:
    """A SnapQuote packet packed field by field from the docs' table, not through either codec."""
    head = struct.pack("<BB25sqqq", 3, 1, b"2885", 77, 1_733_390_000_123, 250_565)
    quote = struct.pack("<qqqddqqqq", 15, 250_010, 1_234_567, 5000.0, 6000.0, 249_000, 251_000, 248_500, 249_550)
    snap = struct.pack("<qqd", 1_733_390_000, 0, 0.0)
    levels = b"".join(
        [
            struct.pack("<hqqh", 1, 100, 250_560, 3),  # buy
            struct.pack("<hqqh", 0, 120, 250_570, 4),  # sell
            struct.pack("<hqqh", 1, 50, 250_555, 1),
            struct.pack("<hqqh", 0, 0, 0, 0),  # an empty level
        ]
        + [struct.pack("<hqqh", 0, 0, 0, 0)] * 6
    )
    limits = struct.pack("<qqqq", 275_600, 225_500, 300_000, 200_000)
    return head + quote + snap + levels + limits


def test_hand_built_snapquote_offsets_and_little_endian():
    data = hand_built_snapquote()
    assert len(data) == 379
    assert data[43:51] == (250_565).to_bytes(8, "little")  # LTP at 43, least significant byte first
    packet = parse_packet(data)
    quote = to_quote(packet, utcnow(), ("NSE", "RELIANCE"))
    assert packet.stream_token == "NSE|2885" and packet.sequence == 77
    assert str(quote.last_price) == "2505.65" and quote.volume == 1_234_567
    assert (quote.open, quote.high, quote.low, quote.close) == tuple(
        Decimal(v) for v in ("2490.00", "2510.00", "2485.00", "2495.50")
    )
    assert packet.average_price == Decimal("2500.10") and packet.last_quantity == 15
    assert packet.total_buy_quantity == 5000.0 and packet.total_sell_quantity == 6000.0
    assert quote.bids == (DepthLevel(Decimal("2505.60"), 100, 3), DepthLevel(Decimal("2505.55"), 50, 1))
    assert quote.asks == (DepthLevel(Decimal("2505.70"), 120, 4),)
    assert (quote.upper_circuit, quote.lower_circuit) == (Decimal("2756.00"), Decimal("2255.00"))
    assert (packet.week52_high, packet.week52_low) == (Decimal("3000.00"), Decimal("2000.00"))
    assert quote.timestamp == datetime(2024, 12, 5, 9, 13, 20, 123000, tzinfo=UTC)


def test_hand_built_ltp_and_quote_packets():
    ltp = struct.pack("<BB25sqqq", 1, 3, b"500325", 1, 0, 123_405)
    packet = parse_packet(ltp)
    received = utcnow()
    quote = to_quote(packet, received)
    assert len(ltp) == 51 and packet.stream_token == "BSE|500325"
    assert quote.last_price == Decimal("1234.05") and quote.exchange == "BSE" and quote.tradingsymbol == ""
    assert quote.open is None and quote.bids == () and quote.timestamp == received  # no exchange time
    quote_packet = struct.pack("<BB25sqqq", 2, 1, b"1594", 2, 1_733_390_000_000, 150_000) + struct.pack(
        "<qqqddqqqq", 1, 150_000, 10, 0.0, 0.0, 149_000, 151_000, 148_000, 149_500
    )
    parsed = parse_packet(quote_packet)
    assert len(quote_packet) == 123 and parsed.close == Decimal("1495.00") and parsed.bids == ()
    assert parsed.upper_circuit is None


def test_garbage_and_foreign_segments_parse_to_nothing():
    data = hand_built_snapquote()
    assert parse_packet(b"") is None
    assert parse_packet(data[:50]) is None  # shorter than any packet
    assert parse_packet(data[:200]) is None  # SnapQuote mode, but cut short
    assert parse_packet(bytes([4]) + data[1:]) is None  # the 20-level depth mode is not ours
    foreign = parse_packet(struct.pack("<BB25sqqq", 1, 2, b"35001", 1, 0, 100))  # nse_fo
    assert foreign is not None and foreign.stream_token is None
    stream = AngelStream("c", "k", "j", "f")
    assert stream._handle(struct.pack("<BB25sqqq", 1, 2, b"35001", 1, 0, 100)) == []
    assert stream._handle("pong") == [] and stream.pongs == 1
    assert stream._handle("{not json") == [] and stream._handle("[1]") == []


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from([1, 2, 3]),
    kind=st.sampled_from([1, 3]),
    scrip=st.integers(1, 10**9),
    ltp=st.integers(1, 10**12),
    ohlc=st.lists(st.integers(1, 10**12), min_size=4, max_size=4),
    volume=st.integers(0, 2**62),
    depth=st.lists(
        st.tuples(st.sampled_from([0, 1]), st.integers(1, 10**9), st.integers(1, 10**12), st.integers(0, 30000)),
        max_size=10,
    ),
)
def test_codec_round_trip(mode, kind, scrip, ltp, ohlc, volume, depth):
    fields = {"last_traded_price": ltp, "volume": volume, **dict(zip(("open", "high", "low", "close"), ohlc))}
    packet = parse_packet(codec.encode_packet(mode, kind, str(scrip), fields, depth))
    assert packet.stream_token == f"{'NSE' if kind == 1 else 'BSE'}|{scrip}"
    assert packet.last_price == Decimal(ltp).scaleb(-2)
    if mode >= 2:
        assert (packet.volume, packet.open, packet.close) == (volume, Decimal(ohlc[0]) / 100, Decimal(ohlc[3]) / 100)
    if mode == 3:
        assert packet.bids == tuple(DepthLevel(Decimal(p) / 100, q, o) for f, q, p, o in depth if f == 1)
        assert packet.asks == tuple(DepthLevel(Decimal(p) / 100, q, o) for f, q, p, o in depth if f == 0)
    else:
        assert packet.bids == packet.asks == ()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400))
def test_parser_never_raises_on_garbage(data):
    parse_packet(data)
