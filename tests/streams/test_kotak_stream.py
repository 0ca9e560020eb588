"""Kotak Neo's HSM stream against the Kotak emulator's stream over real loopback WebSockets (alone and
under the StreamSupervisor), and the HSM codec on hand-built bytes."""

from __future__ import annotations

import logging
import socket
import struct
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emulators.common import EmulatorServer
from tests.emulators.kotak import KotakEmulator
from tests.streams.conftest import StreamEnv, _env, eventually, read_for, read_until
from webapp.brokers.base import Account, AuthExpired, BrokerSession, InstrumentRef, Unavailable
from webapp.brokers.kotak import KotakBroker, hsm
from webapp.brokers.kotak.stream import STREAM_SETTINGS, KotakStream, open_stream, stream_token
from webapp.marketdata.streams import StreamClosed, StreamState, StreamSupervisor
from webapp.timeutil import utcnow

INFY, SBIN, TCS = 1594, 3045, 11536


def make_stream(env: StreamEnv, **kwargs: Any) -> KotakStream:
    options = {
        "token": env.creds["session_token"],
        "sid": env.creds["sid"],
        "ws_url": env.ws_url,
        "connect_timeout": 2.0,
        **kwargs,
    }
    return KotakStream(options.pop("token"), options.pop("sid"), **options)


@pytest.fixture(scope="module")
def kotak_server():
    with EmulatorServer(KotakEmulator()) as server:
        server.app.public_url = server.url
        yield server
        server.app.stream.shutdown()


@pytest.fixture
def kotak(kotak_server):
    kotak_server.app.stream.ack_every = 0
    yield from _env(kotak_server, kotak_server.app.add_account(), "/", make_stream)


def scrip(env: StreamEnv, token: int):
    return env.emulator.book.scrips[("nse_cm", token)]


def requests_of(env: StreamEnv) -> list[tuple[int, dict[int, bytes]]]:
    (conn,) = env.hub.wait_for(1, env.creds["ucc"])
    return [(hsm.frame_type(m), hsm.read_fields(m)) for m in conn.received if isinstance(m, bytes)]


def last_for(ticks, token):
    return [quote for t, quote in ticks if t == token][-1]


# ---------------------------------------------------------------- over the socket


def test_ticks_carry_the_emulators_numbers(kotak):
    stream = kotak.stream()
    stream.connect()
    stream.subscribe([INFY, TCS])
    ticks = read_until(stream, lambda ts: {t for t, _ in ts} == {INFY, TCS})
    quote = last_for(ticks, INFY)
    infy = scrip(kotak, INFY)
    assert (quote.exchange, quote.tradingsymbol) == ("NSE", "INFY")
    assert quote.last_price == infy.ltp and quote.close == infy.close
    assert quote.bids[0].price == infy.ltp - infy.tick and quote.asks[0].price == infy.ltp + infy.tick
    assert (quote.lower_circuit, quote.upper_circuit) == (infy.lower, infy.upper)
    assert quote.timestamp is not None and quote.timestamp.tzinfo is not None


def test_requests_on_the_wire(kotak):
    stream = kotak.stream()
    stream.connect()
    stream.subscribe([TCS, INFY])
    read_until(stream, bool)
    (connect, fields), (subscribe, sub_fields) = requests_of(kotak)[:2]
    assert connect == hsm.CONNECTION
    assert fields == {1: kotak.creds["session_token"].encode(), 2: kotak.creds["sid"].encode(), 3: b"JS_API"}
    assert subscribe == hsm.SUBSCRIBE
    assert hsm.parse_scrip_list(sub_fields[1]) == ["sf|nse_cm|1594", "sf|nse_cm|11536"]
    assert sub_fields[2] == b"\x01"


