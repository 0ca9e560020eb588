"""The Kite emulator's books: instruments, accounts, the order lifecycle, fills, positions, funds.

Pure state and Kite-shaped dicts; no HTTP here (tests/emulators/kite.py serves them). The caller
holds the emulator lock around every method. Refusals carry Kite's error envelope fields.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
ZERO = Decimal("0")
VARIETIES = {"regular", "amo"}  # co / iceberg / auction are not emulated
PRODUCTS = {"CNC", "MIS", "MTF", "NRML"}
ORDER_TYPES = {"MARKET", "LIMIT", "SL", "SL-M"}
VALIDITIES = {"DAY", "IOC", "TTL"}
FINAL = {"COMPLETE", "CANCELLED", "REJECTED"}
# Emulator margin model: delivery in full, MTF half, intraday at 5x leverage; selling delivery is free.
MARGIN_RATE = {"CNC": Decimal("1"), "NRML": Decimal("1"), "MTF": Decimal("0.5"), "MIS": Decimal("0.2")}
MAX_MODIFICATIONS = 25
SEGMENT_CODE = {"NSE": 1, "BSE": 4}  # Kite instrument_token = exchange_token * 256 + segment
CIRCUIT_MESSAGE = "Price exceeds circuit limits for the instrument. Place an order within the daily range."
NO_PROTECTION_MESSAGE = "Market orders without market protection are not allowed via API"
_TAG = re.compile(r"[A-Za-z0-9]{1,20}")


class Refusal(Exception):
    """A Kite error envelope raised from deep inside a view."""

    def __init__(self, message: str, error_type: str = "InputException", status: int = 400):
        super().__init__(message)
        self.message, self.error_type, self.status = message, error_type, status


def to_tick(value: Decimal, tick: Decimal, up: bool = False) -> Decimal:
    return (value / tick).to_integral_value(rounding="ROUND_CEILING" if up else "ROUND_FLOOR") * tick


def number(text: Any, name: str) -> Decimal | None:
    if text in (None, ""):
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        raise Refusal(f"Invalid `{name}`.") from None


def avg(value: Decimal, quantity: int) -> Decimal:
    return (value / quantity).quantize(Decimal("0.0001")).normalize() if quantity else ZERO


def margin_segment(cash: Decimal, collateral: Decimal, debits: Decimal) -> dict[str, Any]:
    """One segment of /user/margins: net = cash + collateral - debits, live_balance = cash - debits."""
    return {
        "enabled": True,
        "net": cash + collateral - debits,
        "available": {
            "adhoc_margin": ZERO,
            "cash": cash,
            "opening_balance": cash,
            "live_balance": cash - debits,
            "collateral": collateral,
            "intraday_payin": ZERO,
        },
        "utilised": {
            "debits": debits,
            "exposure": ZERO,
            "m2m_realised": ZERO,
            "m2m_unrealised": ZERO,
            "option_premium": ZERO,
            "payout": ZERO,
            "span": ZERO,
            "holding_sales": ZERO,
            "turnover": ZERO,
            "liquid_collateral": ZERO,
            "stock_collateral": collateral,
            "delivery": ZERO,
        },
    }


@dataclass
class Instrument:
    tradingsymbol: str
    name: str
    exchange_token: int
    last_price: Decimal
    tick_size: Decimal
    exchange: str = "NSE"
    isin: str = ""
    close: Decimal | None = None  # previous close: the circuit band is around it
    band_pct: Decimal = Decimal("10")
    volume: int = 0

    def __post_init__(self) -> None:
        self.close = self.close if self.close is not None else self.last_price

    @property
    def instrument_token(self) -> int:
        return self.exchange_token * 256 + SEGMENT_CODE.get(self.exchange, 1)

    def band(self) -> tuple[Decimal, Decimal]:
        width = self.close * self.band_pct / 100
        return to_tick(self.close - width, self.tick_size, up=True), to_tick(self.close + width, self.tick_size)


# Real NSE tokens and ISINs; prices plausible for 2026, ticks per the Apr 2025 NSE table.
SEED_INSTRUMENTS = (
    ("INFY", "INFOSYS", 1594, "1512.40", "0.10", "INE009A01021"),
    ("RELIANCE", "RELIANCE INDUSTRIES", 2885, "1418.70", "0.10", "INE002A01018"),
    ("TCS", "TATA CONSULTANCY SERV LT", 11536, "3215.50", "0.10", "INE467B01029"),
    ("HDFCBANK", "HDFC BANK", 1333, "978.35", "0.05", "INE040A01034"),
    ("SBIN", "STATE BANK OF INDIA", 3045, "812.45", "0.05", "INE062A01020"),
    ("ITC", "ITC", 1660, "412.85", "0.05", "INE154A01025"),
)


@dataclass
class KiteAccount:
    user_id: str
    password: str
    api_key: str
    api_secret: str
    redirect_url: str
    totp_secret: str | None
    user_name: str
    opening_balance: Decimal
    collateral: Decimal = ZERO
    holdings: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    trades: list[dict[str, Any]] = field(default_factory=list)
    # (exchange, symbol, product) -> [buy qty, buy value, sell qty, sell value]
    legs: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    modifications: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class KiteBook:
    """Instruments and the order lifecycle shared by every account of one emulator."""

    def __init__(self, clock: Callable[[], datetime], auto_fill: bool = True):
        self.clock = clock
        self.auto_fill = auto_fill
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self._seq = itertools.count(1)

    def now(self) -> str:
        return self.clock().astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")

    def instrument(self, exchange: Any, tradingsymbol: Any) -> Instrument:
        try:
            return self.instruments[(exchange, tradingsymbol)]
        except KeyError:
            raise Refusal("Invalid `tradingsymbol`.") from None

    def by_key(self, key: str) -> Instrument | None:
        """A quote key: "EXCHANGE:SYMBOL", or a numeric instrument token (Kite takes either)."""
        if key.isascii() and key.isdigit():
            token = int(key)
            return next((ins for ins in self.instruments.values() if ins.instrument_token == token), None)
        exchange, _, symbol = key.partition(":")
        return self.instruments.get((exchange, symbol))

    # ------------------------------------------------------------------ validation

    def check_prices(
        self, instrument: Instrument, order_type: str, price: Decimal | None, trigger: Decimal | None
    ) -> None:
        if order_type in ("LIMIT", "SL") and not (price and price > 0):
            raise Refusal("Invalid `price`.")
        if order_type in ("SL", "SL-M") and not (trigger and trigger > 0):
            raise Refusal("Invalid `trigger_price`.")
        lower, upper = instrument.band()
        for label, value in (
            ("price", price if order_type in ("LIMIT", "SL") else None),
            ("trigger price", trigger if order_type in ("SL", "SL-M") else None),
        ):
            if value is None:
                continue
            if value % instrument.tick_size:
                raise Refusal(
                    f"Tick size for this script is {instrument.tick_size}. "
                    f"Kindly enter {label} in the multiple of tick size for this script."
                )
            if not lower <= value <= upper:
                raise Refusal(CIRCUIT_MESSAGE)

    @staticmethod
    def check_protection(order_type: str, protection: Decimal | None) -> None:
        if order_type not in ("MARKET", "SL-M"):
            return
        if not protection:
            raise Refusal(NO_PROTECTION_MESSAGE)
        if protection != -1 and not ZERO < protection <= 100:
            raise Refusal("Invalid `market_protection`.")

    def validate(self, variety: str, form: Mapping[str, str]) -> tuple[Instrument, dict[str, Any]]:
        if variety not in VARIETIES:
            raise Refusal("Invalid `variety`.")
        instrument = self.instrument(form.get("exchange"), form.get("tradingsymbol"))
        values = {
            "transaction_type": form.get("transaction_type"),
            "product": form.get("product"),
            "order_type": form.get("order_type"),
            "validity": form.get("validity") or "DAY",
        }
        for name, allowed in (
            ("transaction_type", {"BUY", "SELL"}),
            ("product", PRODUCTS),
            ("order_type", ORDER_TYPES),
            ("validity", VALIDITIES),
        ):
            if values[name] not in allowed:
                raise Refusal(f"Invalid `{name}`.")
        quantity = form.get("quantity", "")
        if not quantity.isdigit() or int(quantity) <= 0:
            raise Refusal("Invalid `quantity`.")
        tag = form.get("tag") or None
        if tag is not None and not _TAG.fullmatch(tag):
            raise Refusal("Invalid `tag`.")
        price, trigger = number(form.get("price"), "price"), number(form.get("trigger_price"), "trigger_price")
        protection = number(form.get("market_protection"), "market_protection")
        self.check_prices(instrument, values["order_type"], price, trigger)
        self.check_protection(values["order_type"], protection)
        values.update(
            quantity=int(quantity),
            price=price or ZERO,
            trigger_price=trigger or ZERO,
            market_protection=protection or ZERO,
            tag=tag,
            variety=variety,
            validity_ttl=int(form["validity_ttl"]) if form.get("validity_ttl", "").isdigit() else None,
            disclosed_quantity=int(form.get("disclosed_quantity") or 0),
        )
        return instrument, values

    # ------------------------------------------------------------------ lifecycle

    def new_order(self, account: KiteAccount, instrument: Instrument, values: dict[str, Any]) -> dict[str, Any]:
        """Book an accepted request and walk it through Kite's words: RMS, then the exchange."""
        order_id = self.clock().astimezone(IST).strftime("%y%m%d") + f"{next(self._seq):09d}"
        order = {
            "placed_by": account.user_id,
            "order_id": order_id,
            "exchange_order_id": None,
            "parent_order_id": None,
            "status": "",
            "status_message": None,
            "status_message_raw": None,
            "order_timestamp": self.now(),
            "exchange_update_timestamp": None,
            "exchange_timestamp": None,
            "variety": values["variety"],
            "modified": False,
            "exchange": instrument.exchange,
            "tradingsymbol": instrument.tradingsymbol,
            "instrument_token": instrument.instrument_token,
            "order_type": values["order_type"],
            "transaction_type": values["transaction_type"],
            "validity": values["validity"],
            "validity_ttl": values["validity_ttl"],
            "product": values["product"],
            "quantity": values["quantity"],
            "disclosed_quantity": values["disclosed_quantity"],
            "price": values["price"],
            "trigger_price": values["trigger_price"],
            "average_price": ZERO,
            "filled_quantity": 0,
            "pending_quantity": values["quantity"],
            "cancelled_quantity": 0,
            "market_protection": values["market_protection"],
            "meta": {},
            "tag": values["tag"],
            "tags": [values["tag"]] if values["tag"] else [],
            "guid": f"{order_id}-emu",
        }
        account.orders[order_id] = order
        self.transition(account, order, "PUT ORDER REQ RECEIVED")
        self.transition(account, order, "VALIDATION PENDING")
        required, available = self.margin_for(order, order["quantity"]), self.available(account, exclude=order_id)
        if required > available:
            self.transition(
                account,
                order,
                "REJECTED",
                pending_quantity=0,
                status_message=(
                    f"Insufficient funds. Required margin is {required:.2f} but available margin is {available:.2f}. "
                    "Check the orderbook for open orders."
                ),
                status_message_raw=(
                    f"RMS:Margin Exceeds,Required:{required:.2f}, Available:{available:.2f} for entity "
                    f"account-{account.user_id} across exchange across segment across product "
                ),
            )
            return order
        self.transition(account, order, "OPEN PENDING", exchange_order_id=f"13{order_id[-14:]:0>14}")
        self.transition(account, order, "TRIGGER PENDING" if order["order_type"] in ("SL", "SL-M") else "OPEN")
        if order["order_type"] == "MARKET" and self.auto_fill:
            self.fill(account, order, order["pending_quantity"], instrument.last_price)
        return order

    def transition(self, account: KiteAccount, order: dict[str, Any], status: str, **changes: Any) -> None:
        order.update(changes, status=status)
        if order["exchange_order_id"] and status not in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING"):
            order["exchange_update_timestamp"] = order["exchange_timestamp"] = self.now()
        account.history[order["order_id"]].append(dict(order))

    def modify(self, account: KiteAccount, order: dict[str, Any], form: Mapping[str, str]) -> None:
        if order["status"] in FINAL:
            raise Refusal(f"Order cannot be modified as it is {order['status'].lower()}.", "OrderException")
        if account.modifications[order["order_id"]] >= MAX_MODIFICATIONS:
            raise Refusal("Maximum allowed order modifications exceeded.")
        instrument = self.instrument(order["exchange"], order["tradingsymbol"])
        order_type = form.get("order_type") or order["order_type"]
        if order_type not in ORDER_TYPES:
            raise Refusal("Invalid `order_type`.")
        quantity = int(form["quantity"]) if form.get("quantity", "").isdigit() else order["quantity"]
        if quantity <= order["filled_quantity"]:
            raise Refusal("Invalid `quantity`.")
        price = number(form.get("price"), "price") or order["price"]
        trigger = number(form.get("trigger_price"), "trigger_price") or order["trigger_price"]
        protection = number(form.get("market_protection"), "market_protection") or order["market_protection"]
        self.check_prices(instrument, order_type, price, trigger)
        self.check_protection(order_type, protection)
        account.modifications[order["order_id"]] += 1
        untriggered = order["status"] == "TRIGGER PENDING" and order_type in ("SL", "SL-M")
        changes = {
            "order_type": order_type,
            "quantity": quantity,
            "price": price if order_type in ("LIMIT", "SL") else ZERO,
            "trigger_price": trigger if order_type in ("SL", "SL-M") else ZERO,
            "market_protection": protection,
            "validity": form.get("validity") or order["validity"],
            "pending_quantity": quantity - order["filled_quantity"],
            "modified": True,
        }
        for word in ("MODIFY VALIDATION PENDING", "MODIFY PENDING"):
            self.transition(account, order, word)
        self.transition(account, order, "MODIFIED", **changes)
        self.transition(account, order, "TRIGGER PENDING" if untriggered else "OPEN")
        if order_type == "MARKET" and self.auto_fill:
            self.fill(account, order, order["pending_quantity"], instrument.last_price)

    def cancel(self, account: KiteAccount, order: dict[str, Any]) -> None:
        if order["status"] in FINAL:
            raise Refusal(f"Order cannot be cancelled as it is {order['status'].lower()}.", "OrderException")
        self.transition(account, order, "CANCEL PENDING")
        self.transition(account, order, "CANCELLED", cancelled_quantity=order["pending_quantity"], pending_quantity=0)

    def fill(self, account: KiteAccount, order: dict[str, Any], quantity: int, price: Decimal) -> None:
        quantity = min(quantity, order["pending_quantity"])
        filled = order["filled_quantity"] + quantity
        average = avg(order["average_price"] * order["filled_quantity"] + price * quantity, filled)
        now = self.now()
        account.trades.append(
            {
                "trade_id": f"{next(self._seq):08d}",
                "order_id": order["order_id"],
                "exchange": order["exchange"],
                "tradingsymbol": order["tradingsymbol"],
                "instrument_token": order["instrument_token"],
                "product": order["product"],
                "average_price": price,
                "quantity": quantity,
                "exchange_order_id": order["exchange_order_id"],
                "transaction_type": order["transaction_type"],
                "fill_timestamp": now,
                "order_timestamp": now[11:],
                "exchange_timestamp": now,
            }
        )
        leg = account.legs.setdefault((order["exchange"], order["tradingsymbol"], order["product"]), [0, ZERO, 0, ZERO])
        side = 0 if order["transaction_type"] == "BUY" else 2
        leg[side] += quantity
        leg[side + 1] += price * quantity
        pending = order["quantity"] - filled - order["cancelled_quantity"]
        self.transition(
            account,
            order,
            "COMPLETE" if pending == 0 else "OPEN",
            filled_quantity=filled,
            pending_quantity=pending,
            average_price=average,
        )

    # ------------------------------------------------------------------ money

    def margin_for(self, order: Mapping[str, Any], quantity: int, price: Decimal | None = None) -> Decimal:
        if order["transaction_type"] == "SELL" and order["product"] in ("CNC", "MTF"):
            return ZERO
        instrument = self.instrument(order["exchange"], order["tradingsymbol"])
        price = price or order.get("price") or order.get("trigger_price") or instrument.last_price
        return (price * quantity * MARGIN_RATE[order["product"]]).quantize(Decimal("0.01"))

    def debits(self, account: KiteAccount, exclude: str | None = None) -> Decimal:
        total = ZERO
        for order in account.orders.values():
            if order["order_id"] == exclude or order["status"] == "REJECTED":
                continue
            total += self.margin_for(order, order["filled_quantity"], order["average_price"] or None)
            if order["status"] not in FINAL:
                total += self.margin_for(order, order["pending_quantity"])
        return total

    def available(self, account: KiteAccount, exclude: str | None = None) -> Decimal:
        return account.opening_balance + account.collateral - self.debits(account, exclude)

    def segment(self, account: KiteAccount) -> dict[str, Any]:
        return margin_segment(account.opening_balance, account.collateral, self.debits(account))

    @staticmethod
    def empty_segment() -> dict[str, Any]:
        return {**margin_segment(ZERO, ZERO, ZERO), "enabled": False}

    # ------------------------------------------------------------------ portfolio rows

    def position_rows(self, account: KiteAccount) -> list[dict[str, Any]]:
        rows = []
        for (exchange, symbol, product), (bq, bv, sq, sv) in account.legs.items():
            instrument = self.instrument(exchange, symbol)
            quantity, ltp = bq - sq, instrument.last_price
            buy_price, sell_price = avg(bv, bq), avg(sv, sq)
            pnl = sv - bv + quantity * ltp
            realised = min(bq, sq) * (sell_price - buy_price) if bq and sq else ZERO
            rows.append(
                {
                    "tradingsymbol": symbol,
                    "exchange": exchange,
                    "instrument_token": instrument.instrument_token,
                    "product": product,
                    "quantity": quantity,
                    "overnight_quantity": 0,
                    "multiplier": 1,
                    "average_price": buy_price if quantity > 0 else sell_price if quantity < 0 else ZERO,
                    "close_price": instrument.close,
                    "last_price": ltp,
                    "value": sv - bv,
                    "pnl": pnl,
                    "m2m": pnl,
                    "unrealised": pnl - realised,
                    "realised": realised,
                    "buy_quantity": bq,
                    "buy_price": buy_price,
                    "buy_value": bv,
                    "buy_m2m": bv,
                    "sell_quantity": sq,
                    "sell_price": sell_price,
                    "sell_value": sv,
                    "sell_m2m": sv,
                    "day_buy_quantity": bq,
                    "day_buy_price": buy_price,
                    "day_buy_value": bv,
                    "day_sell_quantity": sq,
                    "day_sell_price": sell_price,
                    "day_sell_value": sv,
                }
            )
        return rows

    def holding_rows(self, account: KiteAccount) -> list[dict[str, Any]]:
        rows = []
        for holding in account.holdings:
            instrument = self.instrument(holding.get("exchange", "NSE"), holding["tradingsymbol"])
            quantity, average = int(holding["quantity"]), holding["average_price"]
            ltp, close = instrument.last_price, instrument.close
            t1 = int(holding.get("t1_quantity", 0))  # part of `quantity` ("T+1 + realised"), not yet in demat
            used = self.sold_from_holding(account, instrument, quantity)
            rows.append(
                {
                    "tradingsymbol": instrument.tradingsymbol,
                    "exchange": instrument.exchange,
                    "instrument_token": instrument.instrument_token,
                    "isin": instrument.isin,
                    "product": "CNC",
                    "price": ZERO,
                    "quantity": quantity,
                    "used_quantity": used,
                    "t1_quantity": t1,
                    "realised_quantity": quantity - t1,
                    "authorised_quantity": 0,
                    "authorised_date": f"{self.now()[:10]} 00:00:00",
                    "authorisation": {},
                    "opening_quantity": quantity,
                    "short_quantity": 0,
                    "collateral_quantity": 0,
                    "collateral_type": "",
                    "discrepancy": False,
                    "average_price": average,
                    "last_price": ltp,
                    "close_price": close,
                    "pnl": (ltp - average) * quantity,
                    "day_change": ltp - close,
                    "day_change_percentage": ((ltp - close) * 100 / close).quantize(Decimal("0.0001")),
                    "mtf": {
                        "quantity": 0,
                        "used_quantity": 0,
                        "average_price": ZERO,
                        "value": ZERO,
                        "initial_margin": ZERO,
                    },
                }
            )
        return rows

    @staticmethod
    def sold_from_holding(account: KiteAccount, instrument: Instrument, quantity: int) -> int:
        """Kite's `used_quantity`: what today's CNC sells took from the holding. `quantity` itself
        stays as it opened until settlement; CNC bought and sold the same day nets in positions
        and uses none of it."""
        key = (instrument.exchange, instrument.tradingsymbol, "CNC")
        bought, _, sold, _ = account.legs.get(key, (0, ZERO, 0, ZERO))
        return max(0, min(quantity, sold - bought))

    @staticmethod
    def ohlc(instrument: Instrument) -> dict[str, Decimal]:
        ltp, close = instrument.last_price, instrument.close
        return {"open": close, "high": max(ltp, close), "low": min(ltp, close), "close": close}

    @staticmethod
    def ltp_row(instrument: Instrument) -> dict[str, Any]:
        return {"instrument_token": instrument.instrument_token, "last_price": instrument.last_price}

    def ohlc_row(self, instrument: Instrument) -> dict[str, Any]:
        return {**self.ltp_row(instrument), "ohlc": self.ohlc(instrument)}

    def quote_row(self, instrument: Instrument) -> dict[str, Any]:
        ltp, tick, close = instrument.last_price, instrument.tick_size, instrument.close
        lower, upper = instrument.band()
        depth = {
            "buy": [{"price": ltp - tick * n, "quantity": 100 * n, "orders": n} for n in range(1, 6)],
            "sell": [{"price": ltp + tick * n, "quantity": 120 * n, "orders": n + 1} for n in range(1, 6)],
        }
        return {
            "instrument_token": instrument.instrument_token,
            "timestamp": self.now(),
            "last_trade_time": self.now(),
            "last_price": ltp,
            "last_quantity": 5,
            "buy_quantity": 1500,
            "sell_quantity": 1800,
            "volume": instrument.volume,
            "average_price": ltp,
            "oi": 0,
            "oi_day_high": 0,
            "oi_day_low": 0,
            "net_change": ltp - close,
            "lower_circuit_limit": lower,
            "upper_circuit_limit": upper,
            "ohlc": self.ohlc(instrument),
            "depth": depth,
        }
