"""Motilal Oswal words and rows <-> the port's normalized types.

Field names are Motilal's own spelling (brokers.md §2.6): `uniqueorderid`, `symboltoken`,
`quantityinlot`, `qtytradedtoday`, `productname` (positions only), and so on. Money comes as JSON
numbers parsed straight into Decimal; LTP and tick sizes come in paise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
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
    Validity,
)
from webapp.timeutil import IST, UTC

log = logging.getLogger(__name__)

PRODUCT_TO_WIRE = {Product.CNC: "DELIVERY", Product.MIS: "VALUEPLUS", Product.MTF: "MTF", Product.NRML: "NORMAL"}
# BTST and SELLFROMDP are delivery flavours the desk never sends but may find in a book.
PRODUCT_FROM_WIRE = {v: k for k, v in PRODUCT_TO_WIRE.items()} | {"BTST": Product.CNC, "SELLFROMDP": Product.CNC}

EXCHANGE_TO_WIRE = {"NFO": "NSEFO", "BFO": "BSEFO", "CDS": "NSECD"}  # NSE, BSE, MCX, NCDEX unchanged
EXCHANGE_FROM_WIRE = {v: k for k, v in EXCHANGE_TO_WIRE.items()}

ORDER_TYPE_TO_WIRE = {
    OrderType.LIMIT: "LIMIT",
    OrderType.MARKET: "MARKET",
    OrderType.SL: "STOPLOSS",
    OrderType.SLM: "STOPLOSS",
}

# Motilal's status words, lower-cased. "Open" splits into OPEN/PARTIAL on qtytradedtoday.
STATUS_FROM_WIRE = {
    "confirm": BrokerOrderStatus.PENDING,
    "sent": BrokerOrderStatus.PENDING,
    "open": BrokerOrderStatus.OPEN,
    "partially traded": BrokerOrderStatus.PARTIAL,
    "traded": BrokerOrderStatus.COMPLETE,
    "complete": BrokerOrderStatus.COMPLETE,
    "cancel": BrokerOrderStatus.CANCELLED,
    "cancelled": BrokerOrderStatus.CANCELLED,
    "rejected": BrokerOrderStatus.REJECTED,
    "error": BrokerOrderStatus.REJECTED,
}

WIRE_TIME = "%d-%b-%Y %H:%M:%S"  # "14-May-2022 11:31:25", IST wall clock
ZERO = Decimal("0")
AVERAGE_PLACES = Decimal("0.0001")


# --------------------------------------------------------------------------- scalars


def money(value: Any) -> Decimal:
    return ZERO if value in (None, "") else Decimal(str(value))


def rupees_from_paise(value: Any) -> Decimal:
    """LTP and tick sizes come in paise; a division by 100 is exact in Decimal."""
    return money(value) / 100


def quantity(value: Any) -> int:
    return 0 if value in (None, "") else int(Decimal(str(value)))


def ist_time(value: Any) -> datetime | None:
    """Motilal's IST wall-clock string as an aware UTC datetime (None if absent or unreadable)."""
    if not value:
        return None
    try:
        return datetime.strptime(str(value).strip(), WIRE_TIME).replace(tzinfo=IST).astimezone(UTC)
    except ValueError:
        return None


def plain_symbol(value: Any) -> str:
    """Motilal writes cash scrips as "TCS EQ"; the desk's symbol is "TCS"."""
    text = str(value or "").strip()
    return text[:-3].rstrip() if text.upper().endswith(" EQ") else text


def wire_exchange(exchange: str) -> str:
    return EXCHANGE_TO_WIRE.get(exchange.upper(), exchange.upper())


def port_exchange(exchange: Any) -> str:
    text = str(exchange or "").upper()
    return EXCHANGE_FROM_WIRE.get(text, text)


def product_from_wire(value: Any) -> Product:
    word = str(value or "").strip().upper()
    if word not in PRODUCT_FROM_WIRE:
        log.warning("broker=motilal unmapped_product=%s assumed=CNC", word)
    return PRODUCT_FROM_WIRE.get(word, Product.CNC)


def order_type_from_wire(value: Any, price: Decimal) -> OrderType:
    """Books echo "Limit"/"Market"/"Stoploss"; a stop-loss with no limit price is SL-M."""
    word = str(value or "").strip().upper().replace(" ", "").replace("-", "")
    if word in ("STOPLOSS", "SL"):
        return OrderType.SLM if price == 0 else OrderType.SL
    if word == "MARKET":
        return OrderType.MARKET
    return OrderType.LIMIT


