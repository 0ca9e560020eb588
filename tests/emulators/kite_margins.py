"""Kite's margin calculator for the emulator: /margins/orders and /margins/basket rows, and the
`charges` object each order carries, all in Decimal. The caller holds the emulator lock.

Margins follow the book's model (kite_book.MARGIN_RATE). Charge rates are from
reference/charges-and-webhooks.md §1.1 and §1.3 (Zerodha; NSE from 1 Oct 2024; BSE groups A/B); the
fields from Kite's margins page: transaction_tax (STT), exchange_turnover_charge, sebi_turnover_charge,
brokerage, stamp_duty, gst {igst, cgst, sgst, total}, total.

Kite answers per order and unrounded (its INFY sample: STT 1.498, exchange 0.051681), so every
line here is exact except stamp duty, which Kite's sample shows to the paisa (0.2247 -> 0.22). The
rounding a contract note applies (STT to the rupee per scrip, the rest to the paisa) belongs to the
note, not to one order. The exchange charge leaves out IPFT (₹10/crore), as the reference's worked
examples do. GST is all IGST, as in Kite's samples (a client outside Zerodha's state); DP charges
go to the ledger, not to an order's charges.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.emulators.kite_book import PRODUCTS, Instrument, KiteAccount, KiteBook, Refusal, number

ZERO = Decimal("0")
PAISA = Decimal("0.01")
PER_CENT = Decimal("0.01")
DELIVERY = {"CNC", "MTF", "NRML"}  # NRML on cash equity is carried like delivery here
STT = {"delivery": Decimal("0.1") * PER_CENT, "intraday_sell": Decimal("0.025") * PER_CENT}
STAMP = {"delivery": Decimal("0.015") * PER_CENT, "intraday": Decimal("0.003") * PER_CENT}
EXCHANGE_CHARGE = {"NSE": Decimal("0.00297") * PER_CENT, "BSE": Decimal("0.00375") * PER_CENT}
SEBI_FEE = Decimal("0.0001") * PER_CENT  # ₹10 per crore
GST = Decimal("0.18")
BROKERAGE_CAP = Decimal("20")
BROKERAGE_RATE = {"MIS": Decimal("0.03") * PER_CENT, "MTF": Decimal("0.3") * PER_CENT}  # CNC: ₹0


def order_margin(book: KiteBook, row: Any, compact: bool = False) -> dict[str, Any]:
    """One order of /margins/orders or /margins/basket: its margin (as `var`) and its charges.
    Compact mode ("only the total margins") zeroes the breakdown and keeps the totals."""
    instrument, quantity, price = _checked(book, row)
    total = book.margin_for(row, quantity, price)
    charges = order_charges(instrument.exchange, row["product"], row["transaction_type"], quantity, price)
    return margin_row(
        "equity",
        instrument.tradingsymbol,
        instrument.exchange,
        ZERO if compact else total,
        5 if row["product"] == "MIS" else 1,
        charges,
        total,
    )


def basket_margin(
    book: KiteBook, account: KiteAccount, rows: list[Any], consider_positions: bool, compact: bool
) -> dict[str, Any]:
    """/margins/basket: each order's margin, their sum (`initial`) and what the basket needs once the
    part of an order that closes a position needs none (`final`). Cash equity has no spread benefit,
    so closing is the only one: against earlier orders of the basket, and against the account's open
    positions when consider_positions is on."""
    orders = [order_margin(book, row, compact) for row in rows]
    net = {key: leg[0] - leg[2] for key, leg in account.legs.items()} if consider_positions else {}
    needed = ZERO
    for row in rows:
        instrument, quantity, price = _checked(book, row)
        key = (instrument.exchange, instrument.tradingsymbol, row["product"])
        signed = quantity if row["transaction_type"] == "BUY" else -quantity
        held = net.get(key, 0)
        closing = min(quantity, abs(held)) if held * signed < 0 else 0
        net[key] = held + signed
        if quantity > closing:
            needed += book.margin_for(row, quantity - closing, price)
    charges = add_charges([order["charges"] for order in orders])
    initial = sum((order["total"] for order in orders), ZERO)
    return {
        "initial": margin_row("", "", "", ZERO if compact else initial, 0, charges, initial),
        "final": margin_row("", "", "", ZERO if compact else needed, 0, charges, needed),
        "orders": orders,
    }


def margin_row(
    kind: str, tradingsymbol: str, exchange: str, var: Decimal, leverage: int, charges: dict[str, Any], total: Decimal
) -> dict[str, Any]:
    """Kite's margin structure; a cash-equity margin is all VaR + ELM, reported as `var`."""
    return {
        "type": kind,
        "tradingsymbol": tradingsymbol,
        "exchange": exchange,
        "span": ZERO,
        "exposure": ZERO,
        "option_premium": ZERO,
        "additional": ZERO,
        "bo": ZERO,
        "cash": ZERO,
        "var": var,
        "pnl": {"realised": ZERO, "unrealised": ZERO},
        "leverage": leverage,
        "charges": charges,
        "total": total,
    }


