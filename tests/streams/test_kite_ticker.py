"""Kite's binary ticker: the desk's parser and KiteTicker against the emulator over loopback sockets,
and the parser against frames built independently (hand-written bytes, the emulator's codec)."""

from __future__ import annotations

import logging
import socket
import struct
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emulators import kite_ticker_codec as codec
from tests.streams.conftest import read_for, read_until
from webapp.brokers.base import AuthExpired, DepthLevel, Unavailable
from webapp.brokers.kite.packets import parse_frame, to_quote
from webapp.brokers.kite.ticker import KiteTicker
from webapp.marketdata.streams import StreamClosed
from webapp.timeutil import UTC, utcnow


def token_of(emulator, symbol: str) -> int:
    return emulator.book.instrument("NSE", symbol).instrument_token


def last_for(ticks, token):
    return [quote for t, quote in ticks if t == token][-1]


# ---------------------------------------------------------------- over the socket


def test_quote_mode_ticks_carry_the_emulators_exact_prices(kite):
    infy = token_of(kite.emulator, "INFY")
    kite.emulator.set_price("INFY", "1512.45")
    stream = kite.stream(mode="quote", symbols={infy: ("NSE", "INFY")})
    stream.connect()
    stream.subscribe({infy})
    quote = last_for(read_until(stream, lambda ticks: any(t == infy for t, _ in ticks)), infy)
    instrument = kite.emulator.book.instrument("NSE", "INFY")
    assert (quote.exchange, quote.tradingsymbol) == ("NSE", "INFY")
    assert quote.last_price == Decimal("1512.45") and str(quote.last_price) == "1512.45"
    assert quote.close == instrument.close and quote.open == instrument.close
    assert quote.high == max(Decimal("1512.45"), instrument.close)
    assert quote.volume == instrument.volume
    assert quote.bids == () and quote.asks == ()  # no depth in quote mode
    assert quote.timestamp.tzinfo is UTC

    kite.emulator.set_price("INFY", "1498.05")
    ticks = read_until(stream, lambda ts: any(q.last_price == Decimal("1498.05") for _, q in ts))
    assert all(isinstance(q.last_price, Decimal) for _, q in ticks)


def test_full_mode_has_five_levels_of_depth_matching_the_rest_quote(kite):
    sbin = token_of(kite.emulator, "SBIN")
    stream = kite.stream(mode="full")
    stream.connect()
    stream.subscribe([sbin])
    # a new subscription starts in quote mode until the mode message lands, as on Kite
    quote = last_for(read_until(stream, lambda ticks: bool(ticks) and bool(ticks[-1][1].bids)), sbin)
    row = kite.emulator.book.quote_row(kite.emulator.book.instrument("NSE", "SBIN"))
    assert quote.bids == tuple(DepthLevel(d["price"], d["quantity"], d["orders"]) for d in row["depth"]["buy"])
    assert quote.asks == tuple(DepthLevel(d["price"], d["quantity"], d["orders"]) for d in row["depth"]["sell"])
    assert len(quote.bids) == len(quote.asks) == 5
    assert quote.exchange == "NSE" and quote.tradingsymbol == ""  # no symbol map given
    assert abs(quote.timestamp - utcnow()) < timedelta(seconds=5)


def test_ltp_mode_carries_only_the_price(kite):
    itc = token_of(kite.emulator, "ITC")
    stream = kite.stream(mode="ltp")
    stream.connect()
    stream.subscribe([itc])
    quote = last_for(read_until(stream, lambda ticks: bool(ticks) and ticks[-1][1].open is None), itc)
    assert quote.last_price == kite.emulator.book.instrument("NSE", "ITC").last_price
    assert (quote.open, quote.volume, quote.bids) == (None, 0, ())


def test_unsubscribe_stops_that_tokens_ticks(kite):
    infy, tcs = token_of(kite.emulator, "INFY"), token_of(kite.emulator, "TCS")
    stream = kite.stream()
    stream.connect()
    stream.subscribe({infy, tcs})
    read_until(stream, lambda ticks: {t for t, _ in ticks} == {infy, tcs})
    stream.unsubscribe({tcs})
    read_for(stream, 0.2)  # frames already on the wire
    later = read_for(stream, 0.4)
    assert {t for t, _ in later} == {infy}


