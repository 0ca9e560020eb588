"""The Angel One emulator's books: instruments, accounts, the order lifecycle, fills, positions, funds.

Everything here runs under the emulator's lock. Angel's words and units are used throughout: order
statuses in lower case ("open", "complete", "trigger pending", ...), prices in rupees, quantities
as strings in the order book, times as "05-Dec-2026 09:15:01" (IST), NSE equity trading symbols with
their series suffix ("INFY-EQ"), symbol tokens as strings.
"""

from __future__ import annotations

import csv
import itertools
import random
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from webapp.timeutil import IST

SAMPLE_MASTER = Path(__file__).resolve().parents[2] / "webapp" / "instruments" / "nse_sample.csv"
ZERO = Decimal("0")
PAISA = Decimal("0.01")
FINAL = frozenset({"complete", "rejected", "cancelled"})
STOP_TYPES = frozenset({"STOPLOSS_LIMIT", "STOPLOSS_MARKET"})
ORDER_TYPES = frozenset({"MARKET", "LIMIT", "STOPLOSS_LIMIT", "STOPLOSS_MARKET"})
PRODUCTS = frozenset({"DELIVERY", "INTRADAY", "CARRYFORWARD", "MARGIN", "BO"})
VARIETIES = frozenset({"NORMAL", "STOPLOSS", "AMO", "ROBO"})
DURATIONS = frozenset({"DAY", "IOC"})
INSUFFICIENT = (
    "Your order has been rejected due to Insufficient Funds. Available funds - Rs. {available} . "
    "You require Rs. {required} funds to execute this order."
)


