"""Translations between Upstox's words and units and the port's types (reference/brokers-upstox-dhan.md
§1.5-1.7). Upstox sends rupees as JSON numbers (read as Decimal, never float), times as
"YYYY-MM-DD HH:MM:SS" IST, statuses as lower-case words, products I/D/MTF and instruments as keys
("NSE_EQ|<ISIN>")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from webapp.brokers.base import (
    BrokerOrderStatus,
    DepthLevel,
    Funds,
    Holding,
    InstrumentRef,
    InstrumentRow,
    InvalidInput,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Quote,
    Side,
    Trade,
)
from webapp.timeutil import IST, UTC

SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ"}
EXCHANGES = {"NSE_EQ": "NSE", "BSE_EQ": "BSE"}
# Upstox has D (delivery; also F&O carry-forward), I (intraday) and MTF. NRML is D.
PRODUCTS = {Product.CNC: "D", Product.MIS: "I", Product.MTF: "MTF", Product.NRML: "D"}
PRODUCTS_BACK = {"D": Product.CNC, "I": Product.MIS, "MTF": Product.MTF, "CO": Product.MIS, "OCO": Product.MIS}
ORDER_TYPES = {t.value: t for t in OrderType}  # MARKET, LIMIT, SL, SL-M: the same words
PENDING_WORDS = frozenset(
    {
        "put order req received",
        "validation pending",
        "open pending",
        "after market order req received",
        "modify after market order req received",
    }
)
# Still live at the exchange while a change is in flight, or after a refused change.
LIVE_WORDS = frozenset(
    {
        "open",
        "modify validation pending",
        "modify pending",
        "modified",
        "not modified",
        "cancel pending",
        "not cancelled",
    }
)
FINAL_WORDS = {
    "complete": BrokerOrderStatus.COMPLETE,
    "rejected": BrokerOrderStatus.REJECTED,
    "cancelled": BrokerOrderStatus.CANCELLED,
    "cancelled after market order": BrokerOrderStatus.CANCELLED,
}
ZERO = Decimal("0")


def instrument_key(exchange: str, isin: str | None) -> str:
    """ "NSE_EQ|<ISIN>": how Upstox names an equity (§1.5); refused without an ISIN."""
    segment = SEGMENTS.get((exchange or "").upper())
    if segment is None:
        raise InvalidInput(f"Upstox trades NSE and BSE equities here, not {exchange}")
    if not isin or not isin.strip():
        raise InvalidInput("Upstox needs the instrument's ISIN (it keys equities by NSE_EQ|<ISIN>)")
    return f"{segment}|{isin.strip().upper()}"


def price(value: Decimal | None) -> Decimal:
    return value if value is not None else ZERO


def place_body(request: OrderRequest, key: str, market_protection: Decimal | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "quantity": request.quantity,
        "product": PRODUCTS[request.product],
        "validity": request.validity.value,
        "price": price(request.price) if request.order_type in (OrderType.LIMIT, OrderType.SL) else ZERO,
        "tag": request.tag or None,
        "instrument_token": key,
        "order_type": request.order_type.value,
        "transaction_type": request.side.value,
        "disclosed_quantity": 0,
        "trigger_price": price(request.trigger_price) if request.order_type in (OrderType.SL, OrderType.SLM) else ZERO,
        "is_amo": False,
        "slice": False,
    }
    if body["tag"] is None:
        del body["tag"]
    if market_protection is not None:
        body["market_protection"] = market_protection
    return body


def dec(value: Any, default: Decimal | None = ZERO) -> Decimal | None:
    if value is None or value == "":
        return default
    return value if isinstance(value, Decimal) else Decimal(str(value))


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text)
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=IST)).astimezone(UTC)
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).astimezone(UTC)
    except ValueError:
        return None


def status_of(word: str, filled: int) -> BrokerOrderStatus:
    word = (word or "").strip().lower()
    if word in FINAL_WORDS:
        return FINAL_WORDS[word]
    if word == "trigger pending":
        return BrokerOrderStatus.TRIGGER_PENDING
    if word in PENDING_WORDS:
        return BrokerOrderStatus.PENDING
    if word in LIVE_WORDS:
        return BrokerOrderStatus.PARTIAL if filled > 0 else BrokerOrderStatus.OPEN
    raise ValueError(f"unknown Upstox order status {word!r}")


def _symbol(row: Mapping[str, Any]) -> str:
    """The desk's symbol: Upstox's order details name NSE cash orders "SBIN-EQ" where the book says
    "SBIN" (the documented samples differ), so the "-EQ" series suffix of a cash row is dropped."""
    symbol = str(row.get("trading_symbol") or row.get("tradingsymbol") or "")
    if symbol.endswith("-EQ") and str(row.get("instrument_token") or "").split("|", 1)[0] in EXCHANGES:
        symbol = symbol[:-3]
    return symbol


def _exchange(row: Mapping[str, Any]) -> str:
    key = str(row.get("instrument_token") or "")
    return EXCHANGES.get(key.split("|", 1)[0], str(row.get("exchange") or "NSE"))


def order_from_row(row: Mapping[str, Any]) -> Order:
    filled = int(row.get("filled_quantity") or 0)
    word = str(row["status"])
    average = dec(row.get("average_price"), None)
    return Order(
        order_id=str(row["order_id"]),
        status=status_of(word, filled),
        exchange=_exchange(row),
        tradingsymbol=_symbol(row),
        side=Side(row["transaction_type"]),
        product=PRODUCTS_BACK[str(row["product"])],
        order_type=ORDER_TYPES[str(row["order_type"])],
        quantity=int(row["quantity"]),
        filled_quantity=filled,
        price=dec(row.get("price"), None) or None,
        trigger_price=dec(row.get("trigger_price"), None) or None,
        average_price=average if average else None,
        tag=row.get("tag") or None,
        status_message=row.get("status_message") or None,
        exchange_order_id=row.get("exchange_order_id") or None,
        placed_at=parse_time(row.get("order_timestamp")),
        updated_at=parse_time(row.get("exchange_timestamp")) or parse_time(row.get("order_timestamp")),
        raw_status=word,
    )


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    return Trade(
        trade_id=str(row["trade_id"]),
        order_id=str(row["order_id"]),
        exchange=_exchange(row),
        tradingsymbol=_symbol(row),
        side=Side(row["transaction_type"]),
        product=PRODUCTS_BACK[str(row["product"])],
        quantity=int(row["quantity"]),
        price=dec(row["average_price"]),
        filled_at=parse_time(row.get("exchange_timestamp")),
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    return Position(
        exchange=_exchange(row),
        tradingsymbol=_symbol(row),
        product=PRODUCTS_BACK[str(row["product"])],
        quantity=int(row["quantity"]),
        average_price=dec(row.get("average_price")),
        last_price=dec(row.get("last_price"), None),
        realised_pnl=dec(row.get("realised")),
        unrealised_pnl=dec(row.get("unrealised")),
        buy_quantity=int(row.get("day_buy_quantity") or 0) + int(row.get("overnight_buy_quantity") or 0),
        sell_quantity=int(row.get("day_sell_quantity") or 0) + int(row.get("overnight_sell_quantity") or 0),
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    return Holding(
        exchange=_exchange(row),
        tradingsymbol=_symbol(row),
        quantity=int(row["quantity"]),
        average_price=dec(row.get("average_price")),
        isin=row.get("isin") or None,
        last_price=dec(row.get("last_price"), None),
        t1_quantity=int(row.get("t1_quantity") or 0),
    )


def funds_from_data(data: Mapping[str, Any]) -> Funds:
    equity = data["equity"]
    available = dec(equity["available_margin"])
    used = dec(equity.get("used_margin"))
    # Funds.available_margin = available_cash + collateral - margin_used: Upstox's available_margin is
    # already net of what is used, so the cash the port sees is available + used.
    return Funds(available_cash=available + used, margin_used=used)


def quote_from_data(ref: InstrumentRef, data: Mapping[str, Any]) -> Quote:
    ohlc = data.get("ohlc") or {}
    depth = data.get("depth") or {}

    def levels(side: str) -> tuple[DepthLevel, ...]:
        return tuple(
            DepthLevel(dec(level["price"]), int(level.get("quantity") or 0), int(level.get("orders") or 0))
            for level in depth.get(side) or ()
            if level.get("quantity")
        )

    stamp = data.get("last_trade_time")
    when = None
    if stamp and str(stamp).isdigit():
        when = datetime.fromtimestamp(int(stamp) / 1000, UTC)
    return Quote(
        exchange=ref.exchange,
        tradingsymbol=ref.tradingsymbol,
        last_price=dec(data["last_price"]),
        volume=int(data.get("volume") or 0),
        open=dec(ohlc.get("open"), None),
        high=dec(ohlc.get("high"), None),
        low=dec(ohlc.get("low"), None),
        close=dec(ohlc.get("close"), None),
        lower_circuit=dec(data.get("lower_circuit_limit"), None),
        upper_circuit=dec(data.get("upper_circuit_limit"), None),
        bids=levels("buy"),
        asks=levels("sell"),
        timestamp=when,
    )


def instrument_from_record(record: Mapping[str, Any]) -> InstrumentRow | None:
    """A cash-segment row of the JSON instrument file, or None for what the desk does not trade."""
    segment = str(record.get("segment") or "")
    if segment not in EXCHANGES or str(record.get("instrument_type") or "EQ") not in ("EQ", "BE", "SM", "ST"):
        return None
    tick = dec(record.get("tick_size"), Decimal("5")) / 100  # the file gives the tick in paise
    return InstrumentRow(
        exchange=EXCHANGES[segment],
        tradingsymbol=str(record["trading_symbol"]),
        name=str(record.get("name") or record["trading_symbol"]),
        exchange_token=int(record["exchange_token"]),
        tick_size=tick.normalize() if tick else Decimal("0.05"),
        lot_size=int(record.get("lot_size") or 1),
        instrument_type=str(record.get("instrument_type") or "EQ"),
        segment=segment,
    )