def test_price_changes_arrive_as_updates_and_unsubscribe_stops_ticks(kotak):
    stream = kotak.stream()
    stream.connect()
    stream.subscribe([INFY, SBIN])
    read_until(stream, lambda ts: {t for t, _ in ts} == {INFY, SBIN})
    kotak.emulator.set_ltp("INFY", "1550.00")
    ticks = read_until(stream, lambda ts: any(t == INFY and q.last_price == Decimal("1550") for t, q in ts))
    assert last_for(ticks, SBIN).last_price == scrip(kotak, SBIN).ltp  # carried over from the snapshot
    stream.unsubscribe([SBIN])
    (conn,) = kotak.hub.wait_for(1, kotak.creds["ucc"])
    eventually(lambda: "sf|nse_cm|3045" not in conn.subscriptions)
    read_for(stream, 0.1)
    assert {t for t, _ in read_for(stream, 0.3)} == {INFY}


def test_acks_follow_the_servers_interval(kotak):
    kotak.hub.ack_every = 2
    stream = kotak.stream()
    stream.connect()
    stream.subscribe([INFY])
    read_until(stream, lambda ts: len(ts) >= 6)
    eventually(lambda: len(kotak.hub.acks) >= 2)
    assert kotak.hub.acks == sorted(kotak.hub.acks) and stream.acks_sent >= 2


def test_refused_session_is_auth_expired_and_never_logged(kotak, caplog):
    refused = kotak.hub.refused_sessions
    accepted = kotak.hub.accepted
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired):
            kotak.stream(token="eyJnot-a-session").connect()
        with pytest.raises(AuthExpired):
            kotak.stream(sid="0" * 32).connect()
        with pytest.raises(AuthExpired):  # never sent: no session to present
            kotak.stream(token="").connect()
    assert kotak.hub.refused_sessions == refused + 2 and kotak.hub.accepted == accepted + 2
    for secret in (kotak.creds["session_token"], kotak.creds["sid"]):
        assert secret not in caplog.text and secret not in repr(kotak.opened[0])


def test_expired_session_is_refused_on_reconnect(kotak):
    stream = kotak.stream()
    stream.connect()
    kotak.emulator.expire_sessions(kotak.creds["ucc"])
    stream.subscribe([INFY])
    assert read_until(stream, bool)  # the open socket keeps going
    stream.close()
    with pytest.raises(AuthExpired):
        kotak.stream().connect()


def test_unreachable_stream_is_unavailable(kotak):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with pytest.raises(Unavailable):
        kotak.stream(ws_url=f"ws://127.0.0.1:{port}/").connect()


def test_drop_raises_stream_closed_and_close_is_idempotent(kotak):
    stream = kotak.stream()
    stream.connect()
    stream.subscribe([INFY])
    read_until(stream, bool)
    kotak.emulator.drop_stream()
    with pytest.raises(StreamClosed):
        read_for(stream, 2.0)
    stream.close()
    stream.close()
    with pytest.raises(StreamClosed):
        stream.read(0.1)
    with pytest.raises(StreamClosed):
        stream.subscribe([INFY])


# ---------------------------------------------------------------- the contract the adapter delegates to


def test_stream_token_is_the_nse_scrip_code():
    assert stream_token(InstrumentRef("NSE", "INFY", 1594)) == 1594
    assert KotakBroker.stream_token(InstrumentRef("NSE", "TCS", 11536, instrument_token=2953217)) == 11536
    assert stream_token(InstrumentRef("BSE", "RELIANCE", 500325)) is None
    assert stream_token(InstrumentRef("NSE", "NOTOKEN", 0)) is None
    assert STREAM_SETTINGS == {"KOTAK_STREAM_URL": "wss://mlhsm.kotaksecurities.com"}
    assert KotakBroker.settings["KOTAK_STREAM_URL"] == STREAM_SETTINGS["KOTAK_STREAM_URL"]


def test_open_stream_uses_the_sessions_token_and_sid(kotak):
    creds = kotak.creds
    session = BrokerSession(creds["session_token"], extra={"sid": creds["sid"], "base_url": creds["base_url"]})
    account = Account(creds["ucc"], {"consumer_key": creds["consumer_key"]}, session)
    stream = KotakBroker.open_stream(account, {"KOTAK_STREAM_URL": kotak.ws_url})
    kotak.opened.append(stream)
    stream.connect()
    stream.subscribe([TCS])
    assert read_until(stream, bool)
    assert open_stream(account, {}).ws_url == STREAM_SETTINGS["KOTAK_STREAM_URL"]


