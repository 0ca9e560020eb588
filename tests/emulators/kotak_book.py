"""The books behind the Kotak Neo emulator: scrips (the desk's sample master), accounts, orders,
trades, positions, holdings and limits, rendered as Kotak Neo's rows (its own short keys:
`nOrdNo`, `ordSt`, `trdSym`, `exSeg`, `flBuyQty`, ...; numbers as strings, as Kotak sends them).

Every method that changes state expects the caller to hold the emulator's lock.
"""

from __future__ import annotations

import csv
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp

IST = ZoneInfo("Asia/Kolkata")
BOOK_TIME = "%d-%b-%Y %H:%M:%S"  # ordDtTm / exTm: "22-Jan-2025 14:28:01", IST
UPDATE_TIME = "%Y/%m/%d %H:%M:%S"  # hsUpTm: "2025/01/22 14:28:01", IST
ZERO = Decimal("0")
PAISA = Decimal("0.01")
SAMPLE_MASTER = Path(__file__).resolve().parents[2] / "webapp" / "instruments" / "nse_sample.csv"

PRODUCTS = ("CNC", "MIS", "NRML", "MTF")
ORDER_TYPES = ("L", "MKT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC")
SEGMENTS = ("nse_cm", "bse_cm")
FINAL_WORDS = ("complete", "cancelled", "rejected")
# Share of an order's value the emulated RMS blocks, by product (a rough broker-like schedule).
MARGIN_FACTOR = {"CNC": Decimal("1"), "MTF": Decimal("0.5"), "MIS": Decimal("0.2"), "NRML": Decimal("1")}
TAG_LIMIT = 20  # the emulator's own bound on `ig`; Kotak publishes none


def ist_text(moment: datetime, fmt: str = BOOK_TIME) -> str:
    return moment.astimezone(IST).strftime(fmt)


def money_text(value: Decimal) -> str:
    return f"{value.quantize(PAISA, ROUND_HALF_UP):f}"


