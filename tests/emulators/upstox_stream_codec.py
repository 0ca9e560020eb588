"""Upstox feed v3 frames written by hand: a protobuf wire encoder (varints, little-endian fixed64
doubles, length-delimited strings and messages) for the FeedResponse messages of
MarketDataFeedV3.proto, with no protobuf runtime, so the emulator's frames are an independent check
of the desk's decoder (webapp/brokers/upstox/feed_pb.py, built on google.protobuf).

Field numbers follow the .proto (upstox-python-sdk 2.30.0, upstox_client/feeder/proto/):
FeedResponse{type=1, feeds=2 (map<string,Feed>), currentTs=3, marketInfo=4};
Feed{ltpc=1 | fullFeed=2 | firstLevelWithGreeks=3, requestMode=4};
LTPC{ltp=1 double, ltt=2 int64, ltq=3 int64, cp=4 double};
FullFeed{marketFF=1 | indexFF=2}; MarketFullFeed{ltpc=1, marketLevel=2, optionGreeks=3, marketOHLC=4,
atp=5, vtt=6, oi=7, iv=8, tbq=9, tsq=10, ...}; MarketLevel{bidAskQuote=1 repeated Quote};
Quote{bidQ=1 int64, bidP=2 double, askQ=3 int64, askP=4 double}; MarketOHLC{ohlc=1 repeated OHLC};
OHLC{interval=1 string, open=2, high=3, low=4, close=5 double, vol=6, ts=7 int64};
IndexFullFeed{ltpc=1, marketOHLC=2}; MarketInfo{segmentStatus=1 map<string,MarketStatus>}.

Like the protobuf runtime (proto3), zero scalars are left out; sub-messages are always written.
Map entries are written in the order given.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from decimal import Decimal

VARINT, FIXED64, LENGTH = 0, 1, 2
TYPES = {"initial_feed": 0, "live_feed": 1, "market_info": 2}
REQUEST_MODES = {"ltpc": 0, "full_d5": 1, "option_greeks": 2, "full_d30": 3}
MARKET_STATUS = {
    "PRE_OPEN_START": 0,
    "PRE_OPEN_END": 1,
    "NORMAL_OPEN": 2,
    "NORMAL_CLOSE": 3,
    "CLOSING_START": 4,
    "CLOSING_END": 5,
}


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def int64(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(int(value)) if value else b""


def double(number: int, value: Decimal | float | int | None) -> bytes:
    if not value:
        return b""
    return key(number, FIXED64) + struct.pack("<d", float(value))


def string(number: int, value: str) -> bytes:
    data = value.encode("utf-8")
    return key(number, LENGTH) + varint(len(data)) + data if data else b""


def message(number: int, body: bytes) -> bytes:
    return key(number, LENGTH) + varint(len(body)) + body


def boolean(number: int, value: bool) -> bytes:
    return key(number, VARINT) + b"\x01" if value else b""


# ---------------------------------------------------------------------- messages


def ltpc(ltp: Decimal, ltt: int = 0, ltq: int = 0, cp: Decimal | None = None) -> bytes:
    return double(1, ltp) + int64(2, ltt) + int64(3, ltq) + double(4, cp)


def quote_level(bid_q: int, bid_p: Decimal | None, ask_q: int, ask_p: Decimal | None) -> bytes:
    return int64(1, bid_q) + double(2, bid_p) + int64(3, ask_q) + double(4, ask_p)


def ohlc(
    interval: str, open_: Decimal, high: Decimal, low: Decimal, close: Decimal, vol: int = 0, ts: int = 0
) -> bytes:
    return (
        string(1, interval)
        + double(2, open_)
        + double(3, high)
        + double(4, low)
        + double(5, close)
        + int64(6, vol)
        + int64(7, ts)
    )


def market_full_feed(
    ltpc_body: bytes,
    levels: Iterable[bytes] = (),
    bars: Iterable[bytes] = (),
    *,
    atp: Decimal | None = None,
    vtt: int = 0,
    tbq: int = 0,
    tsq: int = 0,
) -> bytes:
    market_level = b"".join(message(1, level) for level in levels)
    market_ohlc = b"".join(message(1, bar) for bar in bars)
    return (
        message(1, ltpc_body)
        + message(2, market_level)
        + message(4, market_ohlc)
        + double(5, atp)
        + int64(6, vtt)
        + double(9, tbq)
        + double(10, tsq)
    )


def index_full_feed(ltpc_body: bytes, bars: Iterable[bytes] = ()) -> bytes:
    return message(1, ltpc_body) + message(2, b"".join(message(1, bar) for bar in bars))


def feed_ltpc(ltpc_body: bytes) -> bytes:
    return message(1, ltpc_body) + int64(4, REQUEST_MODES["ltpc"])


def feed_market(full_body: bytes) -> bytes:
    return message(2, message(1, full_body)) + int64(4, REQUEST_MODES["full_d5"])


def feed_index(index_body: bytes) -> bytes:
    return message(2, message(2, index_body)) + int64(4, REQUEST_MODES["full_d5"])


def map_entry(number: int, name: str, value: bytes) -> bytes:
    return message(number, string(1, name) + message(2, value))


def feed_response(kind: str, feeds: Mapping[str, bytes], current_ts: int = 0) -> bytes:
    """A FeedResponse frame: `feeds` maps an instrument key to an encoded Feed."""
    entries = b"".join(map_entry(2, name, body) for name, body in feeds.items())
    return int64(1, TYPES[kind]) + entries + int64(3, current_ts)


def market_info(statuses: Mapping[str, str], current_ts: int = 0) -> bytes:
    """The market_info frame: segment -> MarketStatus name."""
    entries = b"".join(
        message(1, string(1, segment) + int64(2, MARKET_STATUS[status])) for segment, status in statuses.items()
    )
    return int64(1, TYPES["market_info"]) + int64(3, current_ts) + message(4, entries)
