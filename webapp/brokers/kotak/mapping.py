"""Kotak Neo words and rows <-> the port's normalized types.

Kotak speaks in short keys: orders go out as `jData` JSON with `es` (segment), `pc` (product),
`pt` (order type), `qt`, `pr`, `tp`, `ts` (trading symbol), `tt` (B/S), `rt` (validity), `am`, `dq`,
`mp`, `pf` and `ig` (the order tag); books come back with `nOrdNo`, `ordSt`, `trdSym`, `exSeg`,
`trnsTp`, `prod`, `prcTp`, `fldQty`, `avgPrc`, `GuiOrdId` (the tag echoed) and so on. Prices and
quantities in books are strings of rupees and shares; the scrip master's prices are in paise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
    Validity,
)
from webapp.timeutil import IST, UTC

log = logging.getLogger(__name__)

SEGMENT_TO_WIRE = {
    "NSE": "nse_cm",
    "BSE": "bse_cm",
    "NFO": "nse_fo",
    "BFO": "bse_fo",
    "CDS": "cde_fo",
    "MCX": "mcx_fo",
}
SEGMENT_FROM_WIRE = {v: k for k, v in SEGMENT_TO_WIRE.items()} | {"mcx": "MCX", "bcs-fo": "BCD"}
PRODUCT_TO_WIRE = {Product.CNC: "CNC", Product.MIS: "MIS", Product.NRML: "NRML", Product.MTF: "MTF"}
# CO and BO are intraday flavours the desk never sends but may find in a book.
PRODUCT_FROM_WIRE = {v: k for k, v in PRODUCT_TO_WIRE.items()} | {
    "INTRADAY": Product.MIS,
    "CO": Product.MIS,
    "BO": Product.MIS,
}
ORDER_TYPE_TO_WIRE = {OrderType.LIMIT: "L", OrderType.MARKET: "MKT", OrderType.SL: "SL", OrderType.SLM: "SL-M"}
ORDER_TYPE_FROM_WIRE = {v: k for k, v in ORDER_TYPE_TO_WIRE.items()}
SIDE_TO_WIRE = {Side.BUY: "B", Side.SELL: "S"}
SIDE_FROM_WIRE = {"B": Side.BUY, "S": Side.SELL, "BUY": Side.BUY, "SELL": Side.SELL}

# Kotak's order status words (ordSt), lower-cased. "open" splits into OPEN/PARTIAL on fldQty.
STATUS_FROM_WIRE = {
    "open": BrokerOrderStatus.OPEN,
    "modified": BrokerOrderStatus.OPEN,
    "partially filled": BrokerOrderStatus.PARTIAL,
    "trigger pending": BrokerOrderStatus.TRIGGER_PENDING,
    "complete": BrokerOrderStatus.COMPLETE,
    "completed": BrokerOrderStatus.COMPLETE,
    "traded": BrokerOrderStatus.COMPLETE,
    "filled": BrokerOrderStatus.COMPLETE,
    "cancelled": BrokerOrderStatus.CANCELLED,
    "canceled": BrokerOrderStatus.CANCELLED,
    "rejected": BrokerOrderStatus.REJECTED,
}
# Words of an order still on its way (…pending, …received): PENDING, never final.
PENDING_HINTS = ("pending", "received", "validation", "req")

BOOK_TIME = "%d-%b-%Y %H:%M:%S"  # ordDtTm / exTm: "22-Jan-2025 14:28:01", IST wall clock
UPDATE_TIME = "%Y/%m/%d %H:%M:%S"  # hsUpTm
ZERO = Decimal("0")
AVERAGE_PLACES = Decimal("0.0001")
NONE_WORDS = ("", "--", "NA", "N/A", "null", "None")


# --------------------------------------------------------------------------- scalars


def money(value: Any) -> Decimal:
    text = str(value).strip() if value is not None else ""
    return ZERO if text in NONE_WORDS else Decimal(text)


def optional_money(value: Any) -> Decimal | None:
    amount = money(value)
    return amount or None


def quantity(value: Any) -> int:
    text = str(value).strip() if value is not None else ""
    return 0 if text in NONE_WORDS else int(Decimal(text))


def text_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text in NONE_WORDS else text


def ist_time(value: Any) -> datetime | None:
    """A Kotak IST wall-clock string as an aware UTC datetime (None if absent or unreadable)."""
    text = str(value or "").strip()
    for fmt in (BOOK_TIME, UPDATE_TIME):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST).astimezone(UTC)
        except ValueError:
            continue
    return None


def wire_segment(exchange: str) -> str:
    try:
        return SEGMENT_TO_WIRE[exchange.upper()]
    except KeyError:
        raise InvalidInput(f"Kotak Neo does not trade on exchange {exchange}") from None


def port_exchange(segment: Any) -> str:
    text = str(segment or "").strip()
    return SEGMENT_FROM_WIRE.get(text.lower(), text.upper())


def wire_symbol(exchange: str, tradingsymbol: str) -> str:
    """Kotak's trading symbol (the scrip master's pTrdSymbol): NSE cash scrips carry their series,
    "INFY-EQ"; the desk's symbol is "INFY"."""
    if exchange.upper() == "NSE" and "-" not in tradingsymbol:
        return f"{tradingsymbol}-EQ"
    return tradingsymbol


