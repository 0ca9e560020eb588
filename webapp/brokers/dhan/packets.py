"""Dhan live market feed v2 binary packets -> the port's Quote (reference/brokers-upstox-dhan.md §2.8;
https://dhanhq.co/docs/v2/live-market-feed/ and /annexure/; dhanhq 2.3.0 marketfeed.py).

Every response is LITTLE-ENDIAN and starts with an 8-byte header:

    u8 response code, u16 message length, u8 exchange segment (enum), u32 security id

then, by response code (offsets from the start of the packet):

    2  ticker      16 B  f32 ltp@8, i32 ltt@12
    4  quote       50 B  f32 ltp@8, i16 ltq@12, i32 ltt@14, f32 atp@18, i32 volume@22,
                         i32 total sell qty@26, i32 total buy qty@30, f32 open@34, close@38, high@42, low@46
    5  OI          12 B  i32 oi@8
    6  prev close  16 B  f32 previous close@8, i32 previous OI@12 (sent once on subscribe)
    7  status       8 B  market status, no payload
    8  full       162 B  as quote up to @30, then i32 oi@34, oi high@38, oi low@42, f32 open@46,
                         close@50, high@54, low@58, then 5 depth entries of 20 B from @62:
                         i32 bid qty, i32 ask qty, i16 bid orders, i16 ask orders, f32 bid price, f32 ask price
    50 disconnect  10 B  i16 reason@8 (805 too many connections, 806 no data plan, 807 token expired,
                         808 auth failed, 809 token invalid, 810 client id invalid, ...)

Counts are read unsigned, as the SDK does. Prices are float32 on the wire: each becomes the Decimal of
the float's exact value rounded half-even to the paisa (0.01), so 1510.4 (which float32 holds as
1510.4000244140625) is Decimal("1510.40"); no float arithmetic touches a price. A float32 is exact to
the paisa only below 2**17 (131072): above, its spacing is 0.0156 and the paisa can be off by one.
A frame may carry one packet or several back to back; parsing walks them by each code's known size
and never raises: it stops at the first packet that does not fit.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from webapp.brokers.base import DepthLevel, Quote
from webapp.timeutil import UTC

log = logging.getLogger(__name__)

INDEX, TICKER, QUOTE, OI, PREV_CLOSE, STATUS, FULL, DISCONNECT = 1, 2, 4, 5, 6, 7, 8, 50
SIZES = {TICKER: 16, QUOTE: 50, OI: 12, PREV_CLOSE: 16, STATUS: 8, FULL: 162, DISCONNECT: 10}
HEADER_SIZE, DEPTH_OFFSET, DEPTH_ENTRY, DEPTH_LEVELS = 8, 62, 20, 5

# the annexure's exchange segment enum; the desk's exchange for each (IDX_I rows are the NSE/BSE indices)
SEGMENT_CODES = {
    "IDX_I": 0,
    "NSE_EQ": 1,
    "NSE_FNO": 2,
    "NSE_CURRENCY": 3,
    "BSE_EQ": 4,
    "MCX_COMM": 5,
    "BSE_CURRENCY": 7,
    "BSE_FNO": 8,
}
SEGMENT_NAMES = {code: name for name, code in SEGMENT_CODES.items()}

# disconnect reasons (annexure "Data API Error"); those that mean "log in again" become AuthExpired
DISCONNECT_REASONS = {
    800: "internal server error",
    804: "requested number of instruments exceeds limit",
    805: "too many requests or connections",
    806: "Data APIs not subscribed",
    807: "access token is expired",
    808: "authentication failed: client id or access token invalid",
    809: "access token is invalid",
    810: "client id is invalid",
    814: "invalid request",
}
AUTH_REASONS = frozenset({806, 807, 808, 809, 810})

HEADER = struct.Struct("<BHBI")
_TICKER = struct.Struct("<fI")  # @8
_QUOTE = struct.Struct("<fHIfIIIffff")  # @8: ltp, ltq, ltt, atp, volume, sell qty, buy qty, open, close, high, low
_FULL = struct.Struct("<fHIfIIIIIIffff")  # @8: ... buy qty, oi, oi high, oi low, open, close, high, low
_DEPTH = struct.Struct("<IIHHff")
_OI = struct.Struct("<I")
_REASON = struct.Struct("<H")

PAISA = Decimal("0.01")
MAX_PRICE = 1e12


def price(value: float) -> Decimal | None:
    """A float32 wire price as an exact Decimal rounded to the paisa; None when not a finite number or
    beyond any price (garbage: the quantize would overflow the context's precision)."""
    if not math.isfinite(value) or abs(value) >= MAX_PRICE:
        return None
    return Decimal(value).quantize(PAISA, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class DhanPacket:
    """One decoded packet. `kind` is ticker, quote, oi, prev_close, status, full or disconnect."""

    code: int
    segment: int
    security_id: int
    kind: str
    last_price: Decimal | None = None
    last_quantity: int | None = None
    last_trade_time: int | None = None  # epoch seconds as sent (its base, UTC or IST, is unconfirmed)
    average_price: Decimal | None = None
    volume: int | None = None
    total_sell_quantity: int | None = None
    total_buy_quantity: int | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    open: Decimal | None = None
    close: Decimal | None = None  # quote/full: the day's close (post market only); prev_close: the previous close
    high: Decimal | None = None
    low: Decimal | None = None
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    reason: int | None = None  # disconnect

    @property
    def segment_name(self) -> str:
        return SEGMENT_NAMES.get(self.segment, str(self.segment))

    @property
    def key(self) -> str:
        """The stream token this packet is for: "<ExchangeSegment>|<SecurityId>"."""
        return f"{self.segment_name}|{self.security_id}"


def _depth(data: bytes, offset: int) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]:
    bids, asks = [], []
    for level in range(DEPTH_LEVELS):
        bid_qty, ask_qty, bid_orders, ask_orders, bid_price, ask_price = _DEPTH.unpack_from(
            data, offset + DEPTH_OFFSET + level * DEPTH_ENTRY
        )
        bid, ask = price(bid_price), price(ask_price)
        if bid and bid_qty:
            bids.append(DepthLevel(bid, bid_qty, bid_orders))
        if ask and ask_qty:
            asks.append(DepthLevel(ask, ask_qty, ask_orders))
    return tuple(bids), tuple(asks)


def parse_packet(data: bytes, offset: int = 0) -> tuple[DhanPacket | None, int]:
    """(the packet at `offset` or None when it is not one we read, its size); size 0: nothing fits."""
    if len(data) - offset < HEADER_SIZE:
        return None, 0
    code, length, segment, security_id = HEADER.unpack_from(data, offset)
    size = SIZES.get(code) or (length if length >= HEADER_SIZE else 0)
    if not size or len(data) - offset < size:
        return None, 0
    head = {"code": code, "segment": segment, "security_id": security_id}
    at = offset + HEADER_SIZE
    if code == TICKER:
        ltp, ltt = _TICKER.unpack_from(data, at)
        return DhanPacket(**head, kind="ticker", last_price=price(ltp), last_trade_time=ltt), size
    if code == QUOTE:
        ltp, ltq, ltt, atp, volume, sell, buy, open_, close, high, low = _QUOTE.unpack_from(data, at)
        packet = DhanPacket(
            **head,
            kind="quote",
            last_price=price(ltp),
            last_quantity=ltq,
            last_trade_time=ltt,
            average_price=price(atp),
            volume=volume,
            total_sell_quantity=sell,
            total_buy_quantity=buy,
            open=price(open_),
            close=price(close),
            high=price(high),
            low=price(low),
        )
        return packet, size
    if code == FULL:
        ltp, ltq, ltt, atp, volume, sell, buy, oi, oi_high, oi_low, open_, close, high, low = _FULL.unpack_from(
            data, at
        )
        bids, asks = _depth(data, offset)
        packet = DhanPacket(
            **head,
            kind="full",
            last_price=price(ltp),
            last_quantity=ltq,
            last_trade_time=ltt,
            average_price=price(atp),
            volume=volume,
            total_sell_quantity=sell,
            total_buy_quantity=buy,
            oi=oi,
            oi_day_high=oi_high,
            oi_day_low=oi_low,
            open=price(open_),
            close=price(close),
            high=price(high),
            low=price(low),
            bids=bids,
            asks=asks,
        )
        return packet, size
    if code == PREV_CLOSE:
        close, prev_oi = _TICKER.unpack_from(data, at)
        return DhanPacket(**head, kind="prev_close", close=price(close), oi=prev_oi), size
    if code == OI:
        (oi,) = _OI.unpack_from(data, at)
        return DhanPacket(**head, kind="oi", oi=oi), size
    if code == STATUS:
        return DhanPacket(**head, kind="status"), size
    if code == DISCONNECT:
        (reason,) = _REASON.unpack_from(data, at)
        return DhanPacket(**head, kind="disconnect", reason=reason), size
    return None, size  # the index packet (code 1, layout unpublished) and unknown codes are skipped


def parse_frame(data: bytes) -> list[DhanPacket]:
    """Every packet of one binary frame; never raises (a truncated tail is dropped and logged)."""
    packets: list[DhanPacket] = []
    offset = 0
    while offset < len(data):
        packet, size = parse_packet(data, offset)
        if not size:
            log.warning("stream=dhan event=bad_packet offset=%d length=%d", offset, len(data))
            break
        if packet is not None:
            packets.append(packet)
        offset += size
    return packets


def to_quote(
    packet: DhanPacket,
    received_at: datetime,
    symbol: tuple[str, str] | None = None,
    previous_close: Decimal | None = None,
) -> Quote:
    """The port's Quote from a ticker, quote or full packet. `close` is the previous close (from the
    prev-close packet Dhan sends on subscribe), not the packet's day close, which is sent only after
    the market closes. The time is when the frame arrived (aware UTC): the packet's trade time is an
    epoch whose base (UTC or IST) Dhan does not document."""
    exchange, tradingsymbol = symbol or (_exchange(packet.segment_name), "")
    return Quote(
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        last_price=packet.last_price if packet.last_price is not None else Decimal(0),
        volume=packet.volume or 0,
        open=packet.open or None,
        high=packet.high or None,
        low=packet.low or None,
        close=previous_close,
        bids=packet.bids,
        asks=packet.asks,
        timestamp=received_at.astimezone(UTC),
    )


def _exchange(segment_name: str) -> str:
    return {
        "NSE_EQ": "NSE",
        "BSE_EQ": "BSE",
        "NSE_FNO": "NFO",
        "BSE_FNO": "BFO",
        "NSE_CURRENCY": "CDS",
        "BSE_CURRENCY": "BCD",
        "MCX_COMM": "MCX",
        "IDX_I": "INDICES",
    }.get(segment_name, "")
