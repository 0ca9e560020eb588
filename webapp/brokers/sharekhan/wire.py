"""ShareKhan's wire vocabulary both ways: exchange codes, products, validities, status words, rows.

Field names of order rows are ShareKhan's own (brokers.md §3.3, a real order_history sample).
brokers.md has no sample for trades, positions, holdings, the limit statement or the tick size in
the scrip master: the names used for those here are the emulator's (tests/emulators/sharekhan.py),
chosen in ShareKhan's camelCase style, and are marked [unverified] below.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from webapp.brokers.base import (
    BrokerOrderStatus,
    Funds,
    Holding,
    InstrumentRow,
    InvalidInput,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Side,
    Trade,
    Validity,
)
from webapp.money import to_decimal
from webapp.timeutil import IST, UTC

log = logging.getLogger(__name__)

# the desk's exchange names <-> ShareKhan's two-letter codes (TradeTiger PDF + SDK)
EXCHANGE_CODES = {"NSE": "NC", "BSE": "BC", "NFO": "NF", "BFO": "BF", "CDS": "RN", "MCX": "MX"}
EXCHANGE_NAMES = {code: name for name, code in EXCHANGE_CODES.items()} | {"NX": "NCDEX", "RM": "MCX-SX"}
# OrderRequest has no expiry/strike, so the desk sends cash-equity orders only
CASH_EXCHANGES = ("NSE", "BSE")

# INVESTMENT is delivery and BIGTRADE intraday per brokers.md §5.5 [unverified]; ShareKhan's MTF
# product word is not documented: "MTF" is our pick [unverified], BIGTRADEPLUS (BT+) reads as MIS.
PRODUCT_TYPES = {Product.CNC: "INVESTMENT", Product.MIS: "BIGTRADE", Product.MTF: "MTF"}
_PRODUCT_WORDS = {
    "INVESTMENT": Product.CNC,
    "INV": Product.CNC,
    "BIGTRADE": Product.MIS,
    "BT": Product.MIS,
    "BIGTRADEPLUS": Product.MIS,
    "BT+": Product.MIS,
    "MTF": Product.MTF,
}
VALIDITIES = {Validity.DAY: "GFD", Validity.IOC: "IOC"}  # IOC is unverified at ShareKhan
_VALIDITY_WORDS = {"GFD": Validity.DAY, "DAY": Validity.DAY, "IOC": Validity.IOC}

# orderStatus words: the first four were seen in real payloads; Rejected / Cancelled / Trigger
# Pending are our assumption and the emulator speaks them. "In-Process" is ShareKhan validating
# (not at the exchange yet); "Pending" is resting at the exchange, hence OPEN.
STATUS_WORDS = {
    "inprocess": BrokerOrderStatus.PENDING,
    "pending": BrokerOrderStatus.OPEN,
    "triggerpending": BrokerOrderStatus.TRIGGER_PENDING,
    "partlyexecuted": BrokerOrderStatus.PARTIAL,
    "partiallyexecuted": BrokerOrderStatus.PARTIAL,
    "fullyexecuted": BrokerOrderStatus.COMPLETE,
    "executed": BrokerOrderStatus.COMPLETE,
    "rejected": BrokerOrderStatus.REJECTED,
    "cancelled": BrokerOrderStatus.CANCELLED,
    "canceled": BrokerOrderStatus.CANCELLED,
}
_ORDER_TYPE_WORDS = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "sl": OrderType.SL,
    "stoploss": OrderType.SL,
    "slm": OrderType.SLM,
    "stoplossmarket": OrderType.SLM,
}
_REASON_FIELDS = ("rejectReason", "errorMessage", "remarks")  # [unverified] ShareKhan's reason field


# --------------------------------------------------------------------------- scalars


def money(value: Any) -> Decimal | None:
    """Decimal from a ShareKhan price (a string such as "24.35"; JSON numbers arrive as Decimal)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_decimal(value)


def price_or_none(value: Any) -> Decimal | None:
    """ShareKhan writes "0" for "no price" (market orders, no trigger, nothing filled)."""
    amount = money(value)
    return None if amount is None or amount == 0 else amount


def wire_price(value: Decimal | None) -> str:
    return "0" if value is None else format(value, "f")


def whole(value: Any) -> int:
    return 0 if value in (None, "") else int(value)


def parse_ist(value: Any) -> datetime | None:
    """ "2025-10-28 12:44:40.0" (IST wall clock) -> aware UTC."""
    text = str(value or "").strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST).astimezone(UTC)
        except ValueError:
            continue
    log.warning("broker=sharekhan op=parse unknown_time=%r", text)
    return None


def customer_id_value(client_code: str) -> int | str:
    """ShareKhan customer ids are numbers on the wire (Postman sends them unquoted)."""
    return int(client_code) if client_code.isdigit() else client_code


