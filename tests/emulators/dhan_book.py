"""The books behind the Dhan emulator: instruments (the desk's NSE sample master), client accounts,
orders, trades, positions, holdings and funds, rendered as DhanHQ v2 rows (field names as Dhan
spells them, misspellings included: `availabelBalance`).

Every method that changes state expects the caller to hold the emulator's lock.
"""

from __future__ import annotations

import csv
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp

IST = ZoneInfo("Asia/Kolkata")
WIRE_TIME = "%Y-%m-%d %H:%M:%S"
ZERO = Decimal("0")
SAMPLE_MASTER = Path(__file__).resolve().parents[2] / "webapp" / "instruments" / "nse_sample.csv"

PRODUCTS = ("CNC", "INTRADAY", "MARGIN", "MTF")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_MARKET")
VALIDITIES = ("DAY", "IOC")
FINAL = ("TRADED", "REJECTED", "CANCELLED", "EXPIRED")
# Share of the order value the emulated RMS blocks, by product (a rough broker-like schedule).
MARGIN_FACTOR = {"CNC": Decimal("1"), "MTF": Decimal("0.5"), "INTRADAY": Decimal("0.2"), "MARGIN": Decimal("1")}
SEGMENTS = {"NSE_EQ": "NSE", "BSE_EQ": "BSE"}


def now_ist() -> datetime:
    return datetime.now(IST)


def stamp(moment: datetime) -> str:
    return moment.astimezone(IST).strftime(WIRE_TIME)


def dec(value: Any) -> Decimal | None:
    """A number field sent as a number or a string ("" and None are zero); None when unreadable."""
    try:
        return ZERO if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def whole(value: Any) -> int:
    """An integer field, or -1 when it is not one."""
    number = dec(value)
    if number is None or number != number.to_integral_value():
        return -1
    return int(number)


def num(value: Decimal) -> float | int:
    """Dhan sends prices as JSON numbers."""
    return int(value) if value == value.to_integral_value() else float(value)


def rounded(value: Decimal, tick: Decimal) -> Decimal:
    return ((value / tick).to_integral_value(ROUND_HALF_UP) * tick).quantize(tick)


@dataclass
class Instrument:
    segment: str  # NSE_EQ
    security_id: str  # the exchange token as a string
    symbol: str
    name: str
    ltp: Decimal
    tick: Decimal
    isin: str
    band_pct: Decimal
    lot: int = 1
    close: Decimal = ZERO
    volume: int = 0

    @property
    def lower(self) -> Decimal:
        return rounded(self.close * (1 - self.band_pct / 100), self.tick)

    @property
    def upper(self) -> Decimal:
        return rounded(self.close * (1 + self.band_pct / 100), self.tick)

    def quote(self) -> dict[str, Any]:
        """A /marketfeed/quote entry."""
        bids = [
            {"quantity": 100 * (i + 1), "orders": i + 1, "price": num(self.ltp - self.tick * (i + 1))} for i in range(5)
        ]
        asks = [
            {"quantity": 100 * (i + 1), "orders": i + 1, "price": num(self.ltp + self.tick * (i + 1))} for i in range(5)
        ]
        return {
            "average_price": num(self.ltp),
            "buy_quantity": 1500,
            "sell_quantity": 1500,
            "depth": {"buy": bids, "sell": asks},
            "last_price": num(self.ltp),
            "last_quantity": 1,
            "last_trade_time": now_ist().strftime("%d/%m/%Y %H:%M:%S"),
            "lower_circuit_limit": num(self.lower),
            "upper_circuit_limit": num(self.upper),
            "net_change": num(self.ltp - self.close),
            "ohlc": self.ohlc(),
            "oi": 0,
            "oi_day_high": 0,
            "oi_day_low": 0,
            "volume": self.volume,
        }

    def ohlc(self) -> dict[str, Any]:
        return {
            "open": num(self.close),
            "close": num(self.close),
            "high": num(max(self.ltp, self.close)),
            "low": num(min(self.ltp, self.close)),
        }

    def master_row(self) -> dict[str, str]:
        """A compact scrip-master row; the tick size in paise, as the real file seems to carry it."""
        return {
            "SEM_EXM_EXCH_ID": SEGMENTS[self.segment],
            "SEM_SEGMENT": "E",
            "SEM_SMST_SECURITY_ID": self.security_id,
            "SEM_INSTRUMENT_NAME": "EQUITY",
            "SEM_EXPIRY_CODE": "0",
            "SEM_TRADING_SYMBOL": self.symbol,
            "SEM_LOT_UNITS": f"{self.lot}.0",
            "SEM_CUSTOM_SYMBOL": self.name,
            "SEM_EXPIRY_DATE": "",
            "SEM_STRIKE_PRICE": "",
            "SEM_OPTION_TYPE": "",
            "SEM_TICK_SIZE": f"{self.tick * 100:.4f}",
            "SEM_EXPIRY_FLAG": "NA",
            "SEM_EXCH_INSTRUMENT_TYPE": "ES",
            "SEM_SERIES": "EQ",
            "SM_SYMBOL_NAME": self.name,
        }


