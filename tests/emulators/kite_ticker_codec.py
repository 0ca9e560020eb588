"""Builds Kite ticker binary frames, byte for byte from reference/brokers.md §1.9.

Written from the spec's offset table, independently of the desk's parser
(webapp/brokers/kite/packets.py), so a round trip through both checks the layout twice.
Inputs are wire integers: prices in paise (CDS in 1e-7, BCD in 1e-4 rupees), times in unix seconds.

    frame   = uint16 packet count, then per packet: uint16 length, packet bytes   (big-endian)
    ltp     = 8 bytes    quote = 44 bytes    full = 184 bytes
    index   = 28 bytes (quote) or 32 bytes (full)
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

HEARTBEAT = b"\x00"  # Kite's 1-byte heartbeat; clients ignore frames shorter than 2 bytes

# field -> byte offset, as listed in the spec; every field is a 4-byte big-endian integer
LTP_LAYOUT = {"instrument_token": 0, "last_price": 4}
QUOTE_LAYOUT = {
    **LTP_LAYOUT,
    "last_traded_quantity": 8,
    "average_traded_price": 12,
    "volume_traded": 16,
    "total_buy_quantity": 20,
    "total_sell_quantity": 24,
    "open": 28,
    "high": 32,
    "low": 36,
    "close": 40,
}
FULL_LAYOUT = {
    **QUOTE_LAYOUT,
    "last_trade_time": 44,
    "oi": 48,
    "oi_day_high": 52,
    "oi_day_low": 56,
    "exchange_timestamp": 60,
}
INDEX_LAYOUT = {"instrument_token": 0, "last_price": 4, "high": 8, "low": 12, "open": 16, "close": 20}
INDEX_CHANGE_OFFSET = 24  # signed: an index can fall
INDEX_TIMESTAMP_OFFSET = 28
SIZES = {"ltp": 8, "quote": 44, "full": 184, "index_quote": 28, "index_full": 32}
DEPTH_START, DEPTH_SIZE = 64, 12  # 10 entries: 5 bids then 5 asks


def _put(buffer: bytearray, layout: Mapping[str, int], wire: Mapping[str, int]) -> None:
    for name, offset in layout.items():
        struct.pack_into(">I", buffer, offset, wire.get(name, 0))


def encode_packet(mode: str, wire: Mapping[str, int], depth: Sequence[tuple[int, int, int]] = ()) -> bytes:
    """One packet. mode: ltp, quote, full, index_quote or index_full.

    depth (full only): up to 10 (quantity, price, orders) entries, bids first then asks; missing
    entries are zero.
    """
    buffer = bytearray(SIZES[mode])
    if mode.startswith("index"):
        _put(buffer, INDEX_LAYOUT, wire)
        struct.pack_into(">i", buffer, INDEX_CHANGE_OFFSET, wire.get("change", 0))
        if mode == "index_full":
            struct.pack_into(">I", buffer, INDEX_TIMESTAMP_OFFSET, wire.get("exchange_timestamp", 0))
        return bytes(buffer)
    _put(buffer, {"ltp": LTP_LAYOUT, "quote": QUOTE_LAYOUT, "full": FULL_LAYOUT}[mode], wire)
    if mode == "full":
        for index, (quantity, price, orders) in enumerate(depth[:10]):
            at = DEPTH_START + index * DEPTH_SIZE
            struct.pack_into(">I", buffer, at, quantity)
            struct.pack_into(">I", buffer, at + 4, price)
            struct.pack_into(">H", buffer, at + 8, orders)  # then 2 bytes of padding, left zero
    return bytes(buffer)


def encode_frame(packets: Sequence[bytes]) -> bytes:
    out = bytearray(struct.pack(">H", len(packets)))
    for packet in packets:
        out += struct.pack(">H", len(packet))
        out += packet
    return bytes(out)