def exchange_code(exchange: str) -> str:
    try:
        return EXCHANGE_CODES[exchange]
    except KeyError:
        raise InvalidInput(f"ShareKhan does not trade on exchange {exchange!r}") from None


def exchange_name(code: Any) -> str:
    return EXCHANGE_NAMES.get(str(code), str(code))


def side_of(code: Any) -> Side:
    return Side.BUY if str(code).upper() in ("B", "BM") else Side.SELL


def product_of(word: Any) -> Product | None:
    """None when ShareKhan sends a product code we cannot read (the F&O sample has "0")."""
    return _PRODUCT_WORDS.get(str(word or "").strip().upper())


def status_of(word: Any) -> BrokerOrderStatus:
    key = "".join(ch for ch in str(word or "").lower() if ch.isalpha())
    status = STATUS_WORDS.get(key)
    if status is None:
        # an unknown word must not look final: the sync keeps polling and shows the raw word
        log.warning("broker=sharekhan op=parse unknown_status=%r", word)
        return BrokerOrderStatus.PENDING
    return status


# --------------------------------------------------------------------------- requests


def order_body(request: OrderRequest, customer_id: str, channel_user: str) -> dict[str, Any]:
    """The JSON body of a NEW order (brokers.md §3.3); prices go out as strings."""
    if request.exchange not in CASH_EXCHANGES:
        raise InvalidInput(f"ShareKhan orders from the desk are cash equity only (NSE, BSE), not {request.exchange}")
    if request.product not in PRODUCT_TYPES:
        raise InvalidInput(f"ShareKhan has no {request.product.value} product for cash equity; use CNC, MIS or MTF")
    return {
        "customerId": customer_id_value(customer_id),
        "scripCode": request.exchange_token,
        "tradingSymbol": request.tradingsymbol,
        "exchange": exchange_code(request.exchange),
        "transactionType": "B" if request.side is Side.BUY else "S",
        "quantity": request.quantity,
        "disclosedQty": 0,
        "price": wire_price(request.price if request.order_type in (OrderType.LIMIT, OrderType.SL) else None),
        "triggerPrice": wire_price(
            request.trigger_price if request.order_type in (OrderType.SL, OrderType.SLM) else None
        ),
        "rmsCode": "ANY",
        "afterHour": "N",
        "orderType": "NORMAL",  # SL is expressed by a non-zero triggerPrice
        "channelUser": channel_user,
        "validity": VALIDITIES[request.validity],
        "requestType": "NEW",
        "productType": PRODUCT_TYPES[request.product],
    }


