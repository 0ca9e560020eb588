"""The books behind the Motilal emulator: scrips, dealer logins, client accounts, orders, trades,
positions, holdings and margin, rendered as Motilal's rows (field names as Motilal spells them).

Every method that changes state expects the caller to hold the emulator's lock (`self.lock`).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import pyotp

IST = ZoneInfo("Asia/Kolkata")
WIRE_TIME = "%d-%b-%Y %H:%M:%S"
ZERO = Decimal("0")
PAISA = Decimal("0.01")

ORDER_TYPES = ("LIMIT", "MARKET", "STOPLOSS")
PRODUCTS = ("DELIVERY", "VALUEPLUS", "MTF", "NORMAL")
DURATIONS = ("DAY", "IOC", "GTD")
FINAL_WORDS = ("Traded", "Complete", "Cancel", "Rejected", "Error")
# Share of the order value the emulated RMS blocks, by product (a rough broker-like schedule).
MARGIN_FACTOR = {"DELIVERY": Decimal("1"), "MTF": Decimal("0.5"), "VALUEPLUS": Decimal("0.2"), "NORMAL": Decimal("1")}

# symbol, NSE token, price, ISIN: real NSE equities with plausible prices.
SEED = (
    ("INFY", 1594, "1534.60", "INE009A01021"),
    ("RELIANCE", 2885, "1412.30", "INE002A01018"),
    ("TCS", 11536, "3410.50", "INE467B01029"),
    ("HDFCBANK", 1333, "987.45", "INE040A01034"),
    ("SBIN", 3045, "812.35", "INE062A01020"),
    ("ITC", 1660, "412.80", "INE154A01025"),
)


def ist_stamp(moment: datetime) -> str:
    return moment.astimezone(IST).strftime(WIRE_TIME)


def parse_ist(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text).strip(), WIRE_TIME).replace(tzinfo=IST)
    except ValueError:
        return None


def paise(rupees: Decimal) -> int:
    return int((rupees * 100).to_integral_value(ROUND_HALF_UP))


def nse_tick(price: Decimal) -> Decimal:
    """NSE cash tick by price band (brokers.md §5.1)."""
    for ceiling, tick in ((250, "0.01"), (1000, "0.05"), (5000, "0.10"), (10000, "0.50"), (20000, "1.00")):
        if price <= ceiling:
            return Decimal(tick)
    return Decimal("5.00")


def _dec(value: Any) -> Decimal | None:
    try:
        return ZERO if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int:
    """An integer field, or -1 when it is not one (every caller treats -1 as invalid)."""
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return -1


@dataclass
class Scrip:
    exchange: str
    token: int
    symbol: str
    ltp: Decimal
    tick: Decimal
    close: Decimal
    lower: Decimal
    upper: Decimal
    isin: str = ""
    volume: int = 0

    def ltp_data(self) -> dict[str, Any]:
        """getltpdata's data: every price in paise."""
        return {
            "exchange": self.exchange,
            "scripcode": self.token,
            "ltp": paise(self.ltp),
            "open": paise(self.close),
            "high": paise(max(self.ltp, self.close)),
            "low": paise(min(self.ltp, self.close)),
            "close": paise(self.close),
            "bid": paise(self.ltp - self.tick),
            "ask": paise(self.ltp + self.tick),
            "volume": self.volume,
        }

    def master_row(self) -> dict[str, Any]:
        return {
            "exchangename": self.exchange,
            "scripcode": self.token,
            "scripname": f"{self.symbol} EQ",
            "scripshortname": self.symbol,
            "marketlot": 1,
            "instrumentname": "EQUITY",
            "expirydate": "",
            "strikeprice": 0,
            "ticksize": paise(self.tick),
            "optiontype": "",
        }


@dataclass
class Dealer:
    user_id: str
    password: str
    api_key: str
    dob: str
    pan: str
    totp_secret: str
    vendor_code: str = ""
    client_codes: set[str] = field(default_factory=set)


