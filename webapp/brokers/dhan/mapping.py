"""Translations between DhanHQ v2's words and units and the port's types (reference §2.5-2.7).

Dhan sends prices in rupees as JSON numbers (read as Decimal), times as "YYYY-MM-DD HH:MM:SS" in
IST, and its own words for products (CNC/INTRADAY/MARGIN/MTF), order types (LIMIT/MARKET/
STOP_LOSS/STOP_LOSS_MARKET) and statuses (TRANSIT/PENDING/PART_TRADED/TRADED/REJECTED/CANCELLED/
EXPIRED).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from webapp.timeutil import IST, UTC

SEGMENTS = {
    "NSE": "NSE_EQ",
    "BSE": "BSE_EQ",
    "NFO": "NSE_FNO",
    "BFO": "BSE_FNO",
    "CDS": "NSE_CURRENCY",
    "MCX": "MCX_COMM",
}
EXCHANGES = {segment: exchange for exchange, segment in SEGMENTS.items()}
PRODUCTS = {Product.CNC: "CNC", Product.MIS: "INTRADAY", Product.NRML: "MARGIN", Product.MTF: "MTF"}
PRODUCTS_BACK = {word: product for product, word in PRODUCTS.items()} | {"CO": Product.MIS, "BO": Product.MIS}
ORDER_TYPES = {
    OrderType.LIMIT: "LIMIT",
    OrderType.MARKET: "MARKET",
    OrderType.SL: "STOP_LOSS",
    OrderType.SLM: "STOP_LOSS_MARKET",
}
ORDER_TYPES_BACK = {word: kind for kind, word in ORDER_TYPES.items()}
STATUSES = {
    "TRANSIT": BrokerOrderStatus.PENDING,
    "PENDING": BrokerOrderStatus.OPEN,
    "PART_TRADED": BrokerOrderStatus.PARTIAL,
    "TRADED": BrokerOrderStatus.COMPLETE,
    "REJECTED": BrokerOrderStatus.REJECTED,
    "CANCELLED": BrokerOrderStatus.CANCELLED,
    "EXPIRED": BrokerOrderStatus.CANCELLED,  # an unfilled DAY order at the close: nothing more will fill
    "CLOSED": BrokerOrderStatus.COMPLETE,
    "TRIGGERED": BrokerOrderStatus.OPEN,
}
WIRE_TIME = "%Y-%m-%d %H:%M:%S"
ZERO = Decimal("0")


def segment(exchange: str) -> str:
    try:
        return SEGMENTS[exchange]
    except KeyError:
        raise InvalidInput(f"Dhan does not trade on {exchange}") from None


def money(value: Any) -> Decimal:
    if value in (None, ""):
        return ZERO
    return Decimal(str(value))


def wire_price(value: Decimal | None) -> Any:
    """A price as Dhan takes it: a JSON number (exact), 0 when there is none."""
    return value if value else 0


def place_body(request: OrderRequest, client_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dhanClientId": client_id,
        "transactionType": request.side.value,
        "exchangeSegment": segment(request.exchange),
        "productType": PRODUCTS[request.product],
        "orderType": ORDER_TYPES[request.order_type],
        "validity": request.validity.value,
        "securityId": str(int(request.exchange_token)),
        "quantity": request.quantity,
        "disclosedQuantity": 0,
        "price": wire_price(request.price) if request.order_type in (OrderType.LIMIT, OrderType.SL) else 0,
        "triggerPrice": wire_price(request.trigger_price) if request.order_type in (OrderType.SL, OrderType.SLM) else 0,
        "afterMarketOrder": False,
    }
    if request.tag:
        body["correlationId"] = request.tag
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
    """Dhan's modify takes the full order shape: unchanged fields are echoed from the current row."""
    kind = order_type or ORDER_TYPES_BACK.get(str(row.get("orderType")), OrderType.LIMIT)
    new_price = price if price is not None else money(row.get("price"))
    new_trigger = trigger_price if trigger_price is not None else money(row.get("triggerPrice"))
    return {
        "orderId": str(row["orderId"]),
        "orderType": ORDER_TYPES[kind],
        "legName": "",
        "quantity": quantity if quantity is not None else int(row["quantity"]),
        "price": wire_price(new_price) if kind in (OrderType.LIMIT, OrderType.SL) else 0,
        "disclosedQuantity": 0,
        "triggerPrice": wire_price(new_trigger) if kind in (OrderType.SL, OrderType.SLM) else 0,
        "validity": (validity.value if validity else str(row.get("validity") or "DAY")),
    }


