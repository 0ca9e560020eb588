"""Angel One SmartAPI words and rows <-> the port's normalized types.

Field names are Angel's own spelling: `orderid`, `uniqueorderid`, `ordertag`, `symboltoken`,
`producttype`, `filledshares`, `averageprice`, `updatetime` ("05-Dec-2026 09:15:01", IST) and so on.
Prices come in rupees (JSON numbers or strings, parsed into Decimal); quantities are strings in the
order book. NSE equities trade as "<SYMBOL>-EQ"; the desk's symbol is the part before the series.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from webapp.brokers.base import (
    BrokerOrderStatus,
    DepthLevel,
    Funds,
    HistoricalBar,
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
    Validity,
)
from webapp.timeutil import IST, UTC, utcnow

PRODUCT_TO_WIRE = {
    Product.CNC: "DELIVERY",
    Product.MIS: "INTRADAY",
    Product.NRML: "CARRYFORWARD",
    Product.MTF: "MARGIN",  # Angel's "Margin Delivery"
}
# BO (bracket order) is intraday; the desk never sends it but may find it in a book.
PRODUCT_FROM_WIRE = {v: k for k, v in PRODUCT_TO_WIRE.items()} | {"BO": Product.MIS}
ORDER_TYPE_TO_WIRE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.SL: "STOPLOSS_LIMIT",
    OrderType.SLM: "STOPLOSS_MARKET",
}
ORDER_TYPE_FROM_WIRE = {v: k for k, v in ORDER_TYPE_TO_WIRE.items()}
VALIDITY_TO_WIRE = {Validity.DAY: "DAY", Validity.IOC: "IOC"}
# Angel's order status words (lower case in the book). Words for a request still in flight are
# PENDING; "modified"/"not modified"/"not cancelled" leave a live order live.
STATUS_FROM_WIRE = {
    "open": BrokerOrderStatus.OPEN,
    "complete": BrokerOrderStatus.COMPLETE,
    "rejected": BrokerOrderStatus.REJECTED,
    "cancelled": BrokerOrderStatus.CANCELLED,
    "trigger pending": BrokerOrderStatus.TRIGGER_PENDING,
    "modified": BrokerOrderStatus.OPEN,
    "not modified": BrokerOrderStatus.OPEN,
    "not cancelled": BrokerOrderStatus.OPEN,
}
PENDING_WORDS = (
    "open pending",
    "validation pending",
    "put order req received",
    "modify validation pending",
    "modify pending",
    "modify order req received",
    "cancel pending",
    "cancel order req received",
    "after market order req received",
)
# Candle intervals in minutes -> Angel's word and the most days one getCandleData request may span.
INTERVALS = {
    1: ("ONE_MINUTE", 30),
    3: ("THREE_MINUTE", 60),
    5: ("FIVE_MINUTE", 100),
    10: ("TEN_MINUTE", 100),
    15: ("FIFTEEN_MINUTE", 200),
    30: ("THIRTY_MINUTE", 200),
    60: ("ONE_HOUR", 400),
    375: ("ONE_DAY", 2000),
}
ZERO = Decimal("0")


def dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def opt_dec(value: Any) -> Decimal | None:
    number = dec(value)
    return number if number else None


def num(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(Decimal(str(value)))


def wire_symbol(exchange: str, symbol: str) -> str:
    """Angel's trading symbol: NSE equities carry their series ("INFY-EQ")."""
    return f"{symbol}-EQ" if exchange == "NSE" and "-" not in symbol else symbol


def desk_symbol(symbol: Any) -> str:
    return str(symbol or "").removesuffix("-EQ")