# ---------------------------------------------------------------- under the supervisor


class SkewClock:
    """Real monotonic time, plus whatever the supervisor 'slept': backoff costs no wall time."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def sleep(self, seconds: float) -> None:
        self.skew += seconds


def supervisor(env: StreamEnv, clock: SkewClock) -> StreamSupervisor:
    return StreamSupervisor(
        lambda: env.stream(), name="kotak", seed=3, sleep=clock.sleep, clock=clock, watchdog_seconds=0.3
    )


def run_until(sup: StreamSupervisor, done, within: float = 4.0) -> list:
    deadline = time.monotonic() + within
    ticks: list = []
    while time.monotonic() < deadline:
        ticks.extend(sup.run_once(0.1))
        if done(ticks):
            return ticks
    raise AssertionError(f"not done within {within}s: {sup.stats()}")


def test_drop_reconnects_and_resubscribes(kotak):
    sup = supervisor(kotak, SkewClock())
    sup.subscribe({INFY, TCS})
    run_until(sup, lambda ts: {t for t, _ in ts} == {INFY, TCS})
    kotak.emulator.drop_stream()
    kotak.emulator.set_ltp("INFY", "1549.00")
    ticks = run_until(sup, lambda ts: any(t == INFY and q.last_price == Decimal("1549") for t, q in ts))
    ticks += run_until(sup, lambda ts: TCS in {t for t, _ in ts})
    stats = sup.stats()
    assert (stats.connects, stats.reconnects, stats.drops, stats.state) == (2, 1, 1, StreamState.CONNECTED)
    (kind, fields) = requests_of(kotak)[1]
    assert kind == hsm.SUBSCRIBE and hsm.parse_scrip_list(fields[1]) == ["sf|nse_cm|1594", "sf|nse_cm|11536"]
    sup.close()


def test_silent_socket_trips_the_watchdog_and_reconnects(kotak):
    sup = supervisor(kotak, SkewClock())
    sup.subscribe({TCS})
    run_until(sup, bool)
    kotak.emulator.silence_stream(10.0)
    run_until(sup, lambda _: sup.stats().watchdog_trips == 1)
    run_until(sup, bool)  # ticks again, from a new socket
    stats = sup.stats()
    assert (stats.watchdog_trips, stats.reconnects, stats.drops) == (1, 1, 0)
    sup.close()


def test_session_expired_during_a_drop_surfaces_auth_expired(kotak):
    sup = supervisor(kotak, SkewClock())
    sup.subscribe({SBIN})
    run_until(sup, bool)
    refused = kotak.hub.refused_sessions
    kotak.emulator.expire_sessions(kotak.creds["ucc"])
    kotak.emulator.drop_stream()
    with pytest.raises(AuthExpired):
        run_until(sup, lambda _: False)
    assert sup.state is StreamState.AUTH_FAILED
    assert kotak.hub.refused_sessions == refused + 1  # one refusal, no retry loop
    sup.close()


# ---------------------------------------------------------------- the codec on hand-built bytes


def test_connection_request_layout():
    frame = hsm.connection_request("TOK", "SID")
    body = bytes([1, 3, 1, 0, 3]) + b"TOK" + bytes([2, 0, 3]) + b"SID" + bytes([3, 0, 6]) + b"JS_API"
    assert frame == struct.pack(">H", len(body)) + body


def test_subscription_and_ack_layout():
    frame = hsm.subscription_request(hsm.SUBSCRIBE, ["sf|nse_cm|1594"], 1)
    scrips = bytes([0, 1, 14]) + b"sf|nse_cm|1594"
    body = bytes([4, 2, 1]) + struct.pack(">H", len(scrips)) + scrips + bytes([2, 0, 1, 1])
    assert frame == struct.pack(">H", len(body)) + body
    assert hsm.ack_request(7) == bytes([0, 9, 3, 1, 1, 0, 4, 0, 0, 0, 7])


def test_snapshot_then_update_with_unchanged_values():
    values = [0] * 25
    values[hsm.LTP], values[hsm.CLOSE], values[hsm.MULTIPLIER], values[hsm.PRECISION] = 153460, 150000, 1, 2
    topics: dict[int, hsm.Topic] = {}
    snap = hsm.data_message([hsm.snapshot_record(9, "sf|nse_cm|1594", values, {hsm.TRADING_SYMBOL: "INFY-EQ"})])
    _, [topic] = hsm.parse_data(snap, topics, False)
    assert topic.price(hsm.LTP) == Decimal("1534.60") and topic.strings[hsm.TRADING_SYMBOL] == "INFY-EQ"
    update = [hsm.UNCHANGED] * 25
    update[hsm.LTP] = 153500
    number, [same] = hsm.parse_data(hsm.data_message([hsm.update_record(9, update)], 42), topics, True)
    assert number == 42 and same is topic
    assert topic.price(hsm.LTP) == Decimal("1535.00") and topic.price(hsm.CLOSE) == Decimal("1500.00")
    quote = topic.quote("NSE", "INFY", utcnow())
    assert quote.last_price == Decimal("1535") and quote.close == Decimal("1500")
    # an update for a topic never snapshotted is skipped
    assert hsm.parse_data(hsm.data_message([hsm.update_record(10, update)]), topics, False) == (None, [])


def test_precision_and_multiplier_scale_prices():
    topic = hsm.Topic("sf|nse_cm|1")
    topic.apply([0, 0, 0, 0, 0, 123456] + [0] * 17 + [2, 4])
    assert topic.price(hsm.LTP) == Decimal("6.1728")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_parser_raises_only_frame_errors_on_garbage(data):
    try:
        hsm.parse_data(data, {}, bool(data[:1] == b"\x01"))
    except hsm.FrameError:
        pass


# ---------------------------------------------------------------- Kotak's own codec, where a copy is at hand


def kotak_sdk_codec():
    """Kotak's client (neo_api_client) is not on the package index. To cross-check the codec against
    it, point KOTAK_NEO_SDK_DIR at a directory holding its HSWebSocketLib.py (it imports websocket)."""
    import importlib
    import os
    import sys

    where = os.environ.get("KOTAK_NEO_SDK_DIR")
    if not where:
        pytest.skip("KOTAK_NEO_SDK_DIR not set: Kotak's client is not on the package index")
    sys.path.insert(0, where)
    try:
        return importlib.import_module("HSWebSocketLib")
    finally:
        sys.path.remove(where)


def test_kotaks_own_codec_builds_the_same_requests_and_reads_the_emulators_frames():
    sdk = kotak_sdk_codec()
    assert bytes(sdk.prepareConnectionRequest2("TOKEN", "SID")) == hsm.connection_request("TOKEN", "SID")
    names = ["sf|nse_cm|1594", "sf|nse_cm|11536"]
    assert bytes(sdk.prepareSubsUnSubsRequest("nse_cm|1594&nse_cm|11536", hsm.SUBSCRIBE, "sf", 1)) == (
        hsm.subscription_request(hsm.SUBSCRIBE, names, 1)
    )
    assert bytes(sdk.get_acknowledgement_req(7)) == hsm.ack_request(7)
    values = [0] * 25
    values[hsm.LTP], values[hsm.CLOSE], values[hsm.MULTIPLIER], values[hsm.PRECISION] = 154820, 150000, 1, 2
    wrapper = sdk.HSWrapper()
    assert '"stat": "Ok"' in wrapper.parseData(hsm.connection_answer(hsm.STATUS_OK))
    [snap] = wrapper.parseData(hsm.data_message([hsm.snapshot_record(5, names[0], values, {hsm.SYMBOL: "1594"})]))
    assert (snap["ltp"], snap["c"], snap["tk"]) == ("1548.20", "1500.00", "1594")
    update = [hsm.UNCHANGED] * 25
    update[hsm.LTP] = 155000
    [upd] = wrapper.parseData(hsm.data_message([hsm.update_record(5, update)]))
    assert upd["ltp"] == "1550.00" and "c" not in upd