def status_from_wire(word: Any, quantity_: int, filled: int) -> BrokerOrderStatus:
    key = str(word or "").strip().lower()
    status = STATUS_FROM_WIRE.get(key)
    if status is None:
        # An unknown word is treated as still in flight, never as final: reconciliation looks again.
        log.warning("broker=motilal unmapped_status=%r assumed=PENDING", word)
        return BrokerOrderStatus.PENDING
    if status is BrokerOrderStatus.OPEN and 0 < filled < quantity_:
        return BrokerOrderStatus.PARTIAL
    return status


# --------------------------------------------------------------------------- requests


def wire_prices(order_type: OrderType, price: Decimal | None, trigger: Decimal | None) -> tuple[Decimal, Decimal]:
    """(price, triggerprice) as Motilal wants them. SL-M goes out as STOPLOSS with price 0."""
    if order_type is OrderType.MARKET:
        return ZERO, ZERO
    if order_type is OrderType.LIMIT:
        if price is None or price <= 0:
            raise InvalidInput("A LIMIT order needs a price")
        return price, ZERO
    if trigger is None or trigger <= 0:
        raise InvalidInput(f"A {order_type.value} order needs a trigger price")
    if order_type is OrderType.SLM:
        return ZERO, trigger
    if price is None or price <= 0:
        raise InvalidInput("An SL order needs a limit price as well as the trigger")
    return price, trigger


def place_body(request: OrderRequest, tag: str, algo_id: str) -> dict[str, Any]:
    """The placeorder body, less `clientcode` (the adapter adds it to every call); the request has
    passed Broker.check_order."""
    price, trigger = wire_prices(request.order_type, request.price, request.trigger_price)
    return {
        "exchange": wire_exchange(request.exchange),
        "symboltoken": int(request.exchange_token),
        "buyorsell": request.side.value,
        "ordertype": ORDER_TYPE_TO_WIRE[request.order_type],
        "producttype": PRODUCT_TO_WIRE[request.product],
        "orderduration": request.validity.value,
        "price": price,
        "triggerprice": trigger,
        "quantityinlot": request.quantity,  # lots; a cash-equity lot is one share
        "disclosedquantity": 0,
        "amoorder": "N",
        "algoid": algo_id,
        "goodtilldate": "",
        "tag": tag,
        "participantcode": "",
    }


def modify_body(
    row: Mapping[str, Any],
    *,
    quantity_: int | None,
    price: Decimal | None,
    trigger_price: Decimal | None,
    order_type: OrderType | None,
    validity: Validity | None,
) -> dict[str, Any]:
    """A full modify body (less `clientcode`): what the caller changes, the rest carried over from the book row.

    `lastmodifiedtime` and `qtytradedtoday` must echo the book exactly; Motilal refuses a modify
    built on a stale view of the order.
    """
    current_price = money(row.get("price"))
    new_type = order_type or order_type_from_wire(row.get("ordertype"), current_price)
    new_price, new_trigger = wire_prices(
        new_type,
        price if price is not None else current_price,
        trigger_price if trigger_price is not None else money(row.get("triggerprice")),
    )
    return {
        "uniqueorderid": row["uniqueorderid"],
        "newordertype": ORDER_TYPE_TO_WIRE[new_type],
        "neworderduration": validity.value if validity else str(row.get("orderduration") or "DAY").upper(),
        "newquantityinlot": quantity_ if quantity_ is not None else quantity(row.get("orderqty")),
        "newdisclosedquantity": quantity(row.get("disclosedquantity")),
        "newprice": new_price,
        "newtriggerprice": new_trigger,
        "newgoodtilldate": str(row.get("goodtilldate") or ""),
        "lastmodifiedtime": row["lastmodifiedtime"],
        "qtytradedtoday": quantity(row.get("qtytradedtoday")),
    }


# --------------------------------------------------------------------------- rows