def plain_symbol(value: Any) -> str:
    text = str(value or "").strip()
    return text[:-3] if text.upper().endswith("-EQ") else text


def product_from_wire(value: Any) -> Product:
    word = str(value or "").strip().upper()
    if word not in PRODUCT_FROM_WIRE:
        log.warning("broker=kotak unmapped_product=%s assumed=CNC", word)
    return PRODUCT_FROM_WIRE.get(word, Product.CNC)


def order_type_from_wire(value: Any) -> OrderType:
    return ORDER_TYPE_FROM_WIRE.get(str(value or "").strip().upper(), OrderType.LIMIT)


def side_from_wire(value: Any) -> Side:
    return SIDE_FROM_WIRE[str(value or "").strip().upper()]


def status_from_wire(word: Any, quantity_: int, filled: int) -> BrokerOrderStatus:
    key = str(word or "").strip().lower()
    status = STATUS_FROM_WIRE.get(key)
    if status is None:
        if not any(hint in key for hint in PENDING_HINTS):
            # An unknown word is treated as still in flight, never as final: reconciliation looks again.
            log.warning("broker=kotak unmapped_status=%r assumed=PENDING", word)
        return BrokerOrderStatus.PENDING
    if status is BrokerOrderStatus.OPEN and 0 < filled < quantity_:
        return BrokerOrderStatus.PARTIAL
    return status


def price_text(value: Decimal | None) -> str:
    return "0" if value is None else format(value, "f")


# --------------------------------------------------------------------------- requests


def wire_prices(order_type: OrderType, price: Decimal | None, trigger: Decimal | None) -> tuple[str, str]:
    """(pr, tp) as Kotak wants them: "0" where a field does not apply."""
    if order_type is OrderType.MARKET:
        return "0", "0"
    if order_type is OrderType.LIMIT:
        if price is None or price <= 0:
            raise InvalidInput("A LIMIT order needs a price")
        return price_text(price), "0"
    if trigger is None or trigger <= 0:
        raise InvalidInput(f"A {order_type.value} order needs a trigger price")
    if order_type is OrderType.SLM:
        return "0", price_text(trigger)
    if price is None or price <= 0:
        raise InvalidInput("An SL order needs a limit price as well as the trigger")
    return price_text(price), price_text(trigger)


def place_body(request: OrderRequest) -> dict[str, str]:
    """The place order jData; the request has passed Broker.check_order."""
    price, trigger = wire_prices(request.order_type, request.price, request.trigger_price)
    body = {
        "am": "NO",
        "dq": "0",
        "es": wire_segment(request.exchange),
        "mp": price_text(request.market_protection) if request.market_protection is not None else "0",
        "pc": PRODUCT_TO_WIRE[request.product],
        "pf": "N",
        "pr": price,
        "pt": ORDER_TYPE_TO_WIRE[request.order_type],
        "qt": str(request.quantity),
        "rt": request.validity.value,
        "tp": trigger,
        "ts": wire_symbol(request.exchange, request.tradingsymbol),
        "tt": SIDE_TO_WIRE[request.side],
    }
    if request.tag:
        body["ig"] = request.tag
    return body