def test_connects_with_version_header_and_ignores_heartbeats(kite):
    kite.hub.heartbeat_interval = 0.05
    stream = kite.stream()
    stream.connect()
    assert read_for(stream, 0.4) == []  # nothing subscribed: only 1-byte heartbeats came
    handshake = kite.hub.handshakes[-1]
    assert handshake["X-Kite-Version"] == "3"
    stream.subscribe([token_of(kite.emulator, "INFY")])
    assert read_until(stream, bool)


def test_order_postbacks_and_errors_come_as_text(kite, caplog):
    messages = []
    stream = kite.stream(on_message=messages.append)
    stream.connect()
    stream._send({"a": "bogus", "v": []})  # the emulator answers {"type":"error"}
    kite.hub.wait_for(1, kite.creds["user_id"])
    kite.emulator.push_postback({"order_id": "2403", "status": "COMPLETE", "average_price": Decimal("1512.40")})
    with caplog.at_level(logging.WARNING, logger="webapp.brokers.kite.ticker"):
        assert read_for(stream, 0.4) == []  # text messages are not ticks
    kinds = {m["type"]: m for m in messages}
    assert set(kinds) == {"order", "error"}
    assert kinds["order"]["data"] == {"order_id": "2403", "status": "COMPLETE", "average_price": Decimal("1512.40")}
    assert kinds["error"]["data"] == "Invalid message"
    assert "stream=kite event=error" in caplog.text


def test_bad_token_or_key_is_auth_expired_and_never_logged(kite, caplog):
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired):
            kite.stream(access_token="not-a-session").connect()
        with pytest.raises(AuthExpired):
            kite.stream(api_key="wrong-key").connect()
        kite.stream().connect()
    assert kite.hub.refused >= 2
    assert kite.creds["access_token"] not in caplog.text


def test_expired_session_is_refused_on_reconnect(kite):
    stream = kite.stream()
    stream.connect()
    kite.emulator.expire_sessions(kite.creds["user_id"])
    stream.subscribe([token_of(kite.emulator, "INFY")])
    assert read_until(stream, bool)  # the open socket keeps going
    stream.close()
    with pytest.raises(AuthExpired):
        kite.stream().connect()


def test_unreachable_ticker_is_unavailable(kite):
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    with pytest.raises(Unavailable):
        kite.stream(ws_url=f"ws://127.0.0.1:{port}").connect()


def test_drop_raises_stream_closed_and_close_is_idempotent(kite):
    stream = kite.stream()
    stream.connect()
    stream.subscribe([token_of(kite.emulator, "INFY")])
    read_until(stream, bool)
    kite.emulator.drop_stream()
    with pytest.raises(StreamClosed):
        read_for(stream, 2.0)
    stream.close()
    stream.close()
    with pytest.raises(StreamClosed):
        stream.read(0.1)
    with pytest.raises(StreamClosed):
        stream.subscribe([1])


def test_unknown_mode_is_refused():
    with pytest.raises(Exception, match="mode"):
        KiteTicker("k", "t", mode="snapshot")


# ---------------------------------------------------------------- the parser against independent bytes


def test_hand_written_ltp_frame():
    # 1 packet of 8 bytes: token 408065 (0x00063A01), LTP 157370 paise (0x000266BA)
    frame = bytes.fromhex("0001000800063a01000266ba")
    (packet,) = parse_frame(frame)
    assert packet.instrument_token == 408065 and packet.mode == "ltp" and packet.tradable
    assert packet.last_price == Decimal("1573.70") and str(packet.last_price) == "1573.70"


def test_hand_written_full_packet_depth_offsets():
    body = bytearray(184)
    body[0:4] = (408065).to_bytes(4, "big")
    body[4:8] = (157370).to_bytes(4, "big")
    body[60:64] = (1_700_000_000).to_bytes(4, "big")  # exchange timestamp
    body[64:68] = (5).to_bytes(4, "big")  # first bid: 5 @ 1573.40, 1 order
    body[68:72] = (157340).to_bytes(4, "big")
    body[72:74] = (1).to_bytes(2, "big")
    body[124:128] = (7).to_bytes(4, "big")  # first ask (entry 6 at 64 + 5*12)
    body[128:132] = (157390).to_bytes(4, "big")
    body[132:134] = (3).to_bytes(2, "big")
    (packet,) = parse_frame(b"\x00\x01\x00\xb8" + bytes(body))
    assert packet.bids[0] == DepthLevel(Decimal("1573.40"), 5, 1)
    assert packet.asks[0] == DepthLevel(Decimal("1573.90"), 7, 3)
    assert packet.exchange_timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    quote = to_quote(packet, utcnow())
    assert quote.bids == (DepthLevel(Decimal("1573.40"), 5, 1),)  # empty levels left out
    assert quote.timestamp == packet.exchange_timestamp


