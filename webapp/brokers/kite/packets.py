"""Kite ticker binary frames -> packets -> the port's Quote (reference/brokers.md §1.9).

A frame is big-endian: uint16 number of packets, then per packet a uint16 length and the packet.
The packet's length says its layout:

    8    ltp          token, last_price
    28   index quote  token, last_price, high, low, open, close, change
    32   index full   the 28 bytes, exchange_timestamp
    44   quote        token, last_price, last_traded_quantity, average_traded_price, volume_traded,
                      total_buy_quantity, total_sell_quantity, open, high, low, close
    184  full         the 44 bytes, last_trade_time, oi, oi_day_high, oi_day_low, exchange_timestamp,
                      then 10 depth entries of 12 bytes from offset 64 (5 bids, then 5 asks):
                      int32 quantity, int32 price, uint16 orders, 2 bytes padding

Integers are read unsigned, as pykiteconnect does ("I"); the index change field is signed.
Prices are whole paise (÷100); CDS prices ÷1e7 and BCD ÷1e4. The segment is token & 0xff.
Division is `Decimal.scaleb`, exact: 157370 paise is Decimal("1573.70"), never a float.
Parsing never raises on a malformed frame: it stops at the first packet that does not fit.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from webapp.brokers.base import DepthLevel, Quote
from webapp.timeutil import UTC

log = logging.getLogger(__name__)

SEGMENTS = {1: "NSE", 2: "NFO", 3: "CDS", 4: "BSE", 5: "BFO", 6: "BCD", 7: "MCX", 8: "MCXSX", 9: "INDICES"}
INDICES_SEGMENT = 9
_SCALE = {3: -7, 6: -4}  # decimal places of the price integers; everything else is paise
LTP, INDEX_QUOTE, INDEX_FULL, QUOTE, FULL = 8, 28, 32, 44, 184
DEPTH_OFFSET, DEPTH_ENTRY, DEPTH_LEVELS = 64, 12, 5

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">II")
_INDEX = struct.Struct(">IIIIIIi")  # token, ltp, high, low, open, close, change
_QUOTE = struct.Struct(">" + "I" * 11)
_FULL_TAIL = struct.Struct(">IIIII")  # last_trade_time, oi, oi_day_high, oi_day_low, exchange_timestamp
_DEPTH = struct.Struct(">IIH2x")


@dataclass(frozen=True)
class KitePacket:
    """One decoded packet, field names as pykiteconnect's ticks. `mode` is ltp, quote or full."""

    instrument_token: int
    mode: str
    tradable: bool
    last_price: Decimal
    last_traded_quantity: int | None = None
    average_traded_price: Decimal | None = None
    volume_traded: int | None = None
    total_buy_quantity: int | None = None
    total_sell_quantity: int | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    change: Decimal | None = None  # index packets only, as sent (bytes 24-28)
    last_trade_time: datetime | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    exchange_timestamp: datetime | None = None
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()

    @property
    def segment(self) -> int:
        return self.instrument_token & 0xFF


def price(value: int, token: int) -> Decimal:
    """Wire integer -> exact Decimal price for the token's segment."""
    return Decimal(value).scaleb(_SCALE.get(token & 0xFF, -2))


def stamp(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def parse_frame(data: bytes) -> list[KitePacket]:
    """Every packet of one binary frame; [] for a heartbeat (fewer than 2 bytes)."""
    if len(data) < 2:
        return []
    (count,) = _U16.unpack_from(data, 0)
    packets: list[KitePacket] = []
    offset = 2
    for _ in range(count):
        if offset + 2 > len(data):
            log.warning("stream=kite event=short_frame packets=%d parsed=%d", count, len(packets))
            break
        (length,) = _U16.unpack_from(data, offset)
        body = data[offset + 2 : offset + 2 + length]
        offset += 2 + length
        if len(body) < length:
            log.warning("stream=kite event=short_packet length=%d got=%d", length, len(body))
            break
        packet = parse_packet(body)
        if packet is not None:
            packets.append(packet)
    return packets


def parse_packet(body: bytes) -> KitePacket | None:
    """One packet by its length; None (logged) for a length this parser does not know."""
    if len(body) == LTP:
        token, ltp = _LTP.unpack(body)
        return KitePacket(token, "ltp", token & 0xFF != INDICES_SEGMENT, price(ltp, token))
    if len(body) in (INDEX_QUOTE, INDEX_FULL):
        return _index_packet(body)
    if len(body) in (QUOTE, FULL):
        return _quote_packet(body)
    log.warning("stream=kite event=unknown_packet length=%d", len(body))
    return None


def _index_packet(body: bytes) -> KitePacket:
    token, ltp, high, low, open_, close, change = _INDEX.unpack_from(body, 0)
    full = len(body) == INDEX_FULL
    (exchange_ts,) = struct.unpack_from(">I", body, INDEX_QUOTE) if full else (0,)
    return KitePacket(
        token,
        "full" if full else "quote",
        False,
        price(ltp, token),
        open=price(open_, token),
        high=price(high, token),
        low=price(low, token),
        close=price(close, token),
        change=price(change, token),
        exchange_timestamp=stamp(exchange_ts),
    )


def _quote_packet(body: bytes) -> KitePacket:
    token, ltp, ltq, atp, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack_from(body, 0)
    fields = dict(
        instrument_token=token,
        mode="quote",
        tradable=token & 0xFF != INDICES_SEGMENT,
        last_price=price(ltp, token),
        last_traded_quantity=ltq,
        average_traded_price=price(atp, token),
        volume_traded=volume,
        total_buy_quantity=buy_qty,
        total_sell_quantity=sell_qty,
        open=price(open_, token),
        high=price(high, token),
        low=price(low, token),
        close=price(close, token),
    )
    if len(body) == FULL:
        ltt, oi, oi_high, oi_low, exchange_ts = _FULL_TAIL.unpack_from(body, QUOTE)
        levels = tuple(_depth(body, DEPTH_OFFSET + i * DEPTH_ENTRY, token) for i in range(2 * DEPTH_LEVELS))
        fields.update(
            mode="full",
            last_trade_time=stamp(ltt),
            oi=oi,
            oi_day_high=oi_high,
            oi_day_low=oi_low,
            exchange_timestamp=stamp(exchange_ts),
            bids=levels[:DEPTH_LEVELS],
            asks=levels[DEPTH_LEVELS:],
        )
    return KitePacket(**fields)


def _depth(body: bytes, offset: int, token: int) -> DepthLevel:
    quantity, raw_price, orders = _DEPTH.unpack_from(body, offset)
    return DepthLevel(price=price(raw_price, token), quantity=quantity, orders=orders)


def to_quote(packet: KitePacket, received_at: datetime, symbol: tuple[str, str] | None = None) -> Quote:
    """The port's Quote. Empty depth levels (no price, no quantity) are left out.

    `symbol` is (exchange, tradingsymbol); without it the exchange comes from the token's segment
    and the tradingsymbol is empty. The time is the exchange's timestamp when the packet has one,
    else `received_at`.
    """
    exchange, tradingsymbol = symbol or (SEGMENTS.get(packet.segment, ""), "")

    def levels(side: tuple[DepthLevel, ...]) -> tuple[DepthLevel, ...]:
        return tuple(level for level in side if level.quantity or level.price)

    return Quote(
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        last_price=packet.last_price,
        volume=packet.volume_traded or 0,
        open=packet.open,
        high=packet.high,
        low=packet.low,
        close=packet.close,
        bids=levels(packet.bids),
        asks=levels(packet.asks),
        timestamp=packet.exchange_timestamp or received_at,
    )