def modify_body(
    row: Mapping[str, Any],
    *,
    quantity_: int | None,
    price: Decimal | None,
    trigger_price: Decimal | None,
    order_type: OrderType | None,
    validity: Validity | None,
) -> dict[str, str]:
    """A whole modify jData: what the caller changes, the rest carried over from the book row
    (Kotak's modify restates the order: token, symbol, segment, side and product included)."""
    new_type = order_type or order_type_from_wire(row.get("prcTp"))
    new_price, new_trigger = wire_prices(
        new_type,
        price if price is not None else optional_money(row.get("prc")),
        trigger_price if trigger_price is not None else optional_money(row.get("trgPrc")),
    )
    return {
        "tk": str(row.get("tok") or ""),
        "mp": "0",
        "pc": str(row.get("prod") or ""),
        "dd": "NA",
        "dq": str(quantity(row.get("dscQty"))),
        "vd": validity.value if validity else str(row.get("vldt") or "DAY").upper(),
        "ts": str(row.get("trdSym") or ""),
        "tt": str(row.get("trnsTp") or ""),
        "pr": new_price,
        "tp": new_trigger,
        "qt": str(quantity_ if quantity_ is not None else quantity(row.get("qty"))),
        "no": str(row["nOrdNo"]),
        "es": str(row.get("exSeg") or ""),
        "pt": ORDER_TYPE_TO_WIRE[new_type],
        "fq": str(quantity(row.get("fldQty"))),
        "am": "NO",
    }


def margin_body(request: OrderRequest) -> dict[str, str]:
    """check-margin jData for one order (prc "0" for market orders, per Kotak's docs)."""
    price, trigger = wire_prices(request.order_type, request.price, request.trigger_price)
    body = {
        "brkName": "KOTAK",
        "brnchId": "ONLINE",
        "exSeg": wire_segment(request.exchange),
        "prc": price,
        "prcTp": ORDER_TYPE_TO_WIRE[request.order_type],
        "prod": PRODUCT_TO_WIRE[request.product],
        "qty": str(request.quantity),
        "tok": str(request.exchange_token),
        "trnsTp": SIDE_TO_WIRE[request.side],
    }
    if trigger != "0":
        body["trgPrc"] = trigger
    return body


# --------------------------------------------------------------------------- rows