def _checked(book: KiteBook, row: Any) -> tuple[Instrument, int, Decimal]:
    """A margin request's order, checked: its instrument, quantity and the price it is costed at
    (its price, else its trigger price, else the last price: a market order)."""
    if not isinstance(row, Mapping):
        raise Refusal("Invalid JSON body.")
    instrument = book.instrument(row.get("exchange"), row.get("tradingsymbol"))
    if row.get("product") not in PRODUCTS:
        raise Refusal("Invalid `product`.")
    if row.get("transaction_type") not in ("BUY", "SELL"):
        raise Refusal("Invalid `transaction_type`.")
    quantity = row.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise Refusal("Invalid `quantity`.")
    price = number(row.get("price") or 0, "price") or number(row.get("trigger_price") or 0, "trigger_price")
    if price is not None and (not price.is_finite() or price < 0):
        raise Refusal("Invalid `price`.")
    return instrument, quantity, price or instrument.last_price


def brokerage(product: str, value: Decimal) -> Decimal:
    """Zerodha: delivery free; intraday and MTF the lower of ₹20 and a rate, per executed order."""
    rate = BROKERAGE_RATE.get(product)
    return min(BROKERAGE_CAP, value * rate) if rate is not None else ZERO


def order_charges(exchange: str, product: str, side: str, quantity: int, price: Decimal) -> dict[str, Any]:
    """The charges Kite reports for one order of `quantity` at `price`."""
    value = price * quantity
    delivery = product in DELIVERY
    if delivery:
        stt = value * STT["delivery"]
    else:
        stt = value * STT["intraday_sell"] if side == "SELL" else ZERO
    stamp = ZERO
    if side == "BUY":
        stamp = (value * STAMP["delivery" if delivery else "intraday"]).quantize(PAISA, ROUND_HALF_UP)
    exchange_charge = value * EXCHANGE_CHARGE.get(exchange, EXCHANGE_CHARGE["NSE"])
    sebi, broker = value * SEBI_FEE, brokerage(product, value)
    gst = (broker + exchange_charge + sebi) * GST  # STT and stamp duty are outside the GST base
    return _charges(stt, exchange_charge, sebi, broker, stamp, gst)


def add_charges(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Line-by-line sum of several orders' charges (a basket's initial and final rows)."""

    def line(name: str) -> Decimal:
        return sum((row[name] for row in rows), ZERO)

    return _charges(
        line("transaction_tax"),
        line("exchange_turnover_charge"),
        line("sebi_turnover_charge"),
        line("brokerage"),
        line("stamp_duty"),
        sum((row["gst"]["total"] for row in rows), ZERO),
    )


def _charges(
    stt: Decimal, exchange_charge: Decimal, sebi: Decimal, broker: Decimal, stamp: Decimal, gst: Decimal
) -> dict[str, Any]:
    total = stt + exchange_charge + sebi + broker + stamp + gst
    return {
        "transaction_tax": _plain(stt),
        "transaction_tax_type": "stt",
        "exchange_turnover_charge": _plain(exchange_charge),
        "sebi_turnover_charge": _plain(sebi),
        "brokerage": _plain(broker),
        "stamp_duty": _plain(stamp),
        "gst": {"igst": _plain(gst), "cgst": ZERO, "sgst": ZERO, "total": _plain(gst)},
        "total": _plain(total),
    }


def _plain(value: Decimal) -> Decimal:
    """Exact, without the trailing zeros a product of rates piles up (2.99970000 -> 2.9997)."""
    return value.normalize() if value else ZERO
