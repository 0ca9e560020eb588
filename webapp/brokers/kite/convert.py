"""Kite Connect v3 wire shapes <-> the port's normalized types.

Field names are Kite's own (brokers.md §1.5, §1.6). Kite sends IST wall-clock strings
"YYYY-MM-DD HH:MM:SS" and JSON numbers; numbers arrive here already as Decimal (the transport
parses floats with parse_float=Decimal) or int.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from webapp.brokers.base import (
    BrokerOrderStatus,
    DepthLevel,
    Funds,
    HistoricalBar,
    Holding,
    InstrumentRow,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Quote,
    Side,
    Trade,
    Unavailable,
)
from webapp.timeutil import IST, UTC

# Kite's transient words, in the order mock order_info.json shows them, plus the two seen on the forum.
PENDING_WORDS = {
    "PUT ORDER REQ RECEIVED",
    "VALIDATION PENDING",
    "OPEN PENDING",
    "MODIFY VALIDATION PENDING",
    "MODIFY PENDING",
    "CANCEL PENDING",
    "AMO REQ RECEIVED",
}
# Words that mean "live at the exchange": MODIFIED is an update of an open order, UPDATE is the
# postback word for a fill or change on an open order.
LIVE_WORDS = {"OPEN", "MODIFIED", "UPDATE"}
FINAL_WORDS = {
    "COMPLETE": BrokerOrderStatus.COMPLETE,
    "CANCELLED": BrokerOrderStatus.CANCELLED,
    "REJECTED": BrokerOrderStatus.REJECTED,
    "TRIGGER PENDING": BrokerOrderStatus.TRIGGER_PENDING,
}

# Cover orders (CO) and the retired bracket orders (BO) are intraday products: show them as MIS
# rather than failing a whole order-book read on an order placed outside the desk.
_PRODUCTS = {
    "CNC": Product.CNC,
    "MIS": Product.MIS,
    "MTF": Product.MTF,
    "NRML": Product.NRML,
    "CO": Product.MIS,
    "BO": Product.MIS,
}

INSTRUMENT_HEADER = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)


# ---------------------------------------------------------------------- scalars


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any) -> Decimal:
    return decimal_or_none(value) or Decimal("0")


def positive_or_none(value: Any) -> Decimal | None:
    """Kite sends 0 for "no price" (a MARKET order's price, a LIMIT order's trigger)."""
    number = decimal_or_none(value)
    return number if number else None


def whole(value: Any) -> int:
    return int(value or 0)


def ist_to_utc(text: Any) -> datetime | None:
    if not isinstance(text, str) or len(text) != 19:
        return None  # trades' order_timestamp is "HH:MM:SS" only: no date, no instant
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).astimezone(UTC)
    except ValueError:
        return None


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain digits ("1234.05", never "1.23405E+3") for forms and JSON."""
    return format(value, "f")


# ---------------------------------------------------------------------- enums


def product_from_kite(word: str) -> Product:
    try:
        return _PRODUCTS[word]
    except KeyError:
        raise Unavailable(f"Kite sent an unknown product {word!r}") from None


def order_type_from_kite(word: str) -> OrderType:
    try:
        return OrderType(word)
    except ValueError:
        raise Unavailable(f"Kite sent an unknown order type {word!r}") from None


def status_from_kite(word: str, filled: int, quantity: int) -> BrokerOrderStatus:
    word = (word or "").upper()
    if word in FINAL_WORDS:
        return FINAL_WORDS[word]
    if word in LIVE_WORDS:
        return BrokerOrderStatus.PARTIAL if 0 < filled < quantity else BrokerOrderStatus.OPEN
    # PENDING_WORDS and any word Kite adds later: not final, so the next sync reads it again.
    return BrokerOrderStatus.PENDING


# ---------------------------------------------------------------------- requests out