@dataclass
class ClientBook:
    code: str
    cash: Decimal
    collateral: Decimal = ZERO
    margin_used: Decimal = ZERO
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    holdings: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol -> (qty, avg)


@dataclass
class EmuOrder:
    order_id: str
    client_code: str
    scrip: Scrip
    side: str
    ordertype: str
    product: str
    duration: str
    qty: int
    price: Decimal
    trigger: Decimal
    tag: str
    algoid: str
    amo: str
    placed_at: datetime
    modified_at: datetime
    status: str = "Open"
    traded: int = 0
    avg: Decimal = ZERO
    error: str = ""
    exch_order_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_WORDS

    @property
    def remaining(self) -> int:
        return self.qty - self.traded

    def row(self) -> dict[str, Any]:
        return {
            "clientid": self.client_code,
            "uniqueorderid": self.order_id,
            "exchorderid": self.exch_order_id,
            "symbol": f"{self.scrip.symbol} EQ",
            "series": "EQ",
            "symboltoken": self.scrip.token,
            "exchange": self.scrip.exchange,
            "buyorsell": self.side,
            "ordertype": self.ordertype.title(),  # books echo Limit / Market / Stoploss
            "producttype": self.product,
            "orderduration": self.duration,
            "price": self.price,
            "triggerprice": self.trigger,
            "orderqty": self.qty,
            "qtytradedtoday": self.traded,
            "totalqtytraded": self.traded,
            "qtyremaining": self.remaining,
            "averageprice": self.avg,
            "disclosedquantity": 0,
            "orderstatus": self.status,
            "error": self.error,
            "tag": self.tag,
            "algoid": self.algoid,
            "amoorder": self.amo,
            "goodtilldate": "",
            "recordinserttime": ist_stamp(self.placed_at),
            "lastmodifiedtime": ist_stamp(self.modified_at),
        }


