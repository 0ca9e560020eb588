"""The Upstox emulator's books: instruments (from the desk's sample master), accounts, orders with
their status history, trades, positions, holdings and funds. Words and units are Upstox's
(reference/brokers-upstox-dhan.md §1.5-1.7): products I/D/MTF, lower-case status words, rupees as
JSON numbers, times "YYYY-MM-DD HH:MM:SS" IST.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

IST = timezone(timedelta(hours=5, minutes=30))
SAMPLE = Path(__file__).resolve().parents[2] / "webapp" / "instruments" / "nse_sample.csv"
PRODUCTS = ("I", "D", "MTF")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC")
SIDES = ("BUY", "SELL")
FINAL = ("complete", "rejected", "cancelled")
MARGIN_RATE = {"I": Decimal("0.2"), "D": Decimal("1"), "MTF": Decimal("0.5")}  # share of value blocked
CENT = Decimal("0.01")


class Refusal(Exception):
    """An Upstox error answer: HTTP status, UDAPI code, message."""

    def __init__(self, status: int, code: str, message: str, property_path: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.property_path = status, code, message, property_path


@dataclass
class Instrument:
    symbol: str
    name: str
    exchange_token: int
    isin: str
    last_price: Decimal
    tick_size: Decimal
    close: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: int = 1_250_000

    @property
    def key(self) -> str:
        return f"NSE_EQ|{self.isin}"

    @property
    def quote_key(self) -> str:
        return f"NSE_EQ:{self.symbol}"

    def move(self, price: Decimal) -> None:
        self.last_price = price
        self.high, self.low = max(self.high, price), min(self.low, price)


def made_up_isin(exchange_token: int) -> str:
    """A deterministic ISIN of the right shape for a sample row without one: "INZ" (no real Indian
    issuer code starts with Z) + the exchange token in 8 digits + the ISIN check digit (Luhn over
    the letters-as-numbers digits). The emulator's own universe: never a real company's ISIN."""
    body = f"INZ{exchange_token:08d}"
    digits = "".join(str(int(c, 36)) for c in body)
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def load_instruments() -> dict[str, Instrument]:
    """The desk's sample NSE master, keyed by Upstox instrument key (NSE_EQ|ISIN). Every row is
    listed: one without an ISIN in the sample gets a made-up one (made_up_isin), used throughout."""
    out: dict[str, Instrument] = {}
    with SAMPLE.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["segment"] != "NSE":  # the cash segment only (indices are NSE_INDEX keys at Upstox)
                continue
            isin = row.get("isin") or made_up_isin(int(row["exchange_token"]))
            price = Decimal(row["last_price"])
            out[f"NSE_EQ|{isin}"] = Instrument(
                row["tradingsymbol"],
                row["name"],
                int(row["exchange_token"]),
                isin,
                price,
                Decimal(row["tick_size"]),
                close=price,
                open=price,
                high=price,
                low=price,
            )
    return out


@dataclass
class UpstoxAccount:
    user_id: str
    client_id: str  # the app's API key
    client_secret: str
    redirect_uri: str
    cash: Decimal
    user_name: str = "Emulated Client"
    email: str = "client@example.invalid"
    holdings: dict[str, dict[str, Any]] = field(default_factory=dict)  # instrument key -> {quantity, average_price}
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> current row
    history: list[dict[str, Any]] = field(default_factory=list)  # every row snapshot, in order
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (key, product) -> totals
    blocked: Decimal = Decimal("0")  # margin held by open orders
    spent: Decimal = Decimal("0")  # net cash out through fills (buys minus sells)


def money(value: Decimal) -> float:
    """Upstox sends rupees as JSON numbers."""
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


class UpstoxBook:
    def __init__(self) -> None:
        self.instruments = load_instruments()
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)

    def instrument(self, key: str) -> Instrument:
        try:
            return self.instruments[key]
        except KeyError:
            raise Refusal(400, "UDAPI100011", "Invalid Instrument key", "instrument_token") from None

    def by_symbol(self, symbol: str) -> Instrument:
        for instrument in self.instruments.values():
            if instrument.symbol == symbol:
                return instrument
        raise KeyError(symbol)

    # ---------------------------------------------------------------- funds

    @staticmethod
    def available(account: UpstoxAccount) -> Decimal:
        return account.cash - account.spent - account.blocked

    def funds(self, account: UpstoxAccount) -> dict[str, Any]:
        used = account.blocked + max(account.spent, Decimal("0"))
        equity = {
            "used_margin": money(used),
            "payin_amount": 0.0,
            "span_margin": 0.0,
            "adhoc_margin": 0.0,
            "notional_cash": 0.0,
            "available_margin": money(self.available(account)),
            "exposure_margin": 0.0,
        }
        zero = {k: 0.0 for k in equity}
        return {"equity": equity, "commodity": zero}

    # ---------------------------------------------------------------- orders

    def place(self, account: UpstoxAccount, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        instrument = self.instrument(body["instrument_token"])
        order_id = f"{now:%y%m%d}{next(self._ids):09d}"
        price = Decimal(str(body.get("price") or 0))
        trigger = Decimal(str(body.get("trigger_price") or 0))
        row = {
            "exchange": "NSE",
            "product": body["product"],
            "price": money(price),
            "quantity": int(body["quantity"]),
            "status": "put order req received",
            "guid": None,
            "tag": body.get("tag") or None,
            "instrument_token": instrument.key,
            "placed_by": account.user_id,
            "tradingsymbol": instrument.symbol,
            "trading_symbol": instrument.symbol,
            "order_type": body["order_type"],
            "validity": body["validity"],
            "trigger_price": money(trigger),
            "disclosed_quantity": int(body.get("disclosed_quantity") or 0),
            "transaction_type": body["transaction_type"],
            "average_price": 0.0,
            "filled_quantity": 0,
            "pending_quantity": int(body["quantity"]),
            "status_message": None,
            "status_message_raw": None,
            "exchange_order_id": None,
            "parent_order_id": None,
            "order_id": order_id,
            "variety": "SIMPLE",
            "order_timestamp": f"{now:%Y-%m-%d %H:%M:%S}",
            "exchange_timestamp": None,
            "is_amo": False,
            "order_request_id": "1",
            "order_ref_id": f"ref-{order_id}",
        }
        account.orders[order_id] = row
        self._snapshot(account, row)
        self.transition(account, row, "validation pending")
        self.transition(account, row, "open pending")
        refusal = self._rms(account, row, instrument)
        if refusal:
            self.transition(account, row, "rejected", status_message=refusal, pending_quantity=0)
            return row
        self._block(account, row, instrument)
        row["exchange_order_id"] = f"1100000{order_id[-9:]}"
        row["exchange_timestamp"] = row["order_timestamp"]
        if row["order_type"] in ("SL", "SL-M"):
            self.transition(account, row, "trigger pending")
        else:
            self.transition(account, row, "open")
        self.match(account, row, now)
        return row

    def _rms(self, account: UpstoxAccount, row: dict[str, Any], instrument: Instrument) -> str | None:
        if row["transaction_type"] == "SELL" and row["product"] == "D":
            held = int(account.holdings.get(instrument.key, {}).get("quantity", 0))
            sold = sum(
                o["pending_quantity"]
                for o in account.orders.values()
                if o is not row
                and o["instrument_token"] == instrument.key
                and o["transaction_type"] == "SELL"
                and o["product"] == "D"
                and o["status"] not in FINAL
            )
            if row["quantity"] > held - sold:
                return "Insufficient holdings to sell. Check your holdings and try again."
            return None
        need = self._margin(row, instrument)
        if need > self.available(account):
            # the wording of Upstox's documented order book sample
            return (
                f"You need to add Rs. {money(need - self.available(account)):.2f} in your account to place this trade."
            )
        return None

    @staticmethod
    def _value_price(row: dict[str, Any], instrument: Instrument) -> Decimal:
        price = Decimal(str(row["price"])) if row["order_type"] in ("LIMIT", "SL") else instrument.last_price
        if row["order_type"] == "SL-M":
            price = max(price, Decimal(str(row["trigger_price"])))
        return price

    def _margin(self, row: dict[str, Any], instrument: Instrument, quantity: int | None = None) -> Decimal:
        qty = row["pending_quantity"] if quantity is None else quantity
        if row["transaction_type"] == "SELL" and row["product"] == "D":
            return Decimal("0")
        return (self._value_price(row, instrument) * qty * MARGIN_RATE[row["product"]]).quantize(CENT)

    def _block(self, account: UpstoxAccount, row: dict[str, Any], instrument: Instrument) -> None:
        row["_blocked"] = self._margin(row, instrument)
        account.blocked += row["_blocked"]

    def _release(self, account: UpstoxAccount, row: dict[str, Any]) -> None:
        account.blocked -= row.pop("_blocked", Decimal("0"))

    def transition(self, account: UpstoxAccount, row: dict[str, Any], status: str, **changes: Any) -> None:
        row.update(status=status, **changes)
        self._snapshot(account, row)

    @staticmethod
    def _snapshot(account: UpstoxAccount, row: dict[str, Any]) -> None:
        account.history.append({k: v for k, v in row.items() if not k.startswith("_")})

    def match(self, account: UpstoxAccount, row: dict[str, Any], now: datetime) -> None:
        """Fill what is marketable at the instrument's price; IOC leftovers are cancelled."""
        instrument = self.instruments[row["instrument_token"]]
        ltp = instrument.last_price
        buy = row["transaction_type"] == "BUY"
        if row["status"] == "trigger pending":
            trigger = Decimal(str(row["trigger_price"]))
            if (buy and ltp >= trigger) or (not buy and ltp <= trigger):
                self.transition(account, row, "open")
            else:
                return
        if row["status"] != "open":
            return
        limit = Decimal(str(row["price"])) if row["order_type"] in ("LIMIT", "SL") else None
        if limit is None or (buy and ltp <= limit) or (not buy and ltp >= limit):
            self.fill(account, row, row["pending_quantity"], ltp, now)
        elif row["validity"] == "IOC":
            self._release(account, row)
            self.transition(account, row, "cancelled", pending_quantity=0, status_message="IOC order cancelled")

    def fill(self, account: UpstoxAccount, row: dict[str, Any], quantity: int, price: Decimal, now: datetime) -> None:
        instrument = self.instruments[row["instrument_token"]]
        filled = row["filled_quantity"]
        average = Decimal(str(row["average_price"]))
        new_filled = filled + quantity
        new_average = ((average * filled + price * quantity) / new_filled).quantize(CENT)
        self._release(account, row)
        value = price * quantity
        buy = row["transaction_type"] == "BUY"
        account.spent += value if buy else -value
        trade = {
            "exchange": "NSE",
            "product": row["product"],
            "tradingsymbol": instrument.symbol,
            "trading_symbol": instrument.symbol,
            "instrument_token": instrument.key,
            "order_type": row["order_type"],
            "transaction_type": row["transaction_type"],
            "quantity": quantity,
            "exchange_order_id": row["exchange_order_id"],
            "order_id": row["order_id"],
            "exchange_timestamp": f"{now:%Y-%m-%d %H:%M:%S}",
            "average_price": money(price),
            "trade_id": f"{next(self._trade_ids):08d}",
            "order_ref_id": row["order_ref_id"],
            "order_timestamp": row["order_timestamp"],
        }
        account.trades.append(trade)
        pos = account.positions.setdefault(
            (instrument.key, row["product"]),
            {"buy_qty": 0, "buy_value": Decimal("0"), "sell_qty": 0, "sell_value": Decimal("0")},
        )
        side = "buy" if buy else "sell"
        pos[f"{side}_qty"] += quantity
        pos[f"{side}_value"] += value
        if not buy and row["product"] == "D":
            holding = account.holdings.get(instrument.key)
            if holding:
                holding["quantity"] -= quantity
        pending = row["quantity"] - new_filled
        status = "complete" if pending == 0 else "open"
        self.transition(
            account,
            row,
            status,
            filled_quantity=new_filled,
            pending_quantity=pending,
            average_price=money(new_average),
            exchange_timestamp=trade["exchange_timestamp"],
        )
        if pending:
            self._block(account, row, instrument)

    def modify(self, account: UpstoxAccount, row: dict[str, Any], body: dict[str, Any], now: datetime) -> None:
        if row["status"] in FINAL:
            raise Refusal(400, "UDAPI100040", f"Order is already {row['status']} and cannot be modified")
        instrument = self.instruments[row["instrument_token"]]
        self._release(account, row)
        self.transition(account, row, "modify validation pending")
        changes: dict[str, Any] = {
            "order_type": body["order_type"],
            "validity": body["validity"],
            "price": money(Decimal(str(body.get("price") or 0))),
            "trigger_price": money(Decimal(str(body.get("trigger_price") or 0))),
        }
        if body.get("quantity"):
            quantity = int(body["quantity"])
            if quantity <= row["filled_quantity"]:
                self._block(account, row, instrument)
                raise Refusal(400, "UDAPI100038", "Quantity must be more than the filled quantity", "quantity")
            changes.update(quantity=quantity, pending_quantity=quantity - row["filled_quantity"])
        row.update(changes)
        self._block(account, row, instrument)
        self.transition(account, row, "modified")
        self.transition(account, row, "trigger pending" if row["order_type"] in ("SL", "SL-M") else "open")
        self.match(account, row, now)

    def cancel(self, account: UpstoxAccount, row: dict[str, Any]) -> None:
        if row["status"] in FINAL:
            raise Refusal(400, "UDAPI100040", f"Order is already {row['status']} and cannot be cancelled")
        self._release(account, row)
        self.transition(account, row, "cancel pending")
        self.transition(account, row, "cancelled", pending_quantity=0, status_message="Cancelled by user")

    def reprice(self, accounts: list[UpstoxAccount], key: str, now: datetime) -> None:
        """After a price move: open orders on `key` that became marketable fill, stops trigger."""
        for account in accounts:
            for row in list(account.orders.values()):
                if row["instrument_token"] == key and row["status"] in ("open", "trigger pending"):
                    self.match(account, row, now)

    # ---------------------------------------------------------------- portfolio rows

    def position_rows(self, account: UpstoxAccount) -> list[dict[str, Any]]:
        rows = []
        for (key, product), pos in account.positions.items():
            instrument = self.instruments[key]
            quantity = pos["buy_qty"] - pos["sell_qty"]
            buy_avg = pos["buy_value"] / pos["buy_qty"] if pos["buy_qty"] else Decimal("0")
            sell_avg = pos["sell_value"] / pos["sell_qty"] if pos["sell_qty"] else Decimal("0")
            closed = min(pos["buy_qty"], pos["sell_qty"])
            realised = (sell_avg - buy_avg) * closed if closed else Decimal("0")
            average = buy_avg if quantity > 0 else sell_avg if quantity < 0 else Decimal("0")
            unrealised = (instrument.last_price - average) * quantity
            rows.append(
                {
                    "exchange": "NSE",
                    "multiplier": 1.0,
                    "value": money(pos["sell_value"] - pos["buy_value"]),
                    "pnl": money(realised + unrealised),
                    "product": product,
                    "instrument_token": key,
                    "average_price": money(average),
                    "buy_value": money(pos["buy_value"]),
                    "overnight_quantity": 0,
                    "day_buy_value": money(pos["buy_value"]),
                    "day_buy_price": money(buy_avg),
                    "overnight_buy_amount": 0.0,
                    "overnight_buy_quantity": 0,
                    "day_buy_quantity": pos["buy_qty"],
                    "day_sell_value": money(pos["sell_value"]),
                    "day_sell_price": money(sell_avg),
                    "overnight_sell_amount": 0.0,
                    "overnight_sell_quantity": 0,
                    "day_sell_quantity": pos["sell_qty"],
                    "quantity": quantity,
                    "last_price": money(instrument.last_price),
                    "unrealised": money(unrealised),
                    "realised": money(realised),
                    "sell_value": money(pos["sell_value"]),
                    "tradingsymbol": instrument.symbol,
                    "trading_symbol": instrument.symbol,
                    "close_price": money(instrument.close),
                    "buy_price": money(buy_avg),
                    "sell_price": money(sell_avg),
                }
            )
        return rows

    def holding_rows(self, account: UpstoxAccount) -> list[dict[str, Any]]:
        rows = []
        for key, holding in account.holdings.items():
            instrument = self.instruments[key]
            average = Decimal(str(holding["average_price"]))
            quantity = int(holding["quantity"])
            rows.append(
                {
                    "isin": instrument.isin,
                    "cnc_used_quantity": 0,
                    "collateral_type": "WC",
                    "company_name": instrument.name,
                    "haircut": 0.2,
                    "product": "D",
                    "quantity": quantity,
                    "tradingsymbol": instrument.symbol,
                    "trading_symbol": instrument.symbol,
                    "last_price": money(instrument.last_price),
                    "close_price": money(instrument.close),
                    "pnl": money((instrument.last_price - average) * quantity),
                    "day_change": money(instrument.last_price - instrument.close),
                    "day_change_percentage": 0.0,
                    "instrument_token": key,
                    "average_price": money(average),
                    "collateral_quantity": 0,
                    "collateral_update_quantity": 0,
                    "t1_quantity": int(holding.get("t1_quantity", 0)),
                    "exchange": "NSE",
                }
            )
        return rows

    def instrument_records(self) -> list[dict[str, Any]]:
        """The JSON instrument file's records (§1.6) for the NSE cash segment."""
        return [
            {
                "segment": "NSE_EQ",
                "name": i.name,
                "exchange": "NSE",
                "isin": i.isin,
                "instrument_type": "EQ",
                "instrument_key": i.key,
                "lot_size": 1,
                "freeze_quantity": 100000.0,
                "exchange_token": str(i.exchange_token),
                "tick_size": float(i.tick_size * 100),  # Upstox's file gives the tick in paise
                "trading_symbol": i.symbol,
                "short_name": i.name.title(),
                "security_type": "NORMAL",
                "qty_multiplier": 1.0,
                "mtf_enabled": True,
                "mtf_bracket": 20.0,
            }
            for i in self.instruments.values()
        ]