def order_form(request: OrderRequest, market_protection: Decimal | None) -> dict[str, str]:
    form = {
        "exchange": request.exchange,
        "tradingsymbol": request.tradingsymbol,
        "transaction_type": request.side.value,
        "quantity": str(request.quantity),
        "product": request.product.value,
        "order_type": request.order_type.value,
        "validity": request.validity.value,
    }
    if request.order_type in (OrderType.LIMIT, OrderType.SL) and request.price is not None:
        form["price"] = decimal_text(request.price)
    if request.order_type in (OrderType.SL, OrderType.SLM) and request.trigger_price is not None:
        form["trigger_price"] = decimal_text(request.trigger_price)
    if market_protection is not None:
        form["market_protection"] = decimal_text(market_protection)
    if request.tag:
        form["tag"] = request.tag
    if request.algo_id:
        form["algo_id"] = request.algo_id
    return form


def margin_row(request: OrderRequest) -> dict[str, Any]:
    return {
        "exchange": request.exchange,
        "tradingsymbol": request.tradingsymbol,
        "transaction_type": request.side.value,
        "variety": "regular",
        "product": request.product.value,
        "order_type": request.order_type.value,
        "quantity": request.quantity,
        "price": request.price or Decimal("0"),
        "trigger_price": request.trigger_price or Decimal("0"),
    }


# ---------------------------------------------------------------------- answers in


def order_from_kite(row: Mapping[str, Any]) -> Order:
    quantity, filled = whole(row.get("quantity")), whole(row.get("filled_quantity"))
    raw_status = str(row.get("status") or "")
    return Order(
        order_id=str(row["order_id"]),
        status=status_from_kite(raw_status, filled, quantity),
        exchange=row["exchange"],
        tradingsymbol=row["tradingsymbol"],
        side=Side(row["transaction_type"]),
        product=product_from_kite(row["product"]),
        order_type=order_type_from_kite(row["order_type"]),
        quantity=quantity,
        filled_quantity=filled,
        price=positive_or_none(row.get("price")),
        trigger_price=positive_or_none(row.get("trigger_price")),
        average_price=positive_or_none(row.get("average_price")),
        tag=row.get("tag") or None,
        status_message=row.get("status_message") or None,
        exchange_order_id=row.get("exchange_order_id") or None,
        placed_at=ist_to_utc(row.get("order_timestamp")),
        updated_at=ist_to_utc(row.get("exchange_update_timestamp") or row.get("exchange_timestamp")),
        raw_status=raw_status,
    )


def carries_tag(row: Mapping[str, Any], tag: str) -> bool:
    """Kite echoes the tag in `tag` and, on newer orders, in the `tags` list too."""
    return row.get("tag") == tag or tag in (row.get("tags") or ())


def trade_from_kite(row: Mapping[str, Any]) -> Trade:
    return Trade(
        trade_id=str(row["trade_id"]),
        order_id=str(row["order_id"]),
        exchange=row["exchange"],
        tradingsymbol=row["tradingsymbol"],
        side=Side(row["transaction_type"]),
        product=product_from_kite(row["product"]),
        quantity=whole(row.get("quantity")),
        price=money(row.get("average_price")),
        filled_at=ist_to_utc(row.get("fill_timestamp")) or ist_to_utc(row.get("exchange_timestamp")),
    )


def position_from_kite(row: Mapping[str, Any]) -> Position:
    return Position(
        exchange=row["exchange"],
        tradingsymbol=row["tradingsymbol"],
        product=product_from_kite(row["product"]),
        quantity=whole(row.get("quantity")),
        average_price=money(row.get("average_price")),
        last_price=decimal_or_none(row.get("last_price")),
        realised_pnl=money(row.get("realised")),
        unrealised_pnl=money(row.get("unrealised")),
        buy_quantity=whole(row.get("buy_quantity")),
        sell_quantity=whole(row.get("sell_quantity")),
    )


def holding_from_kite(row: Mapping[str, Any]) -> Holding:
    return Holding(
        exchange=row["exchange"],
        tradingsymbol=row["tradingsymbol"],
        quantity=whole(row.get("quantity")),
        average_price=money(row.get("average_price")),
        isin=row.get("isin") or None,
        last_price=decimal_or_none(row.get("last_price")),
        t1_quantity=whole(row.get("t1_quantity")),
    )


