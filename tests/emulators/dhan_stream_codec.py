"""Dhan live market feed v2 packets as the emulator writes them, laid out field by field from the
documentation's tables (https://dhanhq.co/docs/v2/live-market-feed/, "Response Header" onwards),
written apart from the desk's parser (webapp/brokers/dhan/packets.py) so that each checks the other.

The docs number bytes from 1; the offsets here are 0-based. Everything is little-endian. The header's
"message length of the entire payload packet" is written as the whole packet's size (header included):
the docs do not say which, and neither the SDK nor the desk's parser reads it for known codes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from decimal import Decimal

SEGMENTS = {
    "IDX_I": 0,
    "NSE_EQ": 1,
    "NSE_FNO": 2,
    "NSE_CURRENCY": 3,
    "BSE_EQ": 4,
    "MCX_COMM": 5,
    "BSE_CURRENCY": 7,
    "BSE_FNO": 8,
}
TICKER, QUOTE, OI, PREV_CLOSE, FULL, DISCONNECT = 2, 4, 5, 6, 8, 50
SIZES = {TICKER: 16, QUOTE: 50, OI: 12, PREV_CLOSE: 16, FULL: 162, DISCONNECT: 10}

Level = tuple[Decimal, int, int]  # price, quantity, orders


def _packet(code: int, segment: str, security_id: int) -> bytearray:
    size = SIZES[code]
    data = bytearray(size)
    data[0] = code  # byte 1: feed response code
    struct.pack_into("<h", data, 1, size)  # bytes 2-3: int16 message length
    data[3] = SEGMENTS[segment]  # byte 4: exchange segment
    struct.pack_into("<i", data, 4, security_id)  # bytes 5-8: int32 security id
    return data


def _f32(data: bytearray, offset: int, value: Decimal | None) -> None:
    struct.pack_into("<f", data, offset, float(value or 0))


def _i32(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<i", data, offset, int(value))


def ticker(segment: str, security_id: int, ltp: Decimal, ltt: int) -> bytes:
    data = _packet(TICKER, segment, security_id)
    _f32(data, 8, ltp)  # bytes 9-12
    _i32(data, 12, ltt)  # bytes 13-16
    return bytes(data)


def prev_close(segment: str, security_id: int, close: Decimal, prev_oi: int = 0) -> bytes:
    data = _packet(PREV_CLOSE, segment, security_id)
    _f32(data, 8, close)
    _i32(data, 12, prev_oi)
    return bytes(data)


def open_interest(segment: str, security_id: int, oi: int) -> bytes:
    data = _packet(OI, segment, security_id)
    _i32(data, 8, oi)
    return bytes(data)


def disconnect(reason: int, segment: str = "IDX_I", security_id: int = 0) -> bytes:
    data = _packet(DISCONNECT, segment, security_id)
    struct.pack_into("<h", data, 8, reason)  # bytes 9-10
    return bytes(data)


def _trade(data: bytearray, fields: dict) -> None:
    """Bytes 9-34, the same in quote and full packets."""
    _f32(data, 8, fields["ltp"])  # 9-12 LTP
    struct.pack_into("<h", data, 12, fields.get("ltq", 0))  # 13-14 last traded quantity
    _i32(data, 14, fields.get("ltt", 0))  # 15-18 LTT
    _f32(data, 18, fields.get("atp"))  # 19-22 average trade price
    _i32(data, 22, fields.get("volume", 0))  # 23-26
    _i32(data, 26, fields.get("sell_qty", 0))  # 27-30 total sell quantity
    _i32(data, 30, fields.get("buy_qty", 0))  # 31-34 total buy quantity


def quote(segment: str, security_id: int, **fields) -> bytes:
    """fields: ltp, ltq, ltt, atp, volume, sell_qty, buy_qty, open, close (day), high, low."""
    data = _packet(QUOTE, segment, security_id)
    _trade(data, fields)
    for offset, name in ((34, "open"), (38, "close"), (42, "high"), (46, "low")):  # 35-50
        _f32(data, offset, fields.get(name))
    return bytes(data)


def full(segment: str, security_id: int, bids: Sequence[Level] = (), asks: Sequence[Level] = (), **fields) -> bytes:
    """quote's fields plus oi, oi_high, oi_low and up to five bid and ask levels."""
    data = _packet(FULL, segment, security_id)
    _trade(data, fields)
    _i32(data, 34, fields.get("oi", 0))  # 35-38
    _i32(data, 38, fields.get("oi_high", 0))  # 39-42
    _i32(data, 42, fields.get("oi_low", 0))  # 43-46
    for offset, name in ((46, "open"), (50, "close"), (54, "high"), (58, "low")):  # 47-62
        _f32(data, offset, fields.get(name))
    for level in range(5):  # 63-162: five 20-byte entries
        at = 62 + 20 * level
        bid = bids[level] if level < len(bids) else (Decimal(0), 0, 0)
        ask = asks[level] if level < len(asks) else (Decimal(0), 0, 0)
        _i32(data, at, bid[1])  # bid quantity
        _i32(data, at + 4, ask[1])  # ask quantity
        struct.pack_into("<h", data, at + 8, bid[2])  # bid orders
        struct.pack_into("<h", data, at + 10, ask[2])  # ask orders
        _f32(data, at + 12, bid[0])  # bid price
        _f32(data, at + 16, ask[0])  # ask price
    return bytes(data)