def test_heartbeats_and_garbage_parse_to_nothing():
    assert parse_frame(b"") == [] and parse_frame(codec.HEARTBEAT) == []
    assert parse_frame(b"\x00\x02\x00\x08" + bytes(8)) != []  # one whole packet, then a missing one
    assert len(parse_frame(b"\x00\x02\x00\x08" + bytes(8) + b"\x00\x2c" + bytes(10))) == 1
    assert parse_frame(b"\x00\x01\x00\x05" + bytes(5)) == []  # unknown length


def test_segment_divisors_cds_and_bcd():
    cds = (12345 << 8) | 3
    bcd = (12345 << 8) | 6
    frame = codec.encode_frame(
        [
            codec.encode_packet("ltp", {"instrument_token": cds, "last_price": 832512345}),
            codec.encode_packet("ltp", {"instrument_token": bcd, "last_price": 832512}),
        ]
    )
    first, second = parse_frame(frame)
    assert first.last_price == Decimal("83.2512345") and second.last_price == Decimal("83.2512")


U32 = st.integers(0, 2**32 - 1)
SEGMENTS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 9])


@st.composite
def wire_packets(draw):
    mode = draw(st.sampled_from(["ltp", "quote", "full", "index_quote", "index_full"]))
    segment = 9 if mode.startswith("index") else draw(SEGMENTS.filter(lambda s: s != 9))
    token = (draw(st.integers(0, 2**24 - 1)) << 8) | segment
    names = [n for n in codec.FULL_LAYOUT if n != "instrument_token"]
    wire = {
        "instrument_token": token,
        **{name: draw(U32) for name in names},
        "change": draw(st.integers(-(2**31), 2**31 - 1)),
    }
    depth = draw(st.lists(st.tuples(U32, U32, st.integers(0, 2**16 - 1)), min_size=10, max_size=10))
    return mode, wire, depth


def _expected_price(value: int, token: int) -> Decimal:
    places = {3: 7, 6: 4}.get(token & 0xFF, 2)
    return Decimal(value) / Decimal(10) ** places


@settings(max_examples=100, deadline=None)
@given(st.lists(wire_packets(), min_size=1, max_size=4))
def test_codec_round_trip(packets):
    frame = codec.encode_frame([codec.encode_packet(mode, wire, depth) for mode, wire, depth in packets])
    parsed = parse_frame(frame)
    assert len(parsed) == len(packets)
    for (mode, wire, depth), packet in zip(packets, parsed):
        token = wire["instrument_token"]
        assert packet.instrument_token == token
        assert packet.last_price == _expected_price(wire["last_price"], token)
        if mode == "ltp":
            assert packet.mode == "ltp" and packet.open is None
            continue
        for name in ("open", "high", "low", "close"):
            assert getattr(packet, name) == _expected_price(wire[name], token)
        if mode.startswith("index"):
            assert not packet.tradable and packet.change == _expected_price(wire["change"], token)
            stamp = wire["exchange_timestamp"] if mode == "index_full" else 0
            assert packet.exchange_timestamp == (datetime.fromtimestamp(stamp, UTC) if stamp else None)
            continue
        assert packet.volume_traded == wire["volume_traded"]
        assert packet.average_traded_price == _expected_price(wire["average_traded_price"], token)
        assert (packet.total_buy_quantity, packet.total_sell_quantity) == (
            wire["total_buy_quantity"],
            wire["total_sell_quantity"],
        )
        if mode == "full":
            assert (packet.oi, packet.oi_day_high, packet.oi_day_low) == (
                wire["oi"],
                wire["oi_day_high"],
                wire["oi_day_low"],
            )
            levels = [DepthLevel(_expected_price(p, token), q, o) for q, p, o in depth]
            assert list(packet.bids) == levels[:5] and list(packet.asks) == levels[5:]
        else:
            assert packet.bids == () and packet.oi is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_never_raises_on_garbage(data):
    for packet in parse_frame(data):
        assert isinstance(packet.last_price, Decimal)


def test_frame_header_is_big_endian():
    frame = codec.encode_frame([codec.encode_packet("quote", {"instrument_token": 256 + 1, "last_price": 100})])
    assert struct.unpack(">HH", frame[:4]) == (1, 44)