def wire_time(value: Any) -> datetime | None:
    text = str(value or "").strip()
    if not text or text.startswith("0001"):
        return None
    try:
        return datetime.strptime(text[:19], WIRE_TIME).replace(tzinfo=IST).astimezone(UTC)
    except ValueError:
        return None


def _exchange(row: Mapping[str, Any]) -> str:
    word = str(row.get("exchangeSegment") or "")
    return EXCHANGES.get(word, word)


def order_from_row(row: Mapping[str, Any]) -> Order:
    word = str(row["orderStatus"]).upper()
    status = STATUSES.get(word)
    if status is None:
        raise ValueError(f"unknown Dhan status {word!r}")
    filled = int(row.get("filledQty") or 0)
    quantity = int(row["quantity"])
    if status is BrokerOrderStatus.OPEN and filled:
        status = BrokerOrderStatus.PARTIAL
    kind = ORDER_TYPES_BACK[str(row["orderType"])]
    if status is BrokerOrderStatus.OPEN and kind in (OrderType.SL, OrderType.SLM):
        status = BrokerOrderStatus.TRIGGER_PENDING
    average = money(row.get("averageTradedPrice"))
    price = money(row.get("price"))
    trigger = money(row.get("triggerPrice"))
    return Order(
        order_id=str(row["orderId"]),
        status=status,
        exchange=_exchange(row),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        side=Side(str(row["transactionType"]).upper()),
        product=PRODUCTS_BACK[str(row["productType"])],
        order_type=kind,
        quantity=quantity,
        filled_quantity=filled,
        price=price or None,
        trigger_price=trigger or None,
        average_price=average or None,
        tag=str(row.get("correlationId") or "") or None,
        status_message=str(row.get("omsErrorDescription") or "") or None,
        exchange_order_id=str(row.get("exchangeOrderId") or "") or None,
        placed_at=wire_time(row.get("createTime")),
        updated_at=wire_time(row.get("updateTime")),
        raw_status=word,
    )


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    return Trade(
        trade_id=str(row["exchangeTradeId"]),
        order_id=str(row["orderId"]),
        exchange=_exchange(row),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        side=Side(str(row["transactionType"]).upper()),
        product=PRODUCTS_BACK[str(row["productType"])],
        quantity=int(row["tradedQuantity"]),
        price=money(row["tradedPrice"]),
        filled_at=wire_time(row.get("exchangeTime")) or wire_time(row.get("updateTime")),
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    net = int(row["netQty"])
    buy_avg, sell_avg = money(row.get("buyAvg")), money(row.get("sellAvg"))
    average = money(row.get("costPrice")) or (buy_avg if net >= 0 else sell_avg)
    return Position(
        exchange=_exchange(row),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        product=PRODUCTS_BACK[str(row["productType"])],
        quantity=net,
        average_price=average,
        realised_pnl=money(row.get("realizedProfit")),
        unrealised_pnl=money(row.get("unrealizedProfit")),
        buy_quantity=int(row.get("buyQty") or 0),
        sell_quantity=int(row.get("sellQty") or 0),
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    exchange = str(row.get("exchange") or "NSE")
    return Holding(
        exchange="NSE" if exchange in ("ALL", "NSE", "") else exchange,
        tradingsymbol=str(row["tradingSymbol"]),
        quantity=int(row["totalQty"]),
        average_price=money(row.get("avgCostPrice")),
        isin=str(row.get("isin") or "") or None,
        last_price=money(row.get("lastTradedPrice")) or None,
        t1_quantity=int(row.get("t1Qty") or 0),
    )


def funds_from_row(row: Mapping[str, Any]) -> Funds:
    # "availabelBalance" is Dhan's own spelling on the wire; the correct spelling is read too.
    available = row["availabelBalance"] if "availabelBalance" in row else row["availableBalance"]
    return Funds(
        available_cash=money(available),
        margin_used=money(row.get("utilizedAmount")),
        collateral=money(row.get("collateralAmount")),
        opening_balance=money(row["sodLimit"]) if row.get("sodLimit") not in (None, "") else None,
    )


def quote_from_data(exchange: str, symbol: str, data: Mapping[str, Any]) -> Quote:
    ohlc = data.get("ohlc") or {}
    depth = data.get("depth") or {}

    def levels(side: str) -> tuple[DepthLevel, ...]:
        return tuple(
            DepthLevel(money(level["price"]), int(level.get("quantity") or 0), int(level.get("orders") or 0))
            for level in depth.get(side) or ()
            if money(level.get("price"))
        )

    return Quote(
        exchange=exchange,
        tradingsymbol=symbol,
        last_price=money(data["last_price"]),
        volume=int(data.get("volume") or 0),
        open=money(ohlc.get("open")) or None,
        high=money(ohlc.get("high")) or None,
        low=money(ohlc.get("low")) or None,
        close=money(ohlc.get("close")) or None,
        lower_circuit=money(data.get("lower_circuit_limit")) or None,
        upper_circuit=money(data.get("upper_circuit_limit")) or None,
        bids=levels("buy"),
        asks=levels("sell"),
    )


def bars_from_columns(data: Mapping[str, Any], interval: int) -> list[HistoricalBar]:
    stamps = data.get("timestamp") or []
    columns = [data.get(key) or [] for key in ("open", "high", "low", "close", "volume")]
    if any(len(column) != len(stamps) for column in columns):
        raise ValueError("candle columns of different lengths")
    return [
        HistoricalBar(
            start=datetime.fromtimestamp(int(Decimal(str(stamp))), UTC),
            open=money(o),
            high=money(h),
            low=money(low),
            close=money(c),
            volume=int(Decimal(str(v or 0))),
        )
        for stamp, o, h, low, c, v in zip(stamps, *columns, strict=True)
    ]


def instrument_from_csv(row: Mapping[str, str]) -> InstrumentRow | None:
    """A compact scrip-master row; only cash equities (segment E, series EQ/BE) are kept."""
    if row.get("SEM_SEGMENT") != "E" or row.get("SEM_EXM_EXCH_ID") not in ("NSE", "BSE"):
        return None
    if row.get("SEM_INSTRUMENT_NAME") not in ("EQUITY", None):
        return None
    try:
        tick_paise = Decimal(row.get("SEM_TICK_SIZE") or "5")
        token = int(Decimal(row["SEM_SMST_SECURITY_ID"]))
        lot = int(Decimal(row.get("SEM_LOT_UNITS") or "1"))
    except (InvalidOperation, KeyError, ValueError):
        return None
    return InstrumentRow(
        exchange=row["SEM_EXM_EXCH_ID"],
        tradingsymbol=row["SEM_TRADING_SYMBOL"],
        name=row.get("SM_SYMBOL_NAME") or row.get("SEM_CUSTOM_SYMBOL") or row["SEM_TRADING_SYMBOL"],
        exchange_token=token,
        tick_size=(tick_paise / 100).normalize() if tick_paise else Decimal("0.05"),
        lot_size=lot or 1,
        instrument_type="EQ",
        segment=row["SEM_EXM_EXCH_ID"],
    )