def order_from_row(row: Mapping[str, Any]) -> Order:
    price = money(row.get("price"))
    total = quantity(row.get("orderqty"))
    filled = quantity(row.get("qtytradedtoday"))
    average = money(row.get("averageprice"))
    return Order(
        order_id=str(row["uniqueorderid"]),
        status=status_from_wire(row.get("orderstatus"), total, filled),
        exchange=port_exchange(row.get("exchange")),
        tradingsymbol=plain_symbol(row.get("symbol")),
        side=Side(str(row["buyorsell"]).upper()),
        product=product_from_wire(row.get("producttype")),
        order_type=order_type_from_wire(row.get("ordertype"), price),
        quantity=total,
        filled_quantity=filled,
        price=price or None,
        trigger_price=money(row.get("triggerprice")) or None,
        average_price=average or None,
        tag=str(row.get("tag") or "").strip() or None,
        status_message=str(row.get("error") or "").strip() or None,
        exchange_order_id=str(row.get("exchorderid") or "").strip() or None,
        placed_at=ist_time(row.get("recordinserttime")),
        updated_at=ist_time(row.get("lastmodifiedtime")),
        raw_status=str(row.get("orderstatus") or ""),
    )


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    return Trade(
        trade_id=str(row.get("tradeno") or f"{row['uniqueorderid']}-{row.get('tradetime', '')}"),
        order_id=str(row["uniqueorderid"]),
        exchange=port_exchange(row.get("exchange")),
        tradingsymbol=plain_symbol(row.get("symbol")),
        side=Side(str(row["buyorsell"]).upper()),
        product=product_from_wire(row.get("producttype")),
        quantity=quantity(row["tradeqty"]),
        price=money(row["tradeprice"]),
        filled_at=ist_time(row.get("tradetime")),
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    """Motilal has no net quantity or average: both are derived from the buy and sell legs."""
    bought, sold = quantity(row.get("buyquantity")), quantity(row.get("sellquantity"))
    buy_amount, sell_amount = money(row.get("buyamount")), money(row.get("sellamount"))
    net = bought - sold
    if net > 0:
        average = (buy_amount / bought).quantize(AVERAGE_PLACES)
    elif net < 0:
        average = (sell_amount / sold).quantize(AVERAGE_PLACES)
    else:
        average = ZERO
    return Position(
        exchange=port_exchange(row.get("exchange")),
        tradingsymbol=plain_symbol(row.get("symbol")),
        product=product_from_wire(row.get("productname")),
        quantity=net,
        average_price=average,
        last_price=money(row.get("LTP")) if row.get("LTP") not in (None, "") else None,
        realised_pnl=money(row.get("bookedprofitloss")),
        unrealised_pnl=money(row.get("marktomarket")),
        buy_quantity=bought,
        sell_quantity=sold,
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    # DP holdings are depository balances: no exchange of their own; the desk trades them on NSE.
    return Holding(
        exchange="NSE",
        tradingsymbol=plain_symbol(row.get("scripname")),
        quantity=quantity(row.get("dpquantity")),
        average_price=money(row.get("buyavgprice")),
        isin=str(row.get("scripisinno") or "").strip() or None,
    )


def funds_from_rows(rows: Iterable[Mapping[str, Any]]) -> Funds:
    """getreportmargindetail rows by srno: 102 cash (201 as fallback), 220 collateral, 300/301 used."""
    amounts = {int(row["srno"]): money(row.get("amount")) for row in rows}

    def first(*srnos: int) -> Decimal:
        return next((amounts[s] for s in srnos if s in amounts), ZERO)

    return Funds(available_cash=first(102, 201), collateral=first(220), margin_used=first(300, 301))


def quote_from_data(ref: InstrumentRef, data: Mapping[str, Any]) -> Quote:
    bid, ask = rupees_from_paise(data.get("bid")), rupees_from_paise(data.get("ask"))
    # getltpdata carries only the best prices, not their sizes: quantity 0 means "not reported".
    return Quote(
        exchange=ref.exchange,
        tradingsymbol=ref.tradingsymbol,
        last_price=rupees_from_paise(data["ltp"]),
        volume=quantity(data.get("volume")),
        open=rupees_from_paise(data.get("open")),
        high=rupees_from_paise(data.get("high")),
        low=rupees_from_paise(data.get("low")),
        close=rupees_from_paise(data.get("close")),
        bids=(DepthLevel(bid, 0),) if bid else (),
        asks=(DepthLevel(ask, 0),) if ask else (),
    )


def instrument_from_row(row: Mapping[str, Any]) -> InstrumentRow:
    kind = str(row.get("instrumentname") or "").upper()
    exchange = port_exchange(row.get("exchangename"))
    if "IDX" in kind:
        instrument_type = "INDEX"
    elif exchange in ("NSE", "BSE"):
        instrument_type = "EQ"
    else:
        instrument_type = kind or "EQ"
    return InstrumentRow(
        exchange=exchange,
        tradingsymbol=plain_symbol(row["scripname"]),
        name=str(row.get("scripshortname") or plain_symbol(row["scripname"])),
        exchange_token=int(row["scripcode"]),
        tick_size=rupees_from_paise(row.get("ticksize")),
        lot_size=quantity(row.get("marketlot")) or 1,
        instrument_type=instrument_type,
        segment=str(row.get("exchangename") or exchange),
    )