def order_from_row(row: Mapping[str, Any]) -> Order:
    total = quantity(row.get("qty"))
    filled = quantity(row.get("fldQty"))
    word = row.get("ordSt") or row.get("stat")
    return Order(
        order_id=str(row["nOrdNo"]),
        status=status_from_wire(word, total, filled),
        exchange=port_exchange(row.get("exSeg")),
        tradingsymbol=plain_symbol(row.get("trdSym")),
        side=side_from_wire(row.get("trnsTp")),
        product=product_from_wire(row.get("prod")),
        order_type=order_type_from_wire(row.get("prcTp")),
        quantity=total,
        filled_quantity=filled,
        price=optional_money(row.get("prc")),
        trigger_price=optional_money(row.get("trgPrc")),
        average_price=optional_money(row.get("avgPrc")),
        tag=text_or_none(row.get("GuiOrdId")),
        status_message=text_or_none(row.get("rejRsn")),
        exchange_order_id=text_or_none(row.get("exOrdId")),
        placed_at=ist_time(row.get("ordDtTm")),
        updated_at=ist_time(row.get("hsUpTm")) or ist_time(row.get("exCfmTm")),
        raw_status=str(word or ""),
    )


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    order_id = str(row["nOrdNo"])
    return Trade(
        trade_id=str(text_or_none(row.get("flId")) or f"{order_id}-{row.get('exTm', '')}"),
        order_id=order_id,
        exchange=port_exchange(row.get("exSeg")),
        tradingsymbol=plain_symbol(row.get("trdSym")),
        side=side_from_wire(row.get("trnsTp")),
        product=product_from_wire(row.get("prod")),
        quantity=quantity(row["fldQty"]),
        price=money(row["avgPrc"]),
        filled_at=ist_time(row.get("exTm")),
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    """Net quantity and averages from the day's (fl*) and carried (cf*) legs."""
    bought = quantity(row.get("flBuyQty")) + quantity(row.get("cfBuyQty"))
    sold = quantity(row.get("flSellQty")) + quantity(row.get("cfSellQty"))
    buy_amount = money(row.get("buyAmt")) + money(row.get("cfBuyAmt"))
    sell_amount = money(row.get("sellAmt")) + money(row.get("cfSellAmt"))
    avg_buy = buy_amount / bought if bought else ZERO
    avg_sell = sell_amount / sold if sold else ZERO
    net = bought - sold
    average = avg_buy if net > 0 else avg_sell if net < 0 else ZERO
    realised = (min(bought, sold) * (avg_sell - avg_buy)).quantize(Decimal("0.01")) if bought and sold else ZERO
    return Position(
        exchange=port_exchange(row.get("exSeg")),
        tradingsymbol=plain_symbol(row.get("trdSym")),
        product=product_from_wire(row.get("prod")),
        quantity=net,
        average_price=average.quantize(AVERAGE_PLACES),
        realised_pnl=realised,
        buy_quantity=bought,
        sell_quantity=sold,
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    total = quantity(row.get("quantity"))
    sellable = row.get("sellableQuantity")
    return Holding(
        exchange=port_exchange(row.get("exchangeSegment") or "nse_cm"),
        tradingsymbol=plain_symbol(row.get("displaySymbol") or row.get("symbol")),
        quantity=total,
        average_price=money(row.get("averagePrice")),
        last_price=optional_money(row.get("closingPrice")),
        t1_quantity=max(total - quantity(sellable), 0) if sellable is not None else 0,
    )


def funds_from_limits(answer: Mapping[str, Any]) -> Funds:
    """The limits answer: `Net` is what is left to trade with, `MarginUsed` what is blocked; the
    total limit (cash plus collateral) is their sum, which the port splits as cash + collateral."""
    net, used = money(answer["Net"]), money(answer.get("MarginUsed"))
    collateral = money(answer.get("Collateral")) if answer.get("Collateral") not in (None, "") else ZERO
    return Funds(available_cash=net + used - collateral, margin_used=used, collateral=collateral)


def quote_from_row(ref: InstrumentRef, row: Mapping[str, Any]) -> Quote:
    ohlc = row.get("ohlc") or {}
    depth = row.get("depth") or {}

    def levels(side: str) -> tuple[DepthLevel, ...]:
        out = []
        for level in depth.get(side) or ():
            price = money(level.get("price"))
            if price:
                out.append(DepthLevel(price, quantity(level.get("quantity")), quantity(level.get("orders"))))
        return tuple(out)

    stamp = str(row.get("lstup_time") or "").strip()
    return Quote(
        exchange=ref.exchange,
        tradingsymbol=ref.tradingsymbol,
        last_price=money(row["ltp"]),
        volume=quantity(row.get("last_volume")),
        open=optional_money(ohlc.get("open")),
        high=optional_money(ohlc.get("high")),
        low=optional_money(ohlc.get("low")),
        close=optional_money(ohlc.get("close")),
        bids=levels("buy"),
        asks=levels("sell"),
        timestamp=datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None,
    )


def instrument_from_master(row: Mapping[str, str]) -> InstrumentRow | None:
    """A scrip master CSV row (header names stripped). Ticks are in paise; None for a row that is
    not a tradable scrip (no token)."""
    token = str(row.get("pSymbol") or "").strip()
    if not token.isdigit():
        return None
    segment = str(row.get("pExchSeg") or "").strip()
    exchange = port_exchange(segment)
    try:
        tick = Decimal(str(row.get("dTickSize") or "0").strip() or "0") / 100
        lot = int(Decimal(str(row.get("lLotSize") or "1").strip() or "1"))
    except InvalidOperation:
        return None
    symbol = plain_symbol(row.get("pTrdSymbol"))
    return InstrumentRow(
        exchange=exchange,
        tradingsymbol=symbol,
        name=str(row.get("pDesc") or row.get("pSymbolName") or symbol).strip(),
        exchange_token=int(token),
        tick_size=tick,
        lot_size=lot or 1,
        instrument_type="EQ" if segment.endswith("_cm") else str(row.get("pInstType") or "").strip() or "EQ",
        segment=segment,
    )