def load_sample_master() -> dict[tuple[str, str], Instrument]:
    instruments = {}
    with SAMPLE_MASTER.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["exchange"] != "NSE" or row["instrument_type"] != "EQ":
                continue
            price = Decimal(row["last_price"])
            inst = Instrument(
                segment="NSE_EQ",
                security_id=str(int(row["exchange_token"])),
                symbol=row["tradingsymbol"],
                name=row["name"],
                ltp=price,
                tick=Decimal(row["tick_size"]),
                isin=row["isin"],
                band_pct=Decimal(row.get("band_pct") or "10"),
                lot=int(row["lot_size"] or 1),
                close=price,
            )
            instruments[(inst.segment, inst.security_id)] = inst
    return instruments


@dataclass
class EmuOrder:
    order_id: str
    client_id: str
    inst: Instrument
    side: str
    product: str
    order_type: str
    validity: str
    quantity: int
    price: Decimal
    trigger: Decimal
    correlation_id: str
    status: str = "TRANSIT"
    filled: int = 0
    avg: Decimal = ZERO
    reason: str = ""
    created: datetime = field(default_factory=now_ist)
    updated: datetime = field(default_factory=now_ist)
    modifications: int = 0

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def row(self) -> dict[str, Any]:
        return {
            "dhanClientId": self.client_id,
            "orderId": self.order_id,
            "exchangeOrderId": f"1{self.order_id[-15:]:0>15}" if self.status != "TRANSIT" else "",
            "correlationId": self.correlation_id,
            "orderStatus": self.status,
            "transactionType": self.side,
            "exchangeSegment": self.inst.segment,
            "productType": self.product,
            "orderType": self.order_type,
            "validity": self.validity,
            "tradingSymbol": self.inst.symbol,
            "securityId": self.inst.security_id,
            "quantity": self.quantity,
            "disclosedQuantity": 0,
            "price": num(self.price),
            "triggerPrice": num(self.trigger),
            "afterMarketOrder": False,
            "boProfitValue": 0,
            "boStopLossValue": 0,
            "legName": "NA",
            "createTime": stamp(self.created),
            "updateTime": stamp(self.updated),
            "exchangeTime": stamp(self.updated) if self.status != "TRANSIT" else "0001-01-01 00:00:00",
            "drvExpiryDate": "0001-01-01 00:00:00",
            "drvOptionType": None,
            "drvStrikePrice": 0.0,
            "omsErrorCode": "0" if not self.reason else "16283",
            "omsErrorDescription": self.reason,
            "algoId": "",
            "remainingQuantity": self.quantity - self.filled,
            "averageTradedPrice": num(self.avg),
            "filledQty": self.filled,
        }


@dataclass
class Position:
    buy_qty: int = 0
    buy_value: Decimal = ZERO
    sell_qty: int = 0
    sell_value: Decimal = ZERO


@dataclass
class Account:
    client_id: str
    pin: str
    totp_secret: str
    cash: Decimal
    holdings: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # security id -> (qty, avg)
    blocked: Decimal = ZERO
    orders: list[EmuOrder] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)  # (security id, product)