class MotilalBook:
    def __init__(self, lock: threading.RLock):
        self.lock = lock
        self.scrips: dict[tuple[str, int], Scrip] = {}
        self.dealers: dict[str, Dealer] = {}
        self.clients: dict[str, ClientBook] = {}
        self.orders: dict[str, EmuOrder] = {}
        self._ids = itertools.count(1)
        self._trade_nos = itertools.count(50000001)
        self._accounts = itertools.count(1)
        self._session_code = f"{secrets.randbelow(10**6):06d}"
        for symbol, token, price, isin in SEED:
            self.add_scrip(symbol, token, Decimal(price), isin=isin)

    # ------------------------------------------------------------------ set-up

    def add_scrip(
        self,
        symbol: str,
        token: int,
        ltp: Decimal,
        *,
        exchange: str = "NSE",
        tick: Decimal | str | None = None,
        band_pct: Decimal | str = "10",
        isin: str = "",
    ) -> Scrip:
        tick_size = Decimal(str(tick)) if tick is not None else nse_tick(ltp)
        band = ltp * Decimal(str(band_pct)) / 100

        def on_tick(value: Decimal) -> Decimal:
            return (value / tick_size).to_integral_value(ROUND_HALF_UP) * tick_size

        scrip = Scrip(exchange, int(token), symbol, ltp, tick_size, ltp, on_tick(ltp - band), on_tick(ltp + band), isin)
        with self.lock:
            self.scrips[(exchange, int(token))] = scrip
        return scrip

    def scrip(self, symbol: str, exchange: str = "NSE") -> Scrip:
        return next(s for s in self.scrips.values() if s.symbol == symbol and s.exchange == exchange)

    def add_dealer(
        self,
        user_id: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        dob: str = "15/08/1990",
        pan: str | None = None,
        client_codes: list[str] | None = None,
        cash: str | Decimal = "1000000",
        collateral: str | Decimal = "0",
        vendor_code: str = "",
        holdings: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A login (dealer or client) granted `client_codes`; an existing user id gains the codes."""
        with self.lock:
            n = next(self._accounts)
            user_id = user_id or f"DLR{n:03d}"
            dealer = self.dealers.get(user_id) or Dealer(
                user_id,
                password or secrets.token_urlsafe(9),
                api_key or secrets.token_hex(8),
                dob,
                pan or f"ABCDE{n:04d}F",
                pyotp.random_base32(),
                vendor_code,
            )
            self.dealers[user_id] = dealer
            codes = list(client_codes or [f"CL{n:04d}"])
            for code in codes:
                client = self.clients.setdefault(code, ClientBook(code, Decimal(str(cash)), Decimal(str(collateral))))
                for symbol, (qty, avg) in (holdings or {}).items():
                    client.holdings[symbol] = (int(qty), Decimal(str(avg)))
            dealer.client_codes.update(codes)
            return {
                "user_id": dealer.user_id,
                "password": dealer.password,
                "api_key": dealer.api_key,
                "two_fa": dealer.dob,
                "dob": dealer.dob,
                "pan": dealer.pan,
                "totp_secret": dealer.totp_secret,
                "vendor_code": dealer.vendor_code,
                "client_code": codes[0],
                "client_codes": sorted(dealer.client_codes),
            }

    # ------------------------------------------------------------------ orders

    def order(self, order_id: str) -> EmuOrder:
        return self.orders[order_id]

    def client_orders(self, code: str) -> list[EmuOrder]:
        return [o for o in self.orders.values() if o.client_code == code]

    def new_order(self, client: ClientBook, body: dict[str, Any]) -> EmuOrder | str:
        """A validated order, or the broker's refusal message."""
        words = self._order_words(body)
        if isinstance(words, str):
            return words
        scrip, side, ordertype, product, duration, qty, price, trigger = words
        problem = self.price_problem(scrip, ordertype, side, price, trigger) or self._rms_problem(
            client, scrip, side, product, qty, price
        )
        if problem:
            return problem
        now = datetime.now(IST).replace(microsecond=0)
        order = EmuOrder(
            f"{next(self._ids):07d}T{self._session_code}",
            client.code,
            scrip,
            side,
            ordertype,
            product,
            duration,
            qty,
            price,
            trigger,
            str(body.get("tag") or "").strip(),
            str(body.get("algoid") or ""),
            str(body.get("amoorder") or "N").upper(),
            now,
            now,
        )
        order.history.append(order.row())
        self.orders[order.order_id] = order
        return order

    def _order_words(self, body: dict[str, Any]) -> tuple | str:
        scrip = self.scrips.get((str(body.get("exchange") or "").upper(), _int(body.get("symboltoken"))))
        side = str(body.get("buyorsell") or "").upper()
        ordertype = str(body.get("ordertype") or "").upper()
        product = str(body.get("producttype") or "").upper()
        duration = str(body.get("orderduration") or "").upper()
        qty = _int(body.get("quantityinlot"))
        price, trigger = _dec(body.get("price")), _dec(body.get("triggerprice"))
        checks = (
            (scrip is None, "Invalid Scrip Code"),
            (side not in ("BUY", "SELL"), "Invalid Buy/Sell type"),
            (ordertype not in ORDER_TYPES, "Invalid Order Type"),
            (product not in PRODUCTS, "Invalid Product Type"),
            (duration not in DURATIONS, "Invalid Order Duration"),
            (qty <= 0, "Quantity should be greater than zero"),
            (price is None or trigger is None, "Invalid Price"),
            (len(str(body.get("tag") or "").strip()) > 10, "Tag length should not exceed 10 characters"),
            (str(body.get("amoorder") or "N").upper() not in ("Y", "N"), "Invalid AMO flag"),
        )
        problem = next((message for failed, message in checks if failed), None)
        if problem:
            return problem
        if ordertype == "MARKET":
            price, trigger = ZERO, ZERO
        return scrip, side, ordertype, product, duration, qty, price, trigger

    @staticmethod
    def price_problem(scrip: Scrip, ordertype: str, side: str, price: Decimal, trigger: Decimal) -> str | None:
        to_check = []
        if ordertype == "LIMIT":
            if price <= 0:
                return "Price should be greater than zero for a Limit order"
            to_check.append(price)
        if ordertype == "STOPLOSS":
            if trigger <= 0:
                return "Trigger price is mandatory for a Stoploss order"
            to_check += [trigger] + ([price] if price > 0 else [])
            if price > 0 and side == "BUY" and trigger > price:
                return "Trigger price should be less than or equal to price for a Buy Stoploss order"
            if price > 0 and side == "SELL" and trigger < price:
                return "Trigger price should be greater than or equal to price for a Sell Stoploss order"
        for value in to_check:
            if value % scrip.tick:
                return f"Price {value} should be in multiples of tick size {scrip.tick}"
            if not scrip.lower <= value <= scrip.upper:
                return f"Price {value} is outside the circuit limits {scrip.lower} - {scrip.upper}"
        return None

    @staticmethod
    def _rms_problem(client: ClientBook, scrip: Scrip, side: str, product: str, qty: int, price: Decimal) -> str | None:
        if side == "SELL" and product in ("DELIVERY", "MTF"):
            return None  # sold out of holdings
        required = (price if price > 0 else scrip.ltp) * qty * MARGIN_FACTOR[product]
        available = client.cash + client.collateral - client.margin_used
        if required > available:
            return f"RMS: Margin Exceeds, Required: {required:.2f}, Available: {available:.2f}"
        return None

    def after_place(self, order: EmuOrder, auto_fill: bool) -> None:
        order.exch_order_id = f"1100000{int(order.order_id[:7]):09d}"
        marketable = order.ordertype == "MARKET" or (
            order.ordertype == "LIMIT"
            and (order.price >= order.scrip.ltp if order.side == "BUY" else order.price <= order.scrip.ltp)
        )
        if order.ordertype == "MARKET" and auto_fill:
            self.fill(order, None, order.scrip.ltp)
        elif order.duration == "IOC":  # immediate or cancel: whatever did not match now dies
            if marketable and auto_fill:
                self.fill(order, None, order.scrip.ltp)
            else:
                order.status, order.error = "Cancel", "IOC order cancelled by the exchange"
                self.touch(order)

    def modify(self, order: EmuOrder, body: dict[str, Any], auto_fill: bool) -> str | None:
        ordertype = str(body.get("newordertype") or order.ordertype).upper()
        duration = str(body.get("neworderduration") or order.duration).upper()
        qty = _int(body.get("newquantityinlot"))
        price, trigger = _dec(body.get("newprice")), _dec(body.get("newtriggerprice"))
        if ordertype not in ORDER_TYPES or duration not in DURATIONS:
            return "Invalid Order Type or Duration"
        if qty <= order.traded:
            return "Quantity should be greater than traded quantity"
        if price is None or trigger is None:
            return "Invalid Price"
        if ordertype == "MARKET":
            price, trigger = ZERO, ZERO
        problem = self.price_problem(order.scrip, ordertype, order.side, price, trigger)
        if problem:
            return problem
        order.ordertype, order.duration, order.qty = ordertype, duration, qty
        order.price, order.trigger = price, trigger
        self.touch(order)
        if ordertype == "MARKET" and auto_fill:
            self.fill(order, None, order.scrip.ltp)
        return None

    def touch(self, order: EmuOrder) -> None:
        """Record a change; lastmodifiedtime moves forward even within the same second."""
        now = datetime.now(IST).replace(microsecond=0)
        order.modified_at = max(now, order.modified_at + timedelta(seconds=1))
        order.history.append(order.row())

    def fill(self, order: EmuOrder, qty: int | None, price: Decimal | None) -> None:
        qty = order.remaining if qty is None else int(qty)
        if order.is_final or not 0 < qty <= order.remaining:
            raise ValueError(f"cannot fill {qty} of order {order.order_id} ({order.status}, {order.remaining} open)")
        price = price or order.price or order.scrip.ltp
        order.avg = ((order.avg * order.traded + price * qty) / (order.traded + qty)).quantize(PAISA)
        order.traded += qty
        order.status = "Traded" if order.remaining == 0 else "Open"
        client = self.clients[order.client_code]
        self._book_trade(client, order, qty, price)
        if order.side == "BUY":
            client.margin_used += price * qty * MARGIN_FACTOR[order.product]
        self.touch(order)

    def _book_trade(self, client: ClientBook, order: EmuOrder, qty: int, price: Decimal) -> None:
        scrip = order.scrip
        client.trades.append(
            {
                "clientid": client.code,
                "uniqueorderid": order.order_id,
                "exchorderid": order.exch_order_id,
                "tradeno": str(next(self._trade_nos)),
                "symbol": f"{scrip.symbol} EQ",
                "symboltoken": scrip.token,
                "exchange": scrip.exchange,
                "producttype": order.product,
                "buyorsell": order.side,
                "tradeqty": qty,
                "tradeprice": price,
                "tradevalue": price * qty,
                "tradetime": ist_stamp(datetime.now(IST)),
            }
        )
        leg = client.positions.setdefault(
            (scrip.exchange, scrip.token, order.product),
            {"buyquantity": 0, "sellquantity": 0, "buyamount": ZERO, "sellamount": ZERO},
        )
        side = "buy" if order.side == "BUY" else "sell"
        leg[f"{side}quantity"] += qty
        leg[f"{side}amount"] += price * qty

    # ------------------------------------------------------------------ reports

    def position_rows(self, client: ClientBook) -> list[dict[str, Any]]:
        rows = []
        for (exchange, token, product), leg in client.positions.items():
            scrip = self.scrips[(exchange, token)]
            bought, sold = leg["buyquantity"], leg["sellquantity"]
            avg_buy = leg["buyamount"] / bought if bought else ZERO
            avg_sell = leg["sellamount"] / sold if sold else ZERO
            booked = min(bought, sold) * (avg_sell - avg_buy) if bought and sold else ZERO
            net = bought - sold
            mtm = net * (scrip.ltp - avg_buy) if net > 0 else -net * (avg_sell - scrip.ltp) if net else ZERO
            rows.append(
                {
                    "symbol": f"{scrip.symbol} EQ",
                    "symboltoken": token,
                    "exchange": exchange,
                    "productname": product,
                    **leg,
                    "LTP": scrip.ltp,
                    "marktomarket": mtm.quantize(PAISA),
                    "bookedprofitloss": booked.quantize(PAISA),
                }
            )
        return rows

    def holding_rows(self, client: ClientBook) -> list[dict[str, Any]]:
        rows = []
        for symbol, (qty, avg) in client.holdings.items():
            scrip = self.scrip(symbol)
            rows.append(
                {
                    "clientcode": client.code,
                    "scripname": symbol,
                    "scripisinno": scrip.isin,
                    "nsesymboltoken": scrip.token,
                    "dpquantity": qty,
                    "buyavgprice": avg,
                }
            )
        return rows

    def margin_rows(self, client: ClientBook) -> list[dict[str, Any]]:
        positions = self.position_rows(client)
        mtm = sum((p["marktomarket"] for p in positions), ZERO)
        booked = sum((p["bookedprofitloss"] for p in positions), ZERO)
        return [
            {"srno": 102, "particulars": "Available for Cash / SLBM Segment", "amount": client.cash},
            {"srno": 201, "particulars": "Cash Balance (Cash Margin)", "amount": client.cash},
            {"srno": 220, "particulars": "Non-Cash Balance (Non-Cash Margin)", "amount": client.collateral},
            {"srno": 300, "particulars": "Margin Usage Details (B)", "amount": client.margin_used.quantize(PAISA)},
            {"srno": 301, "particulars": "Margin Usage Equities", "amount": client.margin_used.quantize(PAISA)},
            {"srno": 600, "particulars": "Total Profit and Loss (MTM)", "amount": mtm},
            {"srno": 700, "particulars": "Total Profit and Loss (BPL)", "amount": booked},
        ]