def angel_time(value: Any) -> datetime | None:
    """ "05-Dec-2026 09:15:01" (IST) as aware UTC; None when blank or unreadable."""
    text = str(value or "").strip()
    for fmt in ("%d-%b-%Y %H:%M:%S", "%d-%b-%Y %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST).astimezone(UTC)
        except ValueError:
            continue
    return None


def status_of(word: Any, filled: int, quantity: int) -> BrokerOrderStatus:
    text = str(word or "").strip().lower()
    status = STATUS_FROM_WIRE.get(text)
    if status is None:
        return BrokerOrderStatus.PENDING  # in flight, or a word we do not know: never final
    if status is BrokerOrderStatus.OPEN and 0 < filled < quantity:
        return BrokerOrderStatus.PARTIAL
    return status


# ---------------------------------------------------------------------------- requests


def place_body(request: OrderRequest, tag: str) -> dict[str, Any]:
    stop = request.order_type in (OrderType.SL, OrderType.SLM)
    body: dict[str, Any] = {
        "variety": "STOPLOSS" if stop else "NORMAL",
        "tradingsymbol": wire_symbol(request.exchange, request.tradingsymbol),
        "symboltoken": str(int(request.exchange_token)),
        "transactiontype": request.side.value,
        "exchange": request.exchange,
        "ordertype": ORDER_TYPE_TO_WIRE[request.order_type],
        "producttype": PRODUCT_TO_WIRE[request.product],
        "duration": VALIDITY_TO_WIRE[request.validity],
        "price": str(request.price) if request.order_type in (OrderType.LIMIT, OrderType.SL) else "0",
        "triggerprice": str(request.trigger_price) if stop else "0",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": str(request.quantity),
    }
    if tag:
        body["ordertag"] = tag
    return body


def modify_body(
    row: Mapping[str, Any],
    *,
    quantity: int | None,
    price: Decimal | None,
    trigger_price: Decimal | None,
    order_type: OrderType | None,
    validity: Validity | None,
) -> dict[str, Any]:
    """Angel's modifyOrder wants the whole order again: the current row with the changes applied."""
    wire_type = ORDER_TYPE_TO_WIRE[order_type] if order_type else str(row.get("ordertype") or "")
    if wire_type not in ORDER_TYPE_FROM_WIRE:
        raise InvalidInput(f"Angel One order type {wire_type!r} cannot be modified by the desk")
    stop = wire_type in ("STOPLOSS_LIMIT", "STOPLOSS_MARKET")
    new_price = price if price is not None else dec(row.get("price"))
    new_trigger = trigger_price if trigger_price is not None else dec(row.get("triggerprice"))
    return {
        "variety": "STOPLOSS" if stop else "NORMAL",
        "orderid": str(row.get("orderid")),
        "ordertype": wire_type,
        "producttype": str(row.get("producttype") or ""),
        "duration": VALIDITY_TO_WIRE[validity] if validity else str(row.get("duration") or "DAY"),
        "price": str(new_price) if wire_type in ("LIMIT", "STOPLOSS_LIMIT") else "0",
        "triggerprice": str(new_trigger) if stop else "0",
        "quantity": str(quantity if quantity is not None else num(row.get("quantity"))),
        "tradingsymbol": str(row.get("tradingsymbol") or ""),
        "symboltoken": str(row.get("symboltoken") or ""),
        "exchange": str(row.get("exchange") or ""),
    }


def margin_position(request: OrderRequest, price: Decimal) -> dict[str, Any]:
    return {
        "exchange": request.exchange,
        "qty": request.quantity,
        "price": price,
        "productType": PRODUCT_TO_WIRE[request.product],
        "token": str(int(request.exchange_token)),
        "tradeType": request.side.value,
        "orderType": ORDER_TYPE_TO_WIRE[request.order_type],
    }


# ---------------------------------------------------------------------------- rows


def order_from_row(row: Mapping[str, Any]) -> Order:
    quantity, filled = num(row["quantity"]), num(row.get("filledshares"))
    word = row.get("orderstatus") or row.get("status")
    order_type = ORDER_TYPE_FROM_WIRE[str(row["ordertype"])]
    return Order(
        order_id=str(row["orderid"]),
        status=status_of(word, filled, quantity),
        exchange=str(row["exchange"]),
        tradingsymbol=desk_symbol(row["tradingsymbol"]),
        side=Side(str(row["transactiontype"])),
        product=PRODUCT_FROM_WIRE[str(row["producttype"])],
        order_type=order_type,
        quantity=quantity,
        filled_quantity=filled,
        price=opt_dec(row.get("price")),
        trigger_price=opt_dec(row.get("triggerprice")),
        average_price=opt_dec(row.get("averageprice")),
        tag=str(row.get("ordertag") or "") or None,
        status_message=str(row.get("text") or "") or None,
        exchange_order_id=str(row.get("exchangeorderid") or "") or None,
        updated_at=angel_time(row.get("updatetime")),
        raw_status=str(word or ""),
    )


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    filled_at = None
    stamp = str(row.get("filltime") or "").strip()
    if stamp:
        moment = time.fromisoformat(stamp)
        filled_at = datetime.combine(utcnow().astimezone(IST).date(), moment, tzinfo=IST).astimezone(UTC)
    return Trade(
        trade_id=str(row["fillid"]),
        order_id=str(row["orderid"]),
        exchange=str(row["exchange"]),
        tradingsymbol=desk_symbol(row["tradingsymbol"]),
        side=Side(str(row["transactiontype"])),
        product=PRODUCT_FROM_WIRE[str(row["producttype"])],
        quantity=num(row["fillsize"]),
        price=dec(row["fillprice"]),
        filled_at=filled_at,
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    net = num(row["netqty"])
    average = dec(row.get("netprice") or row.get("avgnetprice"))
    if net == 0:
        average = ZERO
    return Position(
        exchange=str(row["exchange"]),
        tradingsymbol=desk_symbol(row["tradingsymbol"]),
        product=PRODUCT_FROM_WIRE[str(row["producttype"])],
        quantity=net,
        average_price=average,
        last_price=opt_dec(row.get("ltp")),
        realised_pnl=dec(row.get("realised")),
        unrealised_pnl=dec(row.get("unrealised")),
        buy_quantity=num(row.get("buyqty")),
        sell_quantity=num(row.get("sellqty")),
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    return Holding(
        exchange=str(row["exchange"]),
        tradingsymbol=desk_symbol(row["tradingsymbol"]),
        quantity=num(row["quantity"]),
        average_price=dec(row["averageprice"]),
        isin=str(row.get("isin") or "") or None,
        last_price=opt_dec(row.get("ltp")),
        t1_quantity=num(row.get("t1quantity")),
    )


def funds_from_rms(data: Mapping[str, Any]) -> Funds:
    """getRMS: availablecash is the day's cash, utiliseddebits what orders and trades took, collateral
    the pledge margin; their balance is Angel's `net`."""
    return Funds(
        available_cash=dec(data["availablecash"]),
        margin_used=dec(data.get("utiliseddebits")),
        collateral=dec(data.get("collateral")),
    )


def quote_from_row(ref: InstrumentRef, row: Mapping[str, Any]) -> Quote:
    depth = row.get("depth") or {}

    def levels(side: str) -> tuple[DepthLevel, ...]:
        return tuple(
            DepthLevel(dec(level["price"]), num(level.get("quantity")), num(level.get("orders")))
            for level in depth.get(side) or ()
            if dec(level.get("price"))
        )

    return Quote(
        exchange=ref.exchange,
        tradingsymbol=ref.tradingsymbol,
        last_price=dec(row["ltp"]),
        volume=num(row.get("tradeVolume")),
        open=opt_dec(row.get("open")),
        high=opt_dec(row.get("high")),
        low=opt_dec(row.get("low")),
        close=opt_dec(row.get("close")),
        lower_circuit=opt_dec(row.get("lowerCircuit")),
        upper_circuit=opt_dec(row.get("upperCircuit")),
        bids=levels("buy"),
        asks=levels("sell"),
        timestamp=angel_time(row.get("exchFeedTime")),
    )


def candle_from_row(row: Any) -> HistoricalBar:
    stamp, o, h, low, c, volume = row[:6]
    return HistoricalBar(
        start=datetime.fromisoformat(str(stamp)).astimezone(UTC),
        open=dec(o),
        high=dec(h),
        low=dec(low),
        close=dec(c),
        volume=num(volume),
    )


def instrument_from_row(row: Mapping[str, Any]) -> InstrumentRow | None:
    """A row of OpenAPIScripMaster.json (tick size in paise); None for what the desk does not trade
    (only cash equities of NSE and BSE: Angel's master also lists F&O, commodities and indices)."""
    exchange = str(row.get("exch_seg") or "")
    if exchange not in ("NSE", "BSE") or str(row.get("instrumenttype") or ""):
        return None
    symbol = str(row["symbol"])
    if exchange == "NSE" and not symbol.endswith("-EQ"):
        return None
    return InstrumentRow(
        exchange=exchange,
        tradingsymbol=desk_symbol(symbol),
        name=str(row.get("name") or ""),
        exchange_token=int(str(row["token"])),
        tick_size=(dec(row.get("tick_size")) / 100).quantize(Decimal("0.0001")),
        lot_size=max(num(row.get("lotsize")), 1),
        instrument_type="EQ",
        segment=exchange,
    )