class Refusal(Exception):
    """A request Angel refuses outright: {"status": false, "message", "errorcode"}."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code


def angel_time(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%d-%b-%Y %H:%M:%S")


def now_ist() -> datetime:
    return datetime.now(IST).replace(microsecond=0)


def wire_symbol(exchange: str, symbol: str) -> str:
    return f"{symbol}-EQ" if exchange == "NSE" else symbol


@dataclass
class Instrument:
    exchange: str
    symbol: str  # the desk's symbol ("INFY"); Angel's trading symbol is wire_symbol()
    name: str
    token: int
    ltp: Decimal
    tick: Decimal
    isin: str
    band_pct: Decimal
    open: Decimal = ZERO
    high: Decimal = ZERO
    low: Decimal = ZERO
    close: Decimal = ZERO
    volume: int = 250000

    def __post_init__(self) -> None:
        self.open = self.high = self.low = self.close = self.ltp

    @property
    def trading_symbol(self) -> str:
        return wire_symbol(self.exchange, self.symbol)

    def move(self, price: Decimal) -> None:
        self.ltp = price
        self.high, self.low = max(self.high, price), min(self.low, price)

    @property
    def band(self) -> tuple[Decimal, Decimal]:
        width = (self.close * self.band_pct / 100).quantize(PAISA)
        return self.close - width, self.close + width

    def master_row(self) -> dict[str, Any]:
        """A row of OpenAPIScripMaster.json: strings throughout, tick size in paise."""
        return {
            "token": str(self.token),
            "symbol": self.trading_symbol,
            "name": self.symbol,
            "expiry": "",
            "strike": "-1.000000",
            "lotsize": "1",
            "instrumenttype": "",
            "exch_seg": self.exchange,
            "tick_size": f"{self.tick * 100:.6f}",
        }


@dataclass
class EmuOrder:
    order_id: str
    unique_id: str
    client_code: str
    instrument: Instrument
    variety: str
    side: str
    order_type: str
    product: str
    duration: str
    quantity: int
    price: Decimal
    trigger: Decimal
    tag: str
    status: str = "open pending"
    text: str = ""
    filled: int = 0
    average: Decimal = ZERO
    exchange_order_id: str = ""
    updated: datetime = field(default_factory=now_ist)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def row(self) -> dict[str, Any]:
        stamp = angel_time(self.updated)
        return {
            "variety": self.variety,
            "ordertype": self.order_type,
            "producttype": self.product,
            "duration": self.duration,
            "price": self.price,
            "triggerprice": self.trigger,
            "quantity": str(self.quantity),
            "disclosedquantity": "0",
            "squareoff": ZERO,
            "stoploss": ZERO,
            "trailingstoploss": ZERO,
            "tradingsymbol": self.instrument.trading_symbol,
            "transactiontype": self.side,
            "exchange": self.instrument.exchange,
            "symboltoken": str(self.instrument.token),
            "ordertag": self.tag,
            "instrumenttype": "",
            "strikeprice": Decimal("-1"),
            "optiontype": "",
            "expirydate": "",
            "lotsize": "1",
            "cancelsize": str(self.quantity - self.filled if self.status == "cancelled" else 0),
            "averageprice": self.average,
            "filledshares": str(self.filled),
            "unfilledshares": str(self.quantity - self.filled),
            "orderid": self.order_id,
            "text": self.text,
            "status": self.status,
            "orderstatus": self.status,
            "updatetime": stamp,
            "exchtime": stamp if self.exchange_order_id else "",
            "exchorderupdatetime": stamp if self.exchange_order_id else "",
            "fillid": "",
            "filltime": "",
            "parentorderid": "",
            "uniqueorderid": self.unique_id,
            "exchangeorderid": self.exchange_order_id,
        }


@dataclass
class Account:
    client_code: str
    mpin: str
    totp_secret: str
    api_key: str
    cash: Decimal
    collateral: Decimal = ZERO
    holdings: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> {"quantity", "average"}
    orders: dict[str, EmuOrder] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    debits: Decimal = ZERO  # money blocked or spent today
    realised: Decimal = ZERO


class AngelBook:
    def __init__(self, lock: threading.RLock, auto_fill: bool = True):
        self.lock = lock
        self.auto_fill = auto_fill
        self.accounts: dict[str, Account] = {}
        self.instruments: dict[tuple[str, int], Instrument] = {}
        self.by_symbol: dict[tuple[str, str], Instrument] = {}
        self._ids = itertools.count(1)
        self.load_sample()

    # ------------------------------------------------------------------ instruments

    def load_sample(self) -> None:
        with SAMPLE_MASTER.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["instrument_type"] != "EQ":
                    continue
                self.add_instrument(
                    row["exchange"],
                    row["tradingsymbol"],
                    int(row["exchange_token"]),
                    Decimal(row["last_price"]),
                    name=row["name"],
                    tick=Decimal(row["tick_size"]),
                    isin=row["isin"],
                    band_pct=Decimal(row["band_pct"] or "20"),
                )

    def add_instrument(
        self,
        exchange: str,
        symbol: str,
        token: int,
        ltp: Decimal,
        *,
        name: str = "",
        tick: Decimal = Decimal("0.05"),
        isin: str = "",
        band_pct: Decimal = Decimal("20"),
    ) -> Instrument:
        instrument = Instrument(exchange, symbol, name or symbol, token, ltp, tick, isin, band_pct)
        self.instruments[(exchange, token)] = instrument
        self.by_symbol[(exchange, symbol)] = instrument
        return instrument

    def instrument(self, exchange: str, token: Any) -> Instrument | None:
        try:
            return self.instruments.get((str(exchange), int(str(token))))
        except ValueError:
            return None

    def set_price(self, exchange: str, symbol: str, price: Decimal) -> None:
        instrument = self.by_symbol[(exchange, symbol)]
        instrument.move(price)
        for account in self.accounts.values():
            for order in list(account.orders.values()):
                if order.instrument is instrument and not order.is_final:
                    self.match(account, order)

    # ------------------------------------------------------------------ accounts

    def add_account(self, client_code: str, *, cash: Decimal, holdings: Any, **fields: Any) -> Account:
        account = Account(client_code=client_code, cash=cash, **fields)
        for holding in holdings or ():
            account.holdings[str(holding["tradingsymbol"]).removesuffix("-EQ")] = {
                "quantity": int(holding["quantity"]),
                "average": Decimal(str(holding.get("average_price", holding.get("averageprice", "0")))),
                "exchange": holding.get("exchange", "NSE"),
            }
        self.accounts[client_code] = account
        return account

    def available(self, account: Account) -> Decimal:
        return account.cash + account.collateral - account.debits

    # ------------------------------------------------------------------ orders

    def new_order(self, account: Account, body: dict[str, Any]) -> EmuOrder:
        """Validate a placeOrder body (Refusal on a malformed one) and book the order."""
        exchange = str(body.get("exchange") or "")
        instrument = self.instrument(exchange, body.get("symboltoken") or "")
        if instrument is None or str(body.get("tradingsymbol") or "") != instrument.trading_symbol:
            raise Refusal("Invalid symbol token or trading symbol", "AB1009")
        variety, order_type = str(body.get("variety") or ""), str(body.get("ordertype") or "")
        product, duration = str(body.get("producttype") or ""), str(body.get("duration") or "DAY")
        if variety not in VARIETIES:
            raise Refusal("Invalid Order Variety", "AB1008")
        if product not in PRODUCTS:
            raise Refusal("Invalid Product Type", "AB1012")
        if order_type not in ORDER_TYPES or duration not in DURATIONS:
            raise Refusal("Invalid order type or duration", "AB4009")
        if (order_type in STOP_TYPES) != (variety == "STOPLOSS"):
            raise Refusal("Stop loss orders need the STOPLOSS variety", "AB4009")
        side = str(body.get("transactiontype") or "")
        if side not in ("BUY", "SELL"):
            raise Refusal("Invalid transaction type", "AB4009")
        try:
            quantity = int(str(body.get("quantity") or "0"))
            price = Decimal(str(body.get("price") or "0"))
            trigger = Decimal(str(body.get("triggerprice") or "0"))
        except (ValueError, ArithmeticError):
            raise Refusal("Invalid quantity or price", "AB4009") from None
        if quantity <= 0:
            raise Refusal("Quantity should be greater than zero", "AB4009")
        tag = str(body.get("ordertag") or "")
        if len(tag) > 20:
            raise Refusal("Ordertag length should not exceed 20 characters", "AB4008")
        if order_type in ("LIMIT", "STOPLOSS_LIMIT") and price <= 0:
            raise Refusal("Price should be greater than zero for a limit order", "AB4009")
        if order_type in STOP_TYPES and trigger <= 0:
            raise Refusal("Trigger price should be greater than zero", "AB4009")
        serial = next(self._ids)
        order = EmuOrder(
            order_id=f"{now_ist():%y%m%d}{serial:09d}",
            unique_id=str(uuid.uuid4()),
            client_code=account.client_code,
            instrument=instrument,
            variety=variety,
            side=side,
            order_type=order_type,
            product=product,
            duration=duration,
            quantity=quantity,
            price=price,
            trigger=trigger,
            tag=tag,
        )
        account.orders[order.order_id] = order
        return order

    def after_place(self, account: Account, order: EmuOrder) -> None:
        """RMS checks, then the exchange: open or trigger pending, and a fill when marketable."""
        instrument = order.instrument
        low, high = instrument.band
        if order.order_type in ("LIMIT", "STOPLOSS_LIMIT") and not (low <= order.price <= high):
            order.status = "rejected"
            order.text = f"Order price is out of the circuit limits {low} - {high}"
            return
        required = self.required(account, order, order.quantity)
        if required > 0 and required > self.available(account):
            order.status = "rejected"
            order.text = INSUFFICIENT.format(available=f"{self.available(account):.2f}", required=f"{required:.2f}")
            return
        order.exchange_order_id = f"1100000{secrets.randbelow(10**9):09d}"
        order.status = "trigger pending" if order.order_type in STOP_TYPES else "open"
        order.updated = now_ist()
        self.match(account, order)

    def required(self, account: Account, order: EmuOrder, quantity: int) -> Decimal:
        """Cash a buy needs; a delivery sell covered by holdings needs none (an uncovered one is refused
        by value, as a short would be)."""
        if order.side == "SELL" and order.product in ("DELIVERY", "MARGIN"):
            held = account.holdings.get(order.instrument.symbol, {}).get("quantity", 0)
            return ZERO if held >= quantity else order.instrument.ltp * quantity
        price = order.price if order.order_type in ("LIMIT", "STOPLOSS_LIMIT") else order.instrument.ltp
        return price * quantity

    def match(self, account: Account, order: EmuOrder) -> None:
        if not self.auto_fill or order.is_final:
            return
        ltp = order.instrument.ltp
        if order.status == "trigger pending":
            hit = ltp >= order.trigger if order.side == "BUY" else ltp <= order.trigger
            if not hit:
                return
            order.status, order.updated = "open", now_ist()
        if order.status != "open":
            return
        market = order.order_type in ("MARKET", "STOPLOSS_MARKET")
        marketable = market or (order.price >= ltp if order.side == "BUY" else order.price <= ltp)
        if marketable:
            self.fill(account, order, order.quantity - order.filled, ltp)
        elif order.duration == "IOC":
            order.status, order.text, order.updated = "cancelled", "IOC order cancelled", now_ist()

    def fill(self, account: Account, order: EmuOrder, quantity: int, price: Decimal) -> None:
        quantity = min(quantity, order.quantity - order.filled)
        if quantity <= 0:
            return
        order.average = ((order.average * order.filled + price * quantity) / (order.filled + quantity)).quantize(
            Decimal("0.0001")
        )
        order.filled += quantity
        order.status = "complete" if order.filled == order.quantity else "open"
        order.updated = now_ist()
        value = price * quantity
        account.debits += value if order.side == "BUY" else -value
        key = (order.instrument.exchange, order.instrument.symbol, order.product)
        position = account.positions.setdefault(
            key,
            {"instrument": order.instrument, "buyqty": 0, "sellqty": 0, "buyamount": ZERO, "sellamount": ZERO},
        )
        if order.side == "BUY":
            position["buyqty"] += quantity
            position["buyamount"] += value
        else:
            position["sellqty"] += quantity
            position["sellamount"] += value
        if order.side == "SELL" and order.product in ("DELIVERY", "MARGIN"):
            holding = account.holdings.get(order.instrument.symbol)
            if holding:
                holding["quantity"] = max(holding["quantity"] - quantity, 0)
        account.trades.append(
            {
                "exchange": order.instrument.exchange,
                "producttype": order.product,
                "tradingsymbol": order.instrument.trading_symbol,
                "instrumenttype": "",
                "symbolgroup": "EQ",
                "strikeprice": "-1",
                "optiontype": "",
                "expirydate": "",
                "marketlot": "1",
                "precision": "2",
                "multiplier": "-1",
                "tradevalue": value,
                "transactiontype": order.side,
                "fillprice": price,
                "fillsize": str(quantity),
                "orderid": order.order_id,
                "fillid": f"{50000000 + len(account.trades) + 1}",
                "filltime": now_ist().strftime("%H:%M:%S"),
            }
        )

    def modify(self, account: Account, order: EmuOrder, body: dict[str, Any]) -> None:
        if order.is_final:
            raise Refusal(f"Order is already {order.status}, cannot modify", "AB4010")
        order_type = str(body.get("ordertype") or order.order_type)
        if order_type not in ORDER_TYPES:
            raise Refusal("Invalid order type", "AB4009")
        try:
            quantity = int(str(body.get("quantity") or order.quantity))
            price = Decimal(str(body.get("price") if body.get("price") not in (None, "") else order.price))
            trigger = Decimal(
                str(body.get("triggerprice") if body.get("triggerprice") not in (None, "") else order.trigger)
            )
        except (ValueError, ArithmeticError):
            raise Refusal("Invalid quantity or price", "AB4009") from None
        if quantity < order.filled or quantity <= 0:
            raise Refusal("Quantity cannot be less than the filled quantity", "AB4009")
        order.order_type, order.quantity, order.price, order.trigger = order_type, quantity, price, trigger
        order.duration = str(body.get("duration") or order.duration)
        order.updated = now_ist()
        self.match(account, order)

    def cancel(self, order: EmuOrder) -> None:
        if order.is_final:
            raise Refusal(f"Order is already {order.status}, cannot cancel", "AB4011")
        order.status, order.updated = "cancelled", now_ist()

    # ------------------------------------------------------------------ reads

    def position_rows(self, account: Account) -> list[dict[str, Any]]:
        rows = []
        for (exchange, _symbol, product), p in account.positions.items():
            instrument: Instrument = p["instrument"]
            buyqty, sellqty = p["buyqty"], p["sellqty"]
            buyavg = (p["buyamount"] / buyqty).quantize(PAISA) if buyqty else ZERO
            sellavg = (p["sellamount"] / sellqty).quantize(PAISA) if sellqty else ZERO
            net = buyqty - sellqty
            closed = min(buyqty, sellqty)
            realised = ((sellavg - buyavg) * closed).quantize(PAISA) if closed else ZERO
            avg = buyavg if net > 0 else sellavg if net < 0 else ZERO
            unrealised = ((instrument.ltp - avg) * net).quantize(PAISA)
            rows.append(
                {
                    "exchange": exchange,
                    "symboltoken": str(instrument.token),
                    "producttype": product,
                    "tradingsymbol": instrument.trading_symbol,
                    "symbolname": instrument.symbol,
                    "instrumenttype": "",
                    "priceden": "1.00",
                    "pricenum": "1.00",
                    "genden": "1.00",
                    "gennum": "1.00",
                    "precision": "2",
                    "multiplier": "-1",
                    "boardlotsize": "1",
                    "buyqty": str(buyqty),
                    "sellqty": str(sellqty),
                    "buyamount": f"{p['buyamount']:.2f}",
                    "sellamount": f"{p['sellamount']:.2f}",
                    "symbolgroup": "EQ",
                    "strikeprice": "-1",
                    "optiontype": "",
                    "expirydate": "",
                    "lotsize": "1",
                    "cfbuyqty": "0",
                    "cfsellqty": "0",
                    "cfbuyamount": "0.00",
                    "cfsellamount": "0.00",
                    "buyavgprice": f"{buyavg:.2f}",
                    "sellavgprice": f"{sellavg:.2f}",
                    "avgnetprice": f"{avg:.2f}",
                    "netvalue": f"{p['sellamount'] - p['buyamount']:.2f}",
                    "netqty": str(net),
                    "totalbuyvalue": f"{p['buyamount']:.2f}",
                    "totalsellvalue": f"{p['sellamount']:.2f}",
                    "cfbuyavgprice": "0.00",
                    "cfsellavgprice": "0.00",
                    "totalbuyavgprice": f"{buyavg:.2f}",
                    "totalsellavgprice": f"{sellavg:.2f}",
                    "netprice": f"{avg:.2f}",
                    "ltp": f"{instrument.ltp:.2f}",
                    "close": f"{instrument.close:.2f}",
                    "realised": f"{realised:.2f}",
                    "unrealised": f"{unrealised:.2f}",
                }
            )
        return rows

    def holding_rows(self, account: Account) -> list[dict[str, Any]]:
        rows = []
        for symbol, h in account.holdings.items():
            instrument = self.by_symbol.get((h.get("exchange", "NSE"), symbol))
            ltp = instrument.ltp if instrument else h["average"]
            pnl = ((ltp - h["average"]) * h["quantity"]).quantize(PAISA)
            rows.append(
                {
                    "tradingsymbol": wire_symbol(h.get("exchange", "NSE"), symbol),
                    "exchange": h.get("exchange", "NSE"),
                    "isin": instrument.isin if instrument else "",
                    "t1quantity": 0,
                    "realisedquantity": h["quantity"],
                    "quantity": h["quantity"],
                    "authorisedquantity": 0,
                    "product": "DELIVERY",
                    "collateralquantity": None,
                    "collateraltype": None,
                    "haircut": 0,
                    "averageprice": h["average"],
                    "ltp": ltp,
                    "symboltoken": str(instrument.token) if instrument else "",
                    "close": instrument.close if instrument else ltp,
                    "profitandloss": pnl,
                    "pnlpercentage": (pnl * 100 / (h["average"] * h["quantity"])).quantize(PAISA)
                    if h["average"] and h["quantity"]
                    else ZERO,
                }
            )
        return rows

    def rms(self, account: Account) -> dict[str, str]:
        available = self.available(account)
        return {
            "net": f"{available:.4f}",
            "availablecash": f"{account.cash:.4f}",
            "availableintradaypayin": "0.0000",
            "availablelimitmargin": "0.0000",
            "collateral": f"{account.collateral:.4f}",
            "m2munrealized": "0.0000",
            "m2mrealized": "0.0000",
            "utiliseddebits": f"{max(account.debits, ZERO):.4f}",
            "utilisedspan": None,
            "utilisedoptionpremium": None,
            "utilisedholdingsales": None,
            "utilisedexposure": None,
            "utilisedturnover": None,
            "utilisedpayout": f"{max(account.debits, ZERO):.4f}",
        }

    def quote(self, instrument: Instrument) -> dict[str, Any]:
        low, high = instrument.band
        tick = instrument.tick
        return {
            "exchange": instrument.exchange,
            "tradingSymbol": instrument.trading_symbol,
            "symbolToken": str(instrument.token),
            "ltp": instrument.ltp,
            "open": instrument.open,
            "high": instrument.high,
            "low": instrument.low,
            "close": instrument.close,
            "lastTradeQty": 1,
            "exchFeedTime": angel_time(now_ist()),
            "exchTradeTime": angel_time(now_ist()),
            "netChange": instrument.ltp - instrument.close,
            "percentChange": ((instrument.ltp - instrument.close) * 100 / instrument.close).quantize(PAISA),
            "avgPrice": instrument.ltp,
            "tradeVolume": instrument.volume,
            "opnInterest": 0,
            "lowerCircuit": low,
            "upperCircuit": high,
            "totBuyQuan": 5000,
            "totSellQuan": 5000,
            "52WeekLow": low,
            "52WeekHigh": high,
            "depth": {
                "buy": [{"price": instrument.ltp - tick * i, "quantity": 100 * i, "orders": i} for i in range(1, 6)],
                "sell": [{"price": instrument.ltp + tick * i, "quantity": 100 * i, "orders": i} for i in range(1, 6)],
            },
        }

    def candles(self, instrument: Instrument, minutes: int, start: datetime, end: datetime) -> list[list[Any]]:
        """Made-up but fixed bars (seeded by token and day) on the tick grid, 09:15-15:30 IST, weekdays."""
        out: list[list[Any]] = []
        day: date = start.date()
        while day <= end.date():
            if day.weekday() < 5:
                out += self._day_bars(instrument, day, minutes, start, end)
            day += timedelta(days=1)
        return out

    def _day_bars(
        self, instrument: Instrument, day: date, minutes: int, start: datetime, end: datetime
    ) -> list[list[Any]]:
        rng = random.Random(f"{instrument.token}-{day.isoformat()}")
        tick = instrument.tick
        price = instrument.close
        opening = datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST)
        one_minute = []
        for i in range(375):
            o = price
            c = max(tick, o + tick * rng.randint(-3, 3))
            h, lo = max(o, c) + tick * rng.randint(0, 2), max(tick, min(o, c) - tick * rng.randint(0, 2))
            one_minute.append((opening + timedelta(minutes=i), o, h, lo, c, rng.randint(100, 5000)))
            price = c
        size = 375 if minutes >= 375 else minutes
        bars = []
        for i in range(0, 375, size):
            chunk = one_minute[i : i + size]
            bar_start = chunk[0][0] if size < 375 else datetime(day.year, day.month, day.day, tzinfo=IST)
            if not (start <= bar_start <= end):
                continue
            bars.append(
                [
                    bar_start.strftime("%Y-%m-%dT%H:%M:%S+05:30"),
                    chunk[0][1],
                    max(b[2] for b in chunk),
                    min(b[3] for b in chunk),
                    chunk[-1][4],
                    sum(b[5] for b in chunk),
                ]
            )
        return bars