def change_body(
    row: Mapping[str, Any], customer_id: str, channel_user: str, request_type: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """A MODIFY or CANCEL body: ShareKhan wants the whole order again, with `orderId`."""
    order_type = changes.get("order_type") or order_type_of(row)
    price = changes.get("price") or price_or_none(row.get("orderPrice"))
    trigger = changes.get("trigger_price") or price_or_none(row.get("orderTriggerPrice"))
    validity = changes.get("validity") or _VALIDITY_WORDS.get(str(row.get("goodtill", "GFD")).upper(), Validity.DAY)
    if order_type in (OrderType.LIMIT, OrderType.SL) and not price:
        raise InvalidInput(f"A {order_type.value} order needs a price")
    if order_type in (OrderType.SL, OrderType.SLM) and not trigger:
        raise InvalidInput(f"A {order_type.value} order needs a trigger price")
    product = product_of(row.get("productCode"))
    if product is None:
        # guessing would silently move the order to another product
        raise InvalidInput(
            f"Order {row.get('orderId')} has ShareKhan product code {row.get('productCode')!r}, "
            "which the desk cannot send back; change it at ShareKhan"
        )
    return {
        "orderId": str(row["orderId"]),
        "customerId": customer_id_value(customer_id),
        "scripCode": whole(row.get("scripCode")),
        "tradingSymbol": row.get("tradingSymbol"),
        "exchange": row.get("exchange"),
        "transactionType": "B" if side_of(row.get("buySell")) is Side.BUY else "S",
        "quantity": changes.get("quantity") or whole(row.get("orderQty")),
        "disclosedQty": whole(row.get("disclosedQty")),
        "price": wire_price(price if order_type in (OrderType.LIMIT, OrderType.SL) else None),
        "triggerPrice": wire_price(trigger if order_type in (OrderType.SL, OrderType.SLM) else None),
        "rmsCode": "ANY",
        "afterHour": row.get("afterHour") or "N",
        "orderType": "NORMAL",
        "channelUser": channel_user,
        "validity": VALIDITIES[validity],
        "requestType": request_type,
        "productType": PRODUCT_TYPES[product],
    }


# --------------------------------------------------------------------------- rows -> port types


def order_type_of(row: Mapping[str, Any]) -> OrderType:
    key = "".join(ch for ch in str(row.get("orderType") or "").lower() if ch.isalpha())
    if key in _ORDER_TYPE_WORDS:
        return _ORDER_TYPE_WORDS[key]
    # "NORMAL" or an unknown word: the prices say what the order is
    price, trigger = price_or_none(row.get("orderPrice")), price_or_none(row.get("orderTriggerPrice"))
    if trigger:
        return OrderType.SL if price else OrderType.SLM
    return OrderType.LIMIT if price else OrderType.MARKET


def order_from_row(row: Mapping[str, Any]) -> Order:
    quantity, filled = whole(row.get("orderQty")), whole(row.get("execQty"))
    status = status_of(row.get("orderStatus"))
    if not status.is_final and 0 < filled < quantity:
        status = BrokerOrderStatus.PARTIAL
    reason = next((str(row[f]) for f in _REASON_FIELDS if row.get(f)), None)
    return Order(
        order_id=str(row["orderId"]),
        status=status,
        exchange=exchange_name(row.get("exchange")),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        side=side_of(row.get("buySell")),
        product=product_of(row.get("productCode")) or Product.CNC,
        order_type=order_type_of(row),
        quantity=quantity,
        filled_quantity=filled,
        price=price_or_none(row.get("orderPrice")),
        trigger_price=price_or_none(row.get("orderTriggerPrice")),
        average_price=price_or_none(row.get("avgPrice")),
        status_message=reason,
        exchange_order_id=str(row.get("exchangeOrderId") or "") or None,
        placed_at=parse_ist(row.get("orderDateTime")),
        updated_at=parse_ist(row.get("lastModTime")) or parse_ist(row.get("updateDate")),
        raw_status=row.get("orderStatus"),
    )


def trade_from_row(row: Mapping[str, Any], order: Order) -> Trade:
    """[unverified] field names: tradeId, tradeQty, tradePrice, tradeDateTime (after the ack stream's)."""
    return Trade(
        trade_id=str(row["tradeId"]),
        order_id=str(row.get("orderId") or order.order_id),
        exchange=order.exchange,
        tradingsymbol=order.tradingsymbol,
        side=order.side,
        product=order.product,
        quantity=whole(row.get("tradeQty")),
        price=money(row.get("tradePrice")) or Decimal("0"),
        filled_at=parse_ist(row.get("tradeDateTime")),
    )


def position_from_row(row: Mapping[str, Any]) -> Position:
    """[unverified] field names of /skapi/services/trades/{customerId} rows."""
    return Position(
        exchange=exchange_name(row.get("exchange")),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        product=product_of(row.get("productCode")) or Product.CNC,
        quantity=whole(row.get("netQty")),
        average_price=money(row.get("netAvgPrice")) or Decimal("0"),
        last_price=price_or_none(row.get("ltp")),
        realised_pnl=money(row.get("realizedPnl")) or Decimal("0"),
        unrealised_pnl=money(row.get("unrealizedPnl")) or Decimal("0"),
        buy_quantity=whole(row.get("buyQty")),
        sell_quantity=whole(row.get("sellQty")),
    )


def holding_from_row(row: Mapping[str, Any]) -> Holding:
    """[unverified] field names of /skapi/services/holdings/{customerId} rows."""
    return Holding(
        exchange=exchange_name(row.get("exchange") or "NC"),
        tradingsymbol=str(row.get("tradingSymbol") or ""),
        quantity=whole(row.get("quantity")),
        average_price=money(row.get("avgPrice")) or Decimal("0"),
        isin=row.get("isin") or None,
        last_price=price_or_none(row.get("ltp")),
        t1_quantity=whole(row.get("t1Qty")),
    )


def funds_from_data(data: Mapping[str, Any]) -> Funds:
    """[unverified] field names of the limit statement."""
    return Funds(
        available_cash=money(data.get("cashBalance")) or Decimal("0"),
        margin_used=money(data.get("marginUtilised")) or Decimal("0"),
        collateral=money(data.get("collateralValue")) or Decimal("0"),
        opening_balance=money(data.get("openingBalance")),
    )


def instrument_from_row(row: Mapping[str, Any], exchange: str) -> InstrumentRow:
    # the master's tick field is unverified; without it 0.05 is assumed and the desk should take
    # ticks from another master (Kite's CSV) where it has one
    symbol = str(row.get("tradingSymbol") or "")
    return InstrumentRow(
        exchange=exchange,
        tradingsymbol=symbol,
        name=str(row.get("companyName") or symbol),
        exchange_token=whole(row.get("scripCode")),
        tick_size=money(row.get("tickSize")) or Decimal("0.05"),
        lot_size=whole(row.get("lotSize")) or 1,
        instrument_type=str(row.get("instType") or "EQ"),
        segment=exchange,
    )
