"""Angel One SmartWebSocket v2 binary packets -> the port's Quote (reference/brokers.md §4.1).

Each binary WebSocket message is one packet, LITTLE-endian, its layout chosen by the first byte
(the subscription mode):

    0   uint8     subscription mode        1 LTP, 2 Quote, 3 SnapQuote
    1   uint8     exchange type            1 nse_cm, 3 bse_cm (2 nse_fo, 4 bse_fo, 5 mcx_fo, ...)
    2   25 bytes  token                    ASCII, NUL-terminated ("2885")
    27  int64     sequence number
    35  int64     exchange timestamp       epoch milliseconds
    43  int64     last traded price        paise                           -- LTP ends: 51 bytes
    51  int64     last traded quantity
    59  int64     average traded price     paise
    67  int64     volume traded today
    75  double    total buy quantity
    83  double    total sell quantity
    91  int64     open, 99 high, 107 low, 115 close (paise)                -- Quote ends: 123 bytes
    123 int64     last traded timestamp
    131 int64     open interest
    139 double    open interest change %   (a dummy field, per Angel's docs)
    147 10 x 20   best five: int16 flag (1 buy, 0 sell), int64 quantity, int64 price (paise),
                  int16 number of orders
    347 int64     upper circuit, 355 lower circuit, 363 52-week high, 371 52-week low (paise)
                                                                           -- SnapQuote ends: 379 bytes

Prices are whole paise: Decimal(n).scaleb(-2) is exact (157370 -> Decimal("1573.70")). This
covers the cash segments the desk streams (nse_cm, bse_cm); currency derivatives use another
divisor and are never subscribed. Parsing never raises: a packet too short for its mode, or with
an unknown mode, is None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from webapp.brokers.base import DepthLevel, Quote
from webapp.timeutil import UTC

LTP, QUOTE, SNAP_QUOTE = 1, 2, 3
SIZES = {LTP: 51, QUOTE: 123, SNAP_QUOTE: 379}
EXCHANGE_TYPES = {"NSE": 1, "BSE": 3}  # the cash segments this desk streams
EXCHANGES = {number: name for name, number in EXCHANGE_TYPES.items()}
TOKEN_BYTES = 25
BEST_FIVE_AT, BEST_FIVE_ENTRY, BEST_FIVE_COUNT = 147, 20, 10
BUY_FLAG = 1
# plausible exchange timestamps (epoch ms): 2001-09-09 .. 2286-11-20; anything else is ignored
MIN_MS, MAX_MS = 10**12, 10**13

_HEAD = struct.Struct("<BB25sqqq")  # mode, exchange type, token, sequence, exchange ms, ltp
_QUOTE = struct.Struct("<qqqddqqqq")  # at 51: ltq, atp, volume, buy qty, sell qty, o, h, l, c
_SNAP = struct.Struct("<qqd")  # at 123: last trade time, oi, oi change %
_LEVEL = struct.Struct("<hqqh")  # flag, quantity, price, orders
_LIMITS = struct.Struct("<qqqq")  # at 347: upper, lower circuit, 52w high, 52w low


def paise(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def price_or_none(value: int) -> Decimal | None:
    return paise(value) if value > 0 else None


@dataclass(frozen=True)
class AngelPacket:
    mode: int
    exchange_type: int
    token: str
    sequence: int
    exchange_ms: int
    last_price: Decimal
    last_quantity: int | None = None
    average_price: Decimal | None = None
    volume: int | None = None
    total_buy_quantity: float | None = None
    total_sell_quantity: float | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    last_trade_time: int | None = None
    open_interest: int | None = None
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    upper_circuit: Decimal | None = None
    lower_circuit: Decimal | None = None
    week52_high: Decimal | None = None
    week52_low: Decimal | None = None

    @property
    def exchange(self) -> str:
        return EXCHANGES.get(self.exchange_type, "")

    @property
    def stream_token(self) -> str | None:
        """The desk's key for this packet's instrument ("NSE|2885"), None for other segments."""
        return f"{self.exchange}|{self.token}" if self.exchange else None

    @property
    def exchange_time(self) -> datetime | None:
        if not MIN_MS <= self.exchange_ms < MAX_MS:
            return None
        seconds, millis = divmod(self.exchange_ms, 1000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


def parse_packet(data: bytes) -> AngelPacket | None:
    """One packet; None when the mode is unknown or the bytes are too short for it."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < SIZES[LTP] or data[0] not in SIZES:
        return None
    mode = data[0]
    if len(data) < SIZES[mode]:
        return None
    _, exchange_type, raw_token, sequence, exchange_ms, ltp = _HEAD.unpack_from(data, 0)
    token = raw_token.split(b"\x00", 1)[0].decode("ascii", errors="replace")
    fields: dict = {}
    if mode in (QUOTE, SNAP_QUOTE):
        ltq, atp, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack_from(data, SIZES[LTP])
        fields.update(
            last_quantity=ltq,
            average_price=price_or_none(atp),
            volume=volume,
            total_buy_quantity=buy_qty,
            total_sell_quantity=sell_qty,
            open=price_or_none(open_),
            high=price_or_none(high),
            low=price_or_none(low),
            close=price_or_none(close),
        )
    if mode == SNAP_QUOTE:
        last_trade_time, open_interest, _ = _SNAP.unpack_from(data, SIZES[QUOTE])
        bids: list[DepthLevel] = []
        asks: list[DepthLevel] = []
        for index in range(BEST_FIVE_COUNT):
            flag, quantity, price, orders = _LEVEL.unpack_from(data, BEST_FIVE_AT + index * BEST_FIVE_ENTRY)
            if quantity <= 0 and price <= 0:
                continue  # an empty level
            (bids if flag == BUY_FLAG else asks).append(DepthLevel(paise(price), quantity, orders))
        upper, lower, high52, low52 = _LIMITS.unpack_from(data, BEST_FIVE_AT + BEST_FIVE_COUNT * BEST_FIVE_ENTRY)
        fields.update(
            last_trade_time=last_trade_time,
            open_interest=open_interest,
            bids=tuple(bids),
            asks=tuple(asks),
            upper_circuit=price_or_none(upper),
            lower_circuit=price_or_none(lower),
            week52_high=price_or_none(high52),
            week52_low=price_or_none(low52),
        )
    return AngelPacket(mode, exchange_type, token, sequence, exchange_ms, paise(ltp), **fields)


def to_quote(packet: AngelPacket, received_at: datetime, symbol: tuple[str, str] | None = None) -> Quote:
    """The port's Quote. `symbol` is (exchange, tradingsymbol); without it the exchange comes from
    the packet's exchange type and the tradingsymbol is empty. The time is the exchange timestamp
    when plausible, else `received_at`."""
    exchange, tradingsymbol = symbol or (packet.exchange, "")
    return Quote(
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        last_price=packet.last_price,
        volume=packet.volume or 0,
        open=packet.open,
        high=packet.high,
        low=packet.low,
        close=packet.close,
        lower_circuit=packet.lower_circuit,
        upper_circuit=packet.upper_circuit,
        bids=packet.bids,
        asks=packet.asks,
        timestamp=packet.exchange_time or received_at,
    )