def dec(value: Any) -> Decimal | None:
    try:
        return ZERO if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def whole(value: Any) -> int:
    """An integer field, or -1 when it is not one (every caller treats -1 as invalid)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return -1
    return int(number) if number == number.to_integral_value() else -1


@dataclass
class Scrip:
    segment: str
    token: int
    symbol: str
    name: str
    ltp: Decimal
    tick: Decimal
    close: Decimal
    lower: Decimal
    upper: Decimal
    isin: str = ""
    lot: int = 1
    volume: int = 0

    @property
    def trading_symbol(self) -> str:
        return f"{self.symbol}-EQ" if self.segment == "nse_cm" else self.symbol

    def quote_row(self) -> dict[str, Any]:
        """One element of the neosymbol quotes answer: every value a string."""

        def level(price: Decimal, quantity: int) -> dict[str, str]:
            return {"price": f"{price:f}", "quantity": str(quantity), "orders": "1" if quantity else "0"}

        change = self.ltp - self.close
        return {
            "exchange_token": str(self.token),
            "display_symbol": self.trading_symbol,
            "exchange": self.segment,
            "lstup_time": str(int(datetime.now(IST).timestamp())),
            "ltp": f"{self.ltp:.4f}",
            "last_traded_quantity": "1",
            "total_buy": "100",
            "total_sell": "100",
            "last_volume": str(self.volume),
            "change": f"{change:.4f}",
            "per_change": f"{(change * 100 / self.close) if self.close else ZERO:.4f}",
            "year_high": f"{self.upper:.4f}",
            "year_low": f"{self.lower:.4f}",
            "ohlc": {
                "open": f"{self.close:.4f}",
                "high": f"{max(self.ltp, self.close):.4f}",
                "low": f"{min(self.ltp, self.close):.4f}",
                "close": f"{self.close:.4f}",
            },
            "depth": {
                "buy": [level(self.ltp - self.tick * i, 100 * i) for i in range(1, 6)],
                "sell": [level(self.ltp + self.tick * i, 100 * i) for i in range(1, 6)],
            },
        }

    def master_row(self) -> dict[str, str]:
        """A row of the nse_cm-v1.csv scrip master (prices and ticks in paise, as Kotak's file has them)."""
        return {
            "pSymbol": str(self.token),
            "pGroup": "EQ",
            "pExchSeg": self.segment,
            "pInstType": "",
            "pSymbolName": self.symbol,
            "pTrdSymbol": self.trading_symbol,
            "pISIN": self.isin,
            "pDesc": self.name,
            "dTickSize ": str(int(self.tick * 100)),
            "lLotSize": str(self.lot),
            "lPrecision": "2",
            "pExchange": "NSE" if self.segment == "nse_cm" else "BSE",
            "dHighPriceRange ": str(int(self.upper * 100)),
            "dLowPriceRange ": str(int(self.lower * 100)),
        }


MASTER_COLUMNS = tuple(Scrip("nse_cm", 0, "", "", ZERO, PAISA, ZERO, ZERO, ZERO).master_row())


@dataclass
class KotakAccount:
    ucc: str
    mobile_number: str
    consumer_key: str
    mpin: str
    totp_secret: str
    cash: Decimal
    collateral: Decimal = ZERO
    trades: list[dict[str, Any]] = field(default_factory=list)
    # (segment, token, product) -> filled buy/sell quantities and amounts today
    positions: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    holdings: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol -> (qty, avg)


@dataclass
class EmuOrder:
    order_id: str
    ucc: str
    scrip: Scrip
    side: str  # B / S
    order_type: str  # L / MKT / SL / SL-M
    product: str
    validity: str
    qty: int
    price: Decimal
    trigger: Decimal
    tag: str
    placed_at: datetime
    modified_at: datetime
    status: str = "open"
    filled: int = 0
    avg: Decimal = ZERO
    reason: str = ""
    exch_order_id: str = ""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_WORDS

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    def row(self) -> dict[str, Any]:
        """An order book row, with the keys Kotak's order report carries."""
        return {
            "nOrdNo": self.order_id,
            "ordSt": self.status,
            "stat": self.status,
            "exSeg": self.scrip.segment,
            "trdSym": self.scrip.trading_symbol,
            "sym": self.scrip.symbol,
            "tok": str(self.scrip.token),
            "series": "EQ",
            "trnsTp": self.side,
            "prod": self.product,
            "prcTp": self.order_type,
            "vldt": self.validity,
            "qty": self.qty,
            "fldQty": self.filled,
            "unFldSz": self.remaining if not self.is_final else 0,
            "cnlQty": self.remaining if self.status == "cancelled" else 0,
            "prc": money_text(self.price),
            "trgPrc": money_text(self.trigger),
            "avgPrc": money_text(self.avg),
            "rejRsn": self.reason or "--",
            "exOrdId": self.exch_order_id,
            "GuiOrdId": self.tag,
            "ordDtTm": ist_text(self.placed_at),
            "ordEntTm": ist_text(self.placed_at),
            "exCfmTm": ist_text(self.modified_at),
            "hsUpTm": ist_text(self.modified_at, UPDATE_TIME),
            "brdLtQty": "1",
            "lotSz": str(self.scrip.lot),
            "tckSz": f"{self.scrip.tick:.4f}",
            "mktPro": "0",
            "dscQty": 0,
            "ordGenTp": "NA",
            "it": "EQ",
        }


def load_sample_master(path: Path = SAMPLE_MASTER) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if row.get("exchange") in ("NSE", "BSE")
            and row.get("segment") != "INDICES"
            and float(row["tick_size"] or 0)
        ]