def funds_from_kite(margins: Mapping[str, Any]) -> Funds:
    """The equity segment: `available.cash` already includes intraday pay-in; Kite's `net`
    equals cash + collateral - utilised.debits, which is what Funds.available_margin computes."""
    equity = margins.get("equity") or {}
    available, utilised = equity.get("available") or {}, equity.get("utilised") or {}
    return Funds(
        available_cash=money(available.get("cash")),
        margin_used=money(utilised.get("debits")),
        collateral=money(available.get("collateral")),
        opening_balance=decimal_or_none(available.get("opening_balance")),
    )


def _depth(levels: Iterable[Mapping[str, Any]] | None) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(
            price=money(level.get("price")), quantity=whole(level.get("quantity")), orders=whole(level.get("orders"))
        )
        for level in levels or ()
        if whole(level.get("quantity"))
    )


def quote_from_kite(key: str, row: Mapping[str, Any]) -> Quote:
    exchange, _, symbol = key.partition(":")
    ohlc, depth = row.get("ohlc") or {}, row.get("depth") or {}
    return Quote(
        exchange=exchange,
        tradingsymbol=symbol,
        last_price=money(row.get("last_price")),
        volume=whole(row.get("volume")),
        open=decimal_or_none(ohlc.get("open")),
        high=decimal_or_none(ohlc.get("high")),
        low=decimal_or_none(ohlc.get("low")),
        close=decimal_or_none(ohlc.get("close")),
        lower_circuit=decimal_or_none(row.get("lower_circuit_limit")),
        upper_circuit=decimal_or_none(row.get("upper_circuit_limit")),
        bids=_depth(depth.get("buy")),
        asks=_depth(depth.get("sell")),
        timestamp=ist_to_utc(row.get("timestamp")),
    )


def instruments_from_csv(body: bytes) -> list[InstrumentRow]:
    """Kite's daily instrument dump; the body may still be gzipped if no Content-Encoding said so."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    reader = csv.DictReader(io.StringIO(body.decode("utf-8")))
    if tuple(reader.fieldnames or ()) != INSTRUMENT_HEADER:
        raise Unavailable("Kite sent an instrument list with an unexpected header")
    return [
        InstrumentRow(
            exchange=row["exchange"],
            tradingsymbol=row["tradingsymbol"],
            name=row["name"],
            exchange_token=int(row["exchange_token"]),
            tick_size=Decimal(row["tick_size"]),
            lot_size=int(row["lot_size"] or 1),
            instrument_token=int(row["instrument_token"]),
            instrument_type=row["instrument_type"],
            segment=row["segment"] or None,
        )
        for row in reader
    ]


# ---------------------------------------------------------------------- historical candles

# Kite's interval words for the desk's intervals in minutes (kite.trade/docs/connect/v3/historical)
HISTORICAL_INTERVALS = {1: "minute", 3: "3minute", 5: "5minute", 10: "10minute", 15: "15minute", 30: "30minute"}
HISTORICAL_INTERVALS[60] = "60minute"
# the longest range (days) one request may span per interval, as Kite answers "interval exceeds max limit"
HISTORICAL_MAX_DAYS = {1: 60, 3: 100, 5: 100, 10: 100, 15: 200, 30: 200, 60: 400}


def kite_time(value: datetime) -> str:
    """A range bound as the historical API reads it: IST wall-clock time, "yyyy-mm-dd hh:mm:ss"."""
    return value.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def candle_from_kite(row: Any) -> HistoricalBar:
    """One record of data.candles: [timestamp "2017-12-15T09:15:00+0530", open, high, low, close, volume(, oi)]."""
    if not isinstance(row, list) or len(row) < 6:
        raise ValueError("a candle is a list of at least six values")
    start = datetime.fromisoformat(row[0])
    if start.tzinfo is None:
        raise ValueError("a candle time without its UTC offset")
    prices = [decimal_or_none(v) for v in row[1:5]]
    if any(p is None for p in prices):
        raise ValueError("a candle price is not a number")
    return HistoricalBar(start.astimezone(UTC), *prices, int(row[5]))
