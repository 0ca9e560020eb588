"""The emulated ShareKhan books: instruments, accounts and orders, and the order logic.

`OrderBooks` is mixed into the emulator app, which owns the state it works on (`accounts`, `book`,
`scrips`, `ledger`, `auto_fill` and the id counters) and holds `lock` around every call.
Trade, position and holding rows use field names of our own in ShareKhan's camelCase style:
brokers.md has no samples for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from webapp.timeutil import IST

PAISA = Decimal("0.01")
PRODUCT_CODES = {"INVESTMENT": "INV", "BIGTRADE": "BT", "BIGTRADEPLUS": "BT+", "MTF": "MTF"}
MARGIN_RATE = {
    "INVESTMENT": Decimal("1"),
    "BIGTRADE": Decimal("0.2"),
    "BIGTRADEPLUS": Decimal("0.2"),
    "MTF": Decimal("0.25"),
}
EXCHANGES = {"NC": "NSE", "BC": "BSE", "NF": "NFO", "BF": "BFO", "RN": "CDS", "MX": "MCX"}
FINAL = ("Fully Executed", "Rejected", "Cancelled")
SEED = (  # symbol, NSE token, ISIN, previous close, tick
    ("INFY", 1594, "INE009A01021", "1500.00", "0.10"),
    ("RELIANCE", 2885, "INE002A01018", "1400.00", "0.10"),
    ("TCS", 11536, "INE467B01029", "3100.00", "0.10"),
    ("HDFCBANK", 1333, "INE040A01034", "985.50", "0.05"),
    ("SBIN", 3045, "INE062A01020", "820.00", "0.05"),
    ("ITC", 1660, "INE154A01025", "410.00", "0.05"),
)


class Refusal(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


@dataclass
class Scrip:
    exchange: str
    scrip_code: int
    symbol: str
    name: str
    isin: str
    close: Decimal
    tick: Decimal
    lot: int = 1
    band_percent: Decimal = Decimal("10")  # F&O stocks: the 10% operating range stands in for a band
    ltp: Decimal = Decimal("0")

    @property
    def lower(self) -> Decimal:
        return to_tick(self.close * (100 - self.band_percent) / 100, self.tick, ROUND_CEILING)

    @property
    def upper(self) -> Decimal:
        return to_tick(self.close * (100 + self.band_percent) / 100, self.tick, ROUND_FLOOR)


@dataclass
class EmuOrder:
    order_id: str
    customer_id: str
    scrip: Scrip
    side: str
    qty: int
    price: Decimal
    trigger: Decimal
    product: str
    validity: str
    channel_user: str
    placed: str
    status: str = "In-Process"
    exec_qty: int = 0
    exec_value: Decimal = Decimal("0")
    exchange_order_id: str = ""
    acked: str = ""
    last_mod: str = ""
    blocked: Decimal = Decimal("0")
    reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EmuAccount:
    customer_id: str
    login_id: str
    password: str
    api_key: str
    secret_key: str
    redirect_url: str
    vendor_key: str | None
    cash: Decimal
    collateral: Decimal
    utilised: Decimal = Decimal("0")
    positions: dict[tuple[str, int, str], list[Any]] = field(default_factory=dict)  # [buyQty, buyVal, sellQty, sellVal]
    holdings: list[dict[str, Any]] = field(default_factory=list)


def to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return ((value / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)


def money(value: Decimal) -> str:
    return f"{value.quantize(PAISA):f}"


def stamp() -> str:
    now = datetime.now(IST)
    return now.strftime("%Y-%m-%d %H:%M:%S") + f".{now.microsecond // 100000}"


def whole_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise Refusal(400, "InputException", f"{name} must be a whole number")
    return int(value)


def price_field(body: dict[str, Any], name: str) -> Decimal:
    value = body.get(name, "0")
    if not isinstance(value, str):
        raise Refusal(400, "InputException", f"{name} must be sent as a string")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Refusal(400, "InputException", f"{name} {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise Refusal(400, "InputException", f"{name} must not be negative")
    return amount


class OrderBooks:
    """NEW / MODIFY / CANCEL, fills, and the rows ShareKhan answers with."""

    def _place(self, account: EmuAccount, body: dict[str, Any]) -> dict[str, Any]:
        scrip = self._scrip_of(body)
        side, qty, price, trigger, product, validity = self._order_fields(body, scrip)
        if not body.get("channelUser"):
            raise Refusal(400, "InputException", "channelUser is required")
        blocked = self._margin(account, side, qty, price or trigger or scrip.ltp, product)
        order = EmuOrder(
            str(next(self._ids)),
            account.customer_id,
            scrip,
            side,
            qty,
            price,
            trigger,
            product,
            validity,
            str(body["channelUser"]),
            stamp(),
            blocked=blocked,
        )
        account.utilised += blocked
        self.book[order.order_id] = order
        self.ledger.book(account.customer_id, order.order_id, None, body)  # ShareKhan has no tag
        self._record(order, "NEW")
        order.status, order.exchange_order_id, order.acked = "Pending", str(next(self._exchange_ids)), stamp()
        self._record(order, "NEW")
        marketable = price == 0 or (side == "B" and price >= scrip.ltp) or (side == "S" and price <= scrip.ltp)
        if self.auto_fill and trigger == 0 and (price == 0 or validity == "IOC"):
            if marketable:
                self._fill(order, qty, scrip.ltp)
            else:
                self._close(order, "Cancelled", "NEW", "IOC order not matched")
        return {"orderId": order.order_id, "orderStatus": order.status}

    def _modify(self, account: EmuAccount, body: dict[str, Any]) -> dict[str, Any]:
        order = self._own_order(account, body, "modified")
        side, qty, price, trigger, product, validity = self._order_fields(body, order.scrip)
        if (side, product) != (order.side, order.product):
            raise Refusal(400, "InputException", f"Side and product of order {order.order_id} cannot be changed")
        if qty <= order.exec_qty:
            raise Refusal(400, "InputException", f"Quantity must be more than the {order.exec_qty} already executed")
        account.utilised -= order.blocked  # the old block is given back before the new one is checked
        try:
            blocked = self._margin(account, side, qty, price or trigger or order.scrip.ltp, product)
        except Refusal:
            account.utilised += order.blocked
            raise
        account.utilised += blocked
        order.blocked, order.qty, order.price, order.trigger, order.validity = blocked, qty, price, trigger, validity
        order.last_mod = stamp()
        self._record(order, "MODIFY")
        return {"orderId": order.order_id, "orderStatus": order.status}

    def _cancel(self, account: EmuAccount, body: dict[str, Any]) -> dict[str, Any]:
        order = self._own_order(account, body, "cancelled")
        self._close(order, "Cancelled", "CANCEL")
        return {"orderId": order.order_id, "orderStatus": order.status}

    def _order_fields(self, body: dict[str, Any], scrip: Scrip) -> tuple[str, int, Decimal, Decimal, str, str]:
        side = body.get("transactionType")
        if side not in ("B", "S"):
            raise Refusal(400, "InputException", "transactionType must be B or S")
        qty = whole_field(body, "quantity")
        if qty <= 0 or qty % scrip.lot:
            raise Refusal(400, "InputException", f"Quantity must be a positive multiple of the lot size {scrip.lot}")
        price, trigger = price_field(body, "price"), price_field(body, "triggerPrice")
        if body.get("productType") not in PRODUCT_CODES:
            raise Refusal(400, "InputException", f"Invalid productType {body.get('productType')}")
        if body.get("validity") not in ("GFD", "IOC"):
            raise Refusal(400, "InputException", f"Invalid validity {body.get('validity')}")
        if body.get("orderType") != "NORMAL" or body.get("rmsCode") != "ANY":
            raise Refusal(400, "InputException", "orderType must be NORMAL and rmsCode ANY")
        for label, value in (("Price", price), ("Trigger price", trigger)):
            if value and value % scrip.tick:
                raise Refusal(400, "InputException", f"{label} {value} is not a multiple of the tick size {scrip.tick}")
            if value and not scrip.lower <= value <= scrip.upper:
                raise Refusal(
                    400,
                    "InputException",
                    f"{label} {value} is outside the circuit limits {scrip.lower} - {scrip.upper}",
                )
        if price and trigger and (trigger > price if side == "B" else trigger < price):
            limit = "above" if side == "B" else "below"
            raise Refusal(
                400,
                "InputException",
                f"Trigger price must not be {limit} the price of a {'buy' if side == 'B' else 'sell'} stop-loss order",
            )
        return side, qty, price, trigger, str(body["productType"]), str(body["validity"])

    def _margin(self, account: EmuAccount, side: str, qty: int, price: Decimal, product: str) -> Decimal:
        if side != "B":
            return Decimal("0")
        required = (qty * price * MARGIN_RATE[product]).quantize(PAISA)
        available = account.cash + account.collateral - account.utilised
        if required > available:
            raise Refusal(
                500, "OrderException", f"Insufficient funds: required {money(required)}, available {money(available)}"
            )
        return required

    def _fill(self, order: EmuOrder, qty: int, price: Decimal) -> None:
        order.exec_qty += qty
        order.exec_value += qty * price
        order.trades.append(
            {
                "tradeId": str(next(self._trade_ids)),
                "orderId": order.order_id,
                "exchangeOrderId": order.exchange_order_id,
                "customerId": order.customer_id,
                "exchange": order.scrip.exchange,
                "scripCode": str(order.scrip.scrip_code),
                "tradingSymbol": order.scrip.symbol,
                "buySell": order.side,
                "productCode": PRODUCT_CODES[order.product],
                "tradeQty": qty,
                "tradePrice": money(price),
                "tradeDateTime": stamp(),
            }
        )
        book = self.accounts[order.customer_id].positions.setdefault(
            (order.scrip.exchange, order.scrip.scrip_code, order.product), [0, Decimal("0"), 0, Decimal("0")]
        )
        at = 0 if order.side == "B" else 2
        book[at] += qty
        book[at + 1] += qty * price
        order.status = "Fully Executed" if order.exec_qty == order.qty else "Partly Executed"
        self._record(order, "NEW")

    def _close(self, order: EmuOrder, status: str, request_status: str, reason: str = "") -> None:
        release = (order.blocked * (order.qty - order.exec_qty) / order.qty).quantize(PAISA)
        self.accounts[order.customer_id].utilised -= release
        order.blocked -= release
        order.status, order.reason, order.last_mod = status, reason, stamp()
        self._record(order, request_status)

    def _record(self, order: EmuOrder, request_status: str) -> None:
        order.history.append(self._row(order, request_status))

    def _row(self, order: EmuOrder, request_status: str) -> dict[str, Any]:
        scrip, cid = order.scrip, order.customer_id
        word = ("Market" if not order.price else "Limit") if not order.trigger else ("SL" if order.price else "SL-M")
        average = order.exec_value / order.exec_qty if order.exec_qty else Decimal("0")
        return {
            "orderId": order.order_id,
            "orsOrderId": int(order.exchange_order_id or 0),
            "exchangeOrderId": order.exchange_order_id,
            "customerId": int(cid) if cid.isdigit() else cid,
            "exchange": scrip.exchange,
            "scripCode": str(scrip.scrip_code),
            "tradingSymbol": scrip.symbol,
            "contract": scrip.symbol,
            "instrumentType": "EQ",
            "optionType": "",
            "strikePrice": "0",
            "expiryDate": "",
            "buySell": order.side,
            "orderType": word,
            "advOrderType": "NOR",
            "orderQty": order.qty,
            "openQty": 0 if order.status in FINAL else order.qty - order.exec_qty,
            "execQty": order.exec_qty,
            "disclosedQty": 0,
            "orderPrice": money(order.price),
            "orderTriggerPrice": money(order.trigger),
            "avgPrice": money(average),
            "orderStatus": order.status,
            "requestStatus": request_status,
            "goodtill": order.validity,
            "afterHour": "N",
            "channelCode": "SKAPI",
            "channelUser": order.channel_user,
            "orderDateTime": order.placed,
            "updateDate": stamp(),
            "exchAckDateTime": order.acked,
            "lastModTime": order.last_mod,
            "userId": "SKNSECM1",
            "productCode": PRODUCT_CODES[order.product],
            "rejectReason": order.reason,
        }

    def _account_order(self, account: EmuAccount, exchange: str, order_id: str, part: str) -> list[dict[str, Any]]:
        order = self.book.get(order_id)
        if order is None or order.customer_id != account.customer_id or order.scrip.exchange != exchange:
            return []
        return order.history if part == "history" else order.trades

    def _position_rows(self, account: EmuAccount) -> list[dict[str, Any]]:
        rows = []
        for (exchange, code, product), (buy_qty, buy_value, sell_qty, sell_value) in account.positions.items():
            scrip = self.scrips[(exchange, code)]
            buy_avg = buy_value / buy_qty if buy_qty else Decimal("0")
            sell_avg = sell_value / sell_qty if sell_qty else Decimal("0")
            net = buy_qty - sell_qty
            net_avg = buy_avg if net > 0 else sell_avg if net < 0 else Decimal("0")
            rows.append(
                {
                    "exchange": exchange,
                    "scripCode": str(code),
                    "tradingSymbol": scrip.symbol,
                    "productCode": PRODUCT_CODES[product],
                    "buyQty": buy_qty,
                    "sellQty": sell_qty,
                    "netQty": net,
                    "buyAvgPrice": money(buy_avg),
                    "sellAvgPrice": money(sell_avg),
                    "netAvgPrice": money(net_avg),
                    "ltp": money(scrip.ltp),
                    "realizedPnl": money(min(buy_qty, sell_qty) * (sell_avg - buy_avg)),
                    "unrealizedPnl": money(net * (scrip.ltp - net_avg)),
                }
            )
        return rows

    def _scrip_of(self, body: dict[str, Any]) -> Scrip:
        scrip = self.scrips.get((str(body.get("exchange")), whole_field(body, "scripCode")))
        if scrip is None:
            raise Refusal(
                400, "InputException", f"Invalid scripCode {body.get('scripCode')} for exchange {body.get('exchange')}"
            )
        if body.get("tradingSymbol") != scrip.symbol:
            raise Refusal(
                400,
                "InputException",
                f"tradingSymbol {body.get('tradingSymbol')} does not match scripCode {scrip.scrip_code}",
            )
        return scrip

    def _scrip_by_symbol(self, symbol: str) -> Scrip:
        return next(s for s in self.scrips.values() if s.symbol == symbol)

    def _own_order(self, account: EmuAccount, body: dict[str, Any], verb: str) -> EmuOrder:
        order = self.book.get(str(body.get("orderId")))
        if order is None or order.customer_id != account.customer_id:
            raise Refusal(400, "InputException", f"Order {body.get('orderId')} not found")
        if order.status in FINAL:
            raise Refusal(500, "OrderException", f"Order {order.order_id} is {order.status} and cannot be {verb}")
        return order