class KotakBook:
    def __init__(self, lock: threading.RLock):
        self.lock = lock
        self.scrips: dict[tuple[str, int], Scrip] = {}
        self.accounts: dict[str, KotakAccount] = {}
        self.orders: dict[str, EmuOrder] = {}
        # Kotak's docs do not promise the order book echoes the tag (`ig` → GuiOrdId): a test turns it off
        self.echo_tag = True
        self._ids = itertools.count(1)
        self._fill_ids = itertools.count(1)
        self._accounts = itertools.count(1)
        self._day = datetime.now(IST).strftime("%y%m%d")
        for row in load_sample_master():
            self.add_scrip(
                row["tradingsymbol"],
                int(row["exchange_token"]),
                Decimal(row["last_price"]),
                segment="nse_cm" if row["exchange"] == "NSE" else "bse_cm",
                tick=row.get("tick_size") or None,
                band_pct=row.get("band_pct") or "10",
                isin=row.get("isin") or "",
                name=row.get("name") or row["tradingsymbol"],
                lot=int(row.get("lot_size") or 1),
            )

    # ------------------------------------------------------------------ set-up

    def add_scrip(
        self,
        symbol: str,
        token: int,
        ltp: Decimal,
        *,
        segment: str = "nse_cm",
        tick: Decimal | str | None = None,
        band_pct: Decimal | str = "10",
        isin: str = "",
        name: str = "",
        lot: int = 1,
    ) -> Scrip:
        tick_size = Decimal(str(tick)) if tick else PAISA * 5
        band = ltp * Decimal(str(band_pct)) / 100

        def on_tick(value: Decimal) -> Decimal:
            return (value / tick_size).to_integral_value(ROUND_HALF_UP) * tick_size

        scrip = Scrip(
            segment, int(token), symbol, name or symbol, ltp, tick_size, ltp, on_tick(ltp - band), on_tick(ltp + band)
        )
        scrip.isin, scrip.lot = isin, lot
        with self.lock:
            self.scrips[(segment, int(token))] = scrip
        return scrip

    def scrip(self, symbol: str, segment: str = "nse_cm") -> Scrip:
        return next(s for s in self.scrips.values() if s.symbol == symbol and s.segment == segment)

    def by_trading_symbol(self, segment: str, trading_symbol: str) -> Scrip | None:
        return next(
            (s for s in self.scrips.values() if s.segment == segment and s.trading_symbol == trading_symbol), None
        )

    def add_account(
        self,
        ucc: str | None = None,
        mobile_number: str | None = None,
        cash: str | Decimal = "1000000",
        collateral: str | Decimal = "0",
        holdings: dict[str, Any] | None = None,
    ) -> KotakAccount:
        with self.lock:
            n = next(self._accounts)
            account = KotakAccount(
                ucc=ucc or f"KT{n:04d}{secrets.token_hex(2).upper()}",
                mobile_number=mobile_number or f"+9198{secrets.randbelow(10**8):08d}",
                consumer_key=secrets.token_hex(16),
                mpin=f"{secrets.randbelow(10**6):06d}",
                totp_secret=pyotp.random_base32(),
                cash=Decimal(str(cash)),
                collateral=Decimal(str(collateral)),
            )
            for symbol, value in (holdings or {}).items():
                qty, avg = value if isinstance(value, (list, tuple)) else (value, self.scrip(symbol).ltp)
                account.holdings[symbol] = (int(qty), Decimal(str(avg)))
            self.accounts[account.ucc] = account
            return account

    # ------------------------------------------------------------------ orders

    def account_orders(self, ucc: str) -> list[EmuOrder]:
        return [o for o in self.orders.values() if o.ucc == ucc]

    def new_order(self, account: KotakAccount, body: dict[str, Any]) -> EmuOrder | tuple[int, str]:
        """A validated order, or (stCode, message) for the broker's refusal."""
        segment = str(body.get("es") or "")
        scrip = self.by_trading_symbol(segment, str(body.get("ts") or ""))
        side, order_type = str(body.get("tt") or ""), str(body.get("pt") or "")
        product, validity = str(body.get("pc") or ""), str(body.get("rt") or "")
        qty = whole(body.get("qt"))
        price, trigger = dec(body.get("pr")), dec(body.get("tp"))
        tag = str(body.get("ig") or "").strip()
        checks = (
            (segment not in SEGMENTS, 1006, "Invalid Exchange"),
            (scrip is None, 1007, "Invalid Symbol"),
            (side not in ("B", "S"), 1008, "Invalid Transaction Type"),
            (order_type not in ORDER_TYPES, 1008, "Invalid Order Type"),
            (product not in PRODUCTS, 1008, "Invalid Product Code"),
            (validity not in VALIDITIES, 1008, "Invalid Validity"),
            (qty <= 0 or (scrip is not None and qty % scrip.lot), 1009, "Invalid Quantity"),
            (price is None or trigger is None, 1008, "Invalid Price"),
            (str(body.get("am") or "NO") not in ("YES", "NO"), 1008, "Invalid AMO flag"),
            (len(tag) > TAG_LIMIT, 1008, "Invalid tag"),
        )
        refused = next(((code, message) for failed, code, message in checks if failed), None)
        if refused:
            return refused
        assert scrip is not None and price is not None and trigger is not None
        if order_type == "MKT":
            price, trigger = ZERO, ZERO
        problem = self.price_problem(scrip, order_type, side, price, trigger)
        if problem:
            return 1008, problem
        problem = self.rms_problem(account, scrip, side, product, qty, price)
        if problem:
            return 1004, problem
        now = datetime.now(IST).replace(microsecond=0)
        order_id = f"{self._day}{next(self._ids):09d}"
        order = EmuOrder(
            order_id, account.ucc, scrip, side, order_type, product, validity, qty, price, trigger, tag, now, now
        )
        order.exch_order_id = f"11000000{int(order_id[6:]):08d}"
        if order_type in ("SL", "SL-M"):
            order.status = "trigger pending"
        self.orders[order_id] = order
        return order

    @staticmethod
    def price_problem(scrip: Scrip, order_type: str, side: str, price: Decimal, trigger: Decimal) -> str | None:
        to_check = []
        if order_type in ("L", "SL"):
            if price <= 0:
                return "Price should be greater than zero"
            to_check.append(price)
        if order_type in ("SL", "SL-M"):
            if trigger <= 0:
                return "Trigger price is mandatory for a stop loss order"
            to_check.append(trigger)
            if order_type == "SL" and side == "B" and trigger > price:
                return "Trigger price should be less than or equal to price for a buy stop loss order"
            if order_type == "SL" and side == "S" and trigger < price:
                return "Trigger price should be greater than or equal to price for a sell stop loss order"
        for value in to_check:
            if value % scrip.tick:
                return f"Price {value} is not a multiple of the tick size {scrip.tick}"
            if not scrip.lower <= value <= scrip.upper:
                return f"Price {value} is outside the circuit limits {scrip.lower} - {scrip.upper}"
        return None

    def rms_problem(
        self, account: KotakAccount, scrip: Scrip, side: str, product: str, qty: int, price: Decimal
    ) -> str | None:
        if side == "S" and product in ("CNC", "MTF"):
            held = account.holdings.get(scrip.symbol, (0, ZERO))[0]
            leg = account.positions.get((scrip.segment, scrip.token, product), {})
            owned = held + leg.get("buy_qty", 0) - leg.get("sell_qty", 0)
            return None if owned >= qty else f"RMS:Rule: Insufficient holdings for {scrip.trading_symbol}"
        required = (price if price > 0 else scrip.ltp) * qty * MARGIN_FACTOR[product]
        available = account.cash + account.collateral - self.margin_used(account)
        if required > available:
            return f"RMS:Margin Exceeds, Required:{required:.2f}, Available:{available:.2f}"
        return None

    def marketable(self, order: EmuOrder) -> bool:
        ltp = order.scrip.ltp
        if order.order_type == "MKT":
            return True
        if order.order_type == "L":
            return order.price >= ltp if order.side == "B" else order.price <= ltp
        return False

    def triggered(self, order: EmuOrder) -> bool:
        ltp = order.scrip.ltp
        return ltp >= order.trigger if order.side == "B" else ltp <= order.trigger

    def work(self, order: EmuOrder, auto_fill: bool) -> None:
        """Match what the exchange would match now: market and marketable limit orders fill at the
        LTP; a triggered stop becomes a market (SL-M) or limit (SL) order; IOC leftovers die."""
        if order.is_final:
            return
        if order.status == "trigger pending":
            if not self.triggered(order):
                return
            order.status = "open"
            order.order_type = "MKT" if order.order_type == "SL-M" else "L"
        if auto_fill and self.marketable(order):
            self.fill(order, None, order.scrip.ltp)
        elif order.validity == "IOC":
            order.status, order.reason = "cancelled", "IOC order cancelled by the exchange"
            self.touch(order)

    def reprice(self, auto_fill: bool) -> None:
        for order in list(self.orders.values()):
            self.work(order, auto_fill)

    def modify(self, order: EmuOrder, body: dict[str, Any], auto_fill: bool) -> str | None:
        order_type = str(body.get("pt") or order.order_type)
        validity = str(body.get("vd") or order.validity)
        qty = whole(body.get("qt"))
        price, trigger = dec(body.get("pr")), dec(body.get("tp"))
        if order_type not in ORDER_TYPES or validity not in VALIDITIES:
            return "Invalid Order Type or Validity"
        if qty <= order.filled:
            return "Quantity should be greater than filled quantity"
        if price is None or trigger is None:
            return "Invalid Price"
        if order_type == "MKT":
            price, trigger = ZERO, ZERO
        problem = self.price_problem(order.scrip, order_type, order.side, price, trigger)
        if problem:
            return problem
        order.order_type, order.validity, order.qty, order.price, order.trigger = (
            order_type,
            validity,
            qty,
            price,
            trigger,
        )
        order.status = "trigger pending" if order_type in ("SL", "SL-M") else "open"
        self.touch(order)
        self.work(order, auto_fill)
        return None

    def touch(self, order: EmuOrder) -> None:
        order.modified_at = datetime.now(IST).replace(microsecond=0)

    def fill(self, order: EmuOrder, qty: int | None, price: Decimal | None) -> None:
        qty = order.remaining if qty is None else int(qty)
        if order.is_final or not 0 < qty <= order.remaining:
            raise ValueError(f"cannot fill {qty} of order {order.order_id} ({order.status}, {order.remaining} open)")
        price = price or order.price or order.scrip.ltp
        order.avg = ((order.avg * order.filled + price * qty) / (order.filled + qty)).quantize(PAISA)
        order.filled += qty
        order.status = "complete" if order.remaining == 0 else "open"
        if order.status == "open" and order.order_type in ("SL", "SL-M"):
            order.status = "open"
        self._book_trade(self.accounts[order.ucc], order, qty, price)
        self.touch(order)

    def _book_trade(self, account: KotakAccount, order: EmuOrder, qty: int, price: Decimal) -> None:
        scrip = order.scrip
        now = datetime.now(IST)
        account.trades.append(
            {
                "nOrdNo": order.order_id,
                "flId": f"{next(self._fill_ids):08d}",
                "exOrdId": order.exch_order_id,
                "trdSym": scrip.trading_symbol,
                "sym": scrip.symbol,
                "exSeg": scrip.segment,
                "tok": str(scrip.token),
                "trnsTp": order.side,
                "prod": order.product,
                "prcTp": order.order_type,
                "ordDur": order.validity,
                "qty": order.qty,
                "fldQty": qty,
                "avgPrc": money_text(price),
                "flDt": now.strftime("%d-%b-%Y"),
                "flTm": now.strftime("%H:%M:%S"),
                "exTm": ist_text(now),
                "usrId": account.ucc,
                "actId": account.ucc,
                "GuiOrdId": order.tag,
            }
        )
        leg = account.positions.setdefault(
            (scrip.segment, scrip.token, order.product),
            {"buy_qty": 0, "sell_qty": 0, "buy_amt": ZERO, "sell_amt": ZERO, "updated": now},
        )
        side = "buy" if order.side == "B" else "sell"
        leg[f"{side}_qty"] += qty
        leg[f"{side}_amt"] += price * qty
        leg["updated"] = now

    # ------------------------------------------------------------------ reports

    def margin_used(self, account: KotakAccount) -> Decimal:
        """Blocked margin, from today's net positions: long delivery buys and every intraday/carry
        position at its product's factor. Sells out of holdings block nothing."""
        used = ZERO
        for (_, _, product), leg in account.positions.items():
            net = leg["buy_qty"] - leg["sell_qty"]
            if net > 0:
                used += leg["buy_amt"] / leg["buy_qty"] * net * MARGIN_FACTOR[product]
            elif net < 0 and product not in ("CNC", "MTF"):
                used += leg["sell_amt"] / leg["sell_qty"] * -net * MARGIN_FACTOR[product]
        return used.quantize(PAISA)

    def position_rows(self, account: KotakAccount) -> list[dict[str, Any]]:
        rows = []
        for (segment, token, product), leg in account.positions.items():
            scrip = self.scrips[(segment, token)]
            rows.append(
                {
                    "actId": account.ucc,
                    "prod": product,
                    "exSeg": segment,
                    "trdSym": scrip.trading_symbol,
                    "sym": scrip.symbol,
                    "tok": str(token),
                    "qty": str(leg["buy_qty"] - leg["sell_qty"]),
                    "flBuyQty": str(leg["buy_qty"]),
                    "flSellQty": str(leg["sell_qty"]),
                    "buyAmt": money_text(leg["buy_amt"]),
                    "sellAmt": money_text(leg["sell_amt"]),
                    "cfBuyQty": "0",
                    "cfSellQty": "0",
                    "cfBuyAmt": "0.00",
                    "cfSellAmt": "0.00",
                    "brdLtQty": 1,
                    "lotSz": str(scrip.lot),
                    "multiplier": "1",
                    "precision": "2",
                    "genNum": "1",
                    "genDen": "1",
                    "prcNum": "1",
                    "prcDen": "1",
                    "posFlg": "true",
                    "sqrFlg": "Y",
                    "stkPrc": "0.00",
                    "expDt": "NA",
                    "optTp": "",
                    "type": "",
                    "hsUpTm": ist_text(leg["updated"], UPDATE_TIME),
                }
            )
        return rows

    def holding_rows(self, account: KotakAccount) -> list[dict[str, Any]]:
        rows = []
        for symbol, (qty, avg) in account.holdings.items():
            scrip = self.scrip(symbol)
            rows.append(
                {
                    "instrumentType": "Equity",
                    "sector": "Others",
                    "instrumentToken": scrip.token,
                    "commonScripCode": scrip.symbol,
                    "instrumentName": scrip.name,
                    "quantity": qty,
                    "averagePrice": avg,
                    "holdingCost": (avg * qty).quantize(Decimal("0.0001")),
                    "closingPrice": scrip.close,
                    "mktValue": (scrip.close * qty).quantize(PAISA),
                    "unrealisedGainLoss": ((scrip.close - avg) * qty).quantize(Decimal("0.0001")),
                    "sellableQuantity": qty,
                    "marketLot": scrip.lot,
                    "symbol": scrip.symbol,
                    "displaySymbol": scrip.symbol,
                    "exchangeSegment": scrip.segment,
                    "series": "EQ",
                    "exchangeIdentifier": str(scrip.token),
                    "strikePrice": "0.00",
                    "expiryDate": "",
                    "optType": "",
                    "securityType": "EQUITY STOCK",
                }
            )
        return rows

    def limits(self, account: KotakAccount) -> dict[str, Any]:
        used = self.margin_used(account)
        total = account.cash + account.collateral
        return {
            "Category": "CLIENT",
            "EntityId": f"account-{account.ucc}",
            "BoardLotLimit": "5000",
            "CollateralValue": money_text(total),
            "Collateral": money_text(account.collateral),
            "Net": money_text(total - used),
            "MarginUsed": money_text(used),
            "AdhocMargin": "0",
            "NotionalCash": "0",
            "stCode": 200,
            "stat": "Ok",
        }

    def check_margin(self, account: KotakAccount, body: dict[str, Any]) -> dict[str, Any] | str:
        scrip = self.scrips.get((str(body.get("exSeg") or ""), whole(body.get("tok"))))
        product, side, qty = str(body.get("prod") or ""), str(body.get("trnsTp") or ""), whole(body.get("qty"))
        price = dec(body.get("prc"))
        if scrip is None or product not in PRODUCTS or side not in ("B", "S") or qty <= 0 or price is None:
            return "Invalid margin request"
        if side == "S" and product in ("CNC", "MTF"):
            order_margin = ZERO
        else:
            order_margin = (price if price > 0 else scrip.ltp) * qty * MARGIN_FACTOR[product]
        used = self.margin_used(account)
        available = account.cash + account.collateral - used
        required = used + order_margin
        return {
            "avlCash": f"{account.cash:.6f}",
            "totMrgnUsd": f"{required:.6f}",
            "mrgnUsd": f"{used:.6f}",
            "ordMrgn": f"{order_margin:.6f}",
            "rmsVldtd": "OK" if order_margin <= available else "NOT_OK",
            "reqdMrgn": f"{required:.6f}",
            "avlMrgn": f"{available:.6f}",
            "insufFund": f"{max(order_margin - available, ZERO):.6f}",
            "stat": "Ok",
            "stCode": 200,
        }