class DhanBook:
    def __init__(self) -> None:
        self.instruments = load_sample_master()
        self.accounts: dict[str, Account] = {}
        self.orders: dict[str, EmuOrder] = {}
        self._ids = itertools.count(secrets.randbelow(10**6) * 1000 + 112111182198)
        self._trade_ids = itertools.count(secrets.randbelow(10**6) * 1000 + 15100000)
        self._clients = itertools.count(1100000001 + secrets.randbelow(10**5) * 100)

    def by_symbol(self, symbol: str, segment: str = "NSE_EQ") -> Instrument:
        return next(i for i in self.instruments.values() if i.symbol == symbol and i.segment == segment)

    def new_account(self, cash: Decimal, holdings: dict[str, Any]) -> Account:
        client_id = str(next(self._clients))
        account = Account(client_id, f"{secrets.randbelow(10**6):06d}", pyotp.random_base32(), cash)
        for symbol, qty in holdings.items():
            inst = self.by_symbol(symbol)
            account.holdings[inst.security_id] = (int(qty), inst.ltp)
        self.accounts[client_id] = account
        return account

    # ------------------------------------------------------------------ orders

    def check(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The place body's fields, parsed; or an input problem (DH-905)."""
        segment = str(body.get("exchangeSegment") or "")
        inst = self.instruments.get((segment, str(body.get("securityId") or "").strip()))
        fields = {
            "inst": inst,
            "side": str(body.get("transactionType") or "").upper(),
            "product": str(body.get("productType") or "").upper(),
            "order_type": str(body.get("orderType") or "").upper(),
            "validity": str(body.get("validity") or "DAY").upper(),
            "quantity": whole(body.get("quantity")),
            "price": dec(body.get("price")),
            "trigger": dec(body.get("triggerPrice")),
            "correlation_id": str(body.get("correlationId") or ""),
        }
        if inst is None:
            return fields, "Invalid securityId or exchangeSegment"
        if fields["side"] not in ("BUY", "SELL"):
            return fields, "Invalid transactionType"
        if fields["product"] not in PRODUCTS:
            return fields, "Invalid productType"
        if fields["order_type"] not in ORDER_TYPES:
            return fields, "Invalid orderType"
        if fields["validity"] not in VALIDITIES:
            return fields, "Invalid validity"
        if fields["quantity"] <= 0:
            return fields, "Invalid quantity"
        if fields["price"] is None or fields["trigger"] is None:
            return fields, "Invalid price"
        if fields["order_type"] in ("LIMIT", "STOP_LOSS") and fields["price"] <= 0:
            return fields, "Price is required for a LIMIT order"
        if fields["order_type"] in ("STOP_LOSS", "STOP_LOSS_MARKET") and fields["trigger"] <= 0:
            return fields, "Trigger price is required for a stop-loss order"
        cid = fields["correlation_id"]
        if len(cid) > 30 or any(not (c.isascii() and (c.isalnum() or c in " _-")) for c in cid):
            return fields, "Invalid correlationId"
        for key in ("price", "trigger"):
            value = fields[key]
            if value and value % inst.tick:
                return fields, f"{'Price' if key == 'price' else 'Trigger price'} is not a multiple of tick size"
        return fields, ""

    def new_order(self, account: Account, fields: dict[str, Any]) -> EmuOrder:
        order = EmuOrder(order_id=str(next(self._ids)), client_id=account.client_id, **fields)
        self.orders[order.order_id] = order
        account.orders.append(order)
        need = self.margin_for(order)
        if need > account.cash - account.blocked:
            order.status = "REJECTED"
            order.reason = "RMS:Margin Shortfall: insufficient funds"
        return order

    def margin_for(self, order: EmuOrder, quantity: int | None = None) -> Decimal:
        if order.side == "SELL" and order.product in ("CNC", "MTF"):
            return ZERO
        price = order.price if order.order_type in ("LIMIT", "STOP_LOSS") else max(order.inst.ltp, order.trigger)
        qty = order.quantity - order.filled if quantity is None else quantity
        return price * qty * MARGIN_FACTOR[order.product]

    def after_place(self, order: EmuOrder, auto_fill: bool) -> None:
        if order.status == "REJECTED":
            return
        order.status = "PENDING"
        account = self.accounts[order.client_id]
        account.blocked += self.margin_for(order)
        if auto_fill:
            self.match(order)
        if order.validity == "IOC" and not order.is_final:
            self.cancel(order)

    def match(self, order: EmuOrder) -> None:
        """MARKET fills at once at the LTP; LIMIT when marketable; stops once triggered."""
        if order.is_final:
            return
        ltp = order.inst.ltp
        kind = order.order_type
        if kind in ("STOP_LOSS", "STOP_LOSS_MARKET"):
            triggered = ltp >= order.trigger if order.side == "BUY" else ltp <= order.trigger
            if not triggered:
                return
            kind = "LIMIT" if kind == "STOP_LOSS" else "MARKET"
        if kind == "LIMIT" and not (ltp <= order.price if order.side == "BUY" else ltp >= order.price):
            return
        self.fill(order, order.quantity - order.filled, ltp)

    def fill(self, order: EmuOrder, qty: int, price: Decimal) -> None:
        account = self.accounts[order.client_id]
        qty = min(qty, order.quantity - order.filled)
        if qty <= 0:
            return
        account.blocked -= self.margin_for(order, qty)
        order.avg = (order.avg * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.status = "TRADED" if order.filled == order.quantity else "PART_TRADED"
        order.updated = now_ist()
        value = price * qty
        account.cash += -value if order.side == "BUY" else value
        pos = account.positions.setdefault((order.inst.security_id, order.product), Position())
        if order.side == "BUY":
            pos.buy_qty, pos.buy_value = pos.buy_qty + qty, pos.buy_value + value
        else:
            pos.sell_qty, pos.sell_value = pos.sell_qty + qty, pos.sell_value + value
        order.inst.volume += qty
        account.trades.append(
            {
                "dhanClientId": account.client_id,
                "orderId": order.order_id,
                "exchangeOrderId": order.row()["exchangeOrderId"],
                "exchangeTradeId": str(next(self._trade_ids)),
                "transactionType": order.side,
                "exchangeSegment": order.inst.segment,
                "productType": order.product,
                "orderType": order.order_type,
                "tradingSymbol": order.inst.symbol,
                "customSymbol": order.inst.name,
                "securityId": order.inst.security_id,
                "tradedQuantity": qty,
                "tradedPrice": num(price),
                "createTime": stamp(order.created),
                "updateTime": stamp(order.updated),
                "exchangeTime": stamp(order.updated),
                "drvExpiryDate": "NA",
                "drvOptionType": "NA",
                "drvStrikePrice": 0.0,
            }
        )

    def cancel(self, order: EmuOrder) -> None:
        account = self.accounts[order.client_id]
        account.blocked -= self.margin_for(order)
        order.status = "CANCELLED"
        order.updated = now_ist()

    def modify(self, order: EmuOrder, body: dict[str, Any], auto_fill: bool) -> str:
        if order.modifications >= 25:
            return "Maximum modifications reached for this order"
        order_type = str(body.get("orderType") or order.order_type).upper()
        quantity = whole(body.get("quantity")) if body.get("quantity") not in (None, "") else order.quantity
        price, trigger = dec(body.get("price")), dec(body.get("triggerPrice"))
        validity = str(body.get("validity") or order.validity).upper()
        if order_type not in ORDER_TYPES or validity not in VALIDITIES:
            return "Invalid orderType or validity"
        if quantity <= order.filled or price is None or trigger is None:
            return "Invalid quantity or price"
        if order_type in ("LIMIT", "STOP_LOSS") and price <= 0:
            return "Price is required for a LIMIT order"
        if order_type in ("STOP_LOSS", "STOP_LOSS_MARKET") and trigger <= 0:
            return "Trigger price is required for a stop-loss order"
        account = self.accounts[order.client_id]
        account.blocked -= self.margin_for(order)
        order.order_type, order.quantity, order.validity = order_type, quantity, validity
        order.price = price if order_type in ("LIMIT", "STOP_LOSS") else ZERO
        order.trigger = trigger if order_type in ("STOP_LOSS", "STOP_LOSS_MARKET") else ZERO
        order.modifications += 1
        order.updated = now_ist()
        account.blocked += self.margin_for(order)
        if auto_fill:
            self.match(order)
        return ""

    def reprice(self, inst: Instrument) -> None:
        for order in self.orders.values():
            if order.inst is inst and order.status in ("PENDING", "PART_TRADED"):
                self.match(order)

    # ------------------------------------------------------------------ rows

    def position_rows(self, account: Account) -> list[dict[str, Any]]:
        rows = []
        for (security_id, product), pos in account.positions.items():
            inst = self.instruments[("NSE_EQ", security_id)]
            net = pos.buy_qty - pos.sell_qty
            buy_avg = pos.buy_value / pos.buy_qty if pos.buy_qty else ZERO
            sell_avg = pos.sell_value / pos.sell_qty if pos.sell_qty else ZERO
            matched = min(pos.buy_qty, pos.sell_qty)
            realised = (sell_avg - buy_avg) * matched if matched else ZERO
            cost = buy_avg if net > 0 else sell_avg
            unrealised = (inst.ltp - cost) * net if net else ZERO
            rows.append(
                {
                    "dhanClientId": account.client_id,
                    "tradingSymbol": inst.symbol,
                    "securityId": security_id,
                    "positionType": "LONG" if net > 0 else "SHORT" if net < 0 else "CLOSED",
                    "exchangeSegment": inst.segment,
                    "productType": product,
                    "buyAvg": num(buy_avg.quantize(Decimal("0.01"))),
                    "costPrice": num(cost.quantize(Decimal("0.01"))),
                    "buyQty": pos.buy_qty,
                    "sellAvg": num(sell_avg.quantize(Decimal("0.01"))),
                    "sellQty": pos.sell_qty,
                    "netQty": net,
                    "realizedProfit": num(realised.quantize(Decimal("0.01"))),
                    "unrealizedProfit": num(unrealised.quantize(Decimal("0.01"))),
                    "rbiReferenceRate": 1.0,
                    "multiplier": 1,
                    "carryForwardBuyQty": 0,
                    "carryForwardSellQty": 0,
                    "carryForwardBuyValue": 0,
                    "carryForwardSellValue": 0,
                    "dayBuyQty": pos.buy_qty,
                    "daySellQty": pos.sell_qty,
                    "dayBuyValue": num(pos.buy_value),
                    "daySellValue": num(pos.sell_value),
                    "drvExpiryDate": "0001-01-01",
                    "drvOptionType": None,
                    "drvStrikePrice": 0.0,
                    "crossCurrency": False,
                }
            )
        return rows

    def holding_rows(self, account: Account) -> list[dict[str, Any]]:
        rows = []
        for security_id, (qty, avg) in account.holdings.items():
            inst = self.instruments[("NSE_EQ", security_id)]
            rows.append(
                {
                    "exchange": "ALL",
                    "tradingSymbol": inst.symbol,
                    "securityId": security_id,
                    "isin": inst.isin,
                    "totalQty": qty,
                    "dpQty": qty,
                    "t1Qty": 0,
                    "availableQty": qty,
                    "collateralQty": 0,
                    "avgCostPrice": num(avg),
                    "lastTradedPrice": num(inst.ltp),
                }
            )
        return rows

    def funds_row(self, account: Account) -> dict[str, Any]:
        available = account.cash - account.blocked
        return {
            "dhanClientId": account.client_id,
            "availabelBalance": num(available.quantize(Decimal("0.01"))),
            "sodLimit": num(account.cash),
            "collateralAmount": 0.0,
            "receiveableAmount": 0.0,
            "utilizedAmount": num(account.blocked.quantize(Decimal("0.01"))),
            "blockedPayoutAmount": 0.0,
            "withdrawableBalance": num(available.quantize(Decimal("0.01"))),
        }
