"""Builds Angel One SmartWebSocket v2 binary packets, byte for byte from Angel's WebSocket 2.0
documentation (https://smartapi.angelbroking.com/docs/WebSocket2, "Binary Response Structure").

Written from the docs' offset table, independently of the desk's parser
(webapp/brokers/angel/packets.py), so a round trip through both checks the layout twice; the SDK's
parser (SmartApi/smartWebSocketV2.py `_parse_binary_data`) is a third reader in the tests.
Inputs are wire values: prices in paise, times in epoch milliseconds. Everything is little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

LTP, QUOTE, SNAP_QUOTE = 1, 2, 3
SIZES = {LTP: 51, QUOTE: 123, SNAP_QUOTE: 379}
BUY, SELL = 1, 0  # the best-five flag, as the docs give it

# field -> (byte offset, struct format), in the docs' order
LAYOUT = {
    "subscription_mode": (0, "B"),
    "exchange_type": (1, "B"),
    # token: 25 bytes at 2, UTF-8, NUL padded
    "sequence_number": (27, "q"),
    "exchange_timestamp": (35, "q"),
    "last_traded_price": (43, "q"),
    "last_traded_quantity": (51, "q"),
    "average_traded_price": (59, "q"),
    "volume": (67, "q"),
    "total_buy_quantity": (75, "d"),
    "total_sell_quantity": (83, "d"),
    "open": (91, "q"),
    "high": (99, "q"),
    "low": (107, "q"),
    "close": (115, "q"),
    "last_traded_timestamp": (123, "q"),
    "open_interest": (131, "q"),
    "open_interest_change": (139, "d"),
    # best five: 10 entries of 20 bytes at 147
    "upper_circuit": (347, "q"),
    "lower_circuit": (355, "q"),
    "week52_high": (363, "q"),
    "week52_low": (371, "q"),
}
TOKEN_AT, TOKEN_SIZE = 2, 25
BEST_FIVE_AT = 147


def encode_packet(
    mode: int,
    exchange_type: int,
    token: str,
    fields: Mapping[str, int | float],
    depth: Sequence[tuple[int, int, int, int]] = (),
) -> bytes:
    """One packet of `mode`'s size. `fields` are wire values by LAYOUT name (missing ones are 0);
    `depth` is up to ten (flag, quantity, price paise, orders) entries, in wire order."""
    size = SIZES[mode]
    data = bytearray(size)
    values = {**fields, "subscription_mode": mode, "exchange_type": exchange_type}
    for name, (offset, fmt) in LAYOUT.items():
        if offset + struct.calcsize(fmt) <= size:
            struct.pack_into("<" + fmt, data, offset, values.get(name, 0))
    raw = token.encode()
    if len(raw) >= TOKEN_SIZE:
        raise ValueError("token too long")
    data[TOKEN_AT : TOKEN_AT + len(raw)] = raw
    if mode == SNAP_QUOTE:
        if len(depth) > 10:
            raise ValueError("at most ten best-five entries")
        for index, (flag, quantity, price, orders) in enumerate(depth):
            at = BEST_FIVE_AT + 20 * index
            struct.pack_into("<h", data, at, flag)
            struct.pack_into("<q", data, at + 2, quantity)
            struct.pack_into("<q", data, at + 10, price)
            struct.pack_into("<h", data, at + 18, orders)
    return bytes(data)


def error_frame(correlation_id: str, code: str, message: str) -> dict[str, str]:
    return {"correlationID": correlation_id, "errorCode": code, "errorMessage": message}
